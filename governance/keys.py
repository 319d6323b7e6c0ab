"""Ed25519 keys on disk: the council's, each human approver's and each agent identity's.

A keyring is a directory (``<council home>/keys``) holding ``NAME.key`` (the private key, PKCS#8
PEM, mode 0600) and ``NAME.pub`` (the public key, SubjectPublicKeyInfo PEM). A private key whose
file is readable or writable by anyone but its owner is refused, never used. Names are short
lowercase identifiers, so a name can never point outside the keyring. A key is known to others by
its fingerprint: the first 16 bytes of the SHA-256 of its raw 32-byte public key, in hex.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from governance.errors import KeyringError

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
"""What a key name may be: lowercase letters, digits, '.', '_' and '-', not starting with a symbol."""

COUNCIL_KEY = "council"
"""The name of the council's own key, which signs warrants and checkpoints."""


def agent_key(agent_id: str) -> str:
    """The name of agent ``agent_id``'s own key: its identity at the gate, and what its signing skills sign with."""
    return f"agent-{agent_id.lower()}"


def fingerprint(raw: bytes) -> str:
    """The fingerprint of a raw 32-byte Ed25519 public key: 32 hex digits."""
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A named Ed25519 public key; :meth:`verify` checks a signature made with its private half."""

    name: str
    raw: bytes

    @property
    def fingerprint(self) -> str:
        """See :func:`fingerprint`."""
        return fingerprint(self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``. Never raises for bad input."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(bytes(signature), bytes(message))
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False

    @classmethod
    def from_raw(cls, name: str, raw: bytes) -> PublicKey:
        """A public key from its 32 raw bytes; :class:`KeyringError` if they are not 32 bytes."""
        if not isinstance(raw, bytes | bytearray) or len(raw) != 32:
            raise KeyringError(f"public key {name!r} is not 32 raw Ed25519 bytes")
        return cls(name, bytes(raw))


class SigningKey:
    """A named Ed25519 private key. It never leaves this object: no method returns its bytes."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        self.name = name
        self._private = private
        self.public = PublicKey(name, private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                         serialization.PublicFormat.Raw))

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        """A new random key (not written anywhere; see :meth:`Keyring.new`)."""
        return cls(check_name(name), Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(bytes(message))

    def __repr__(self) -> str:
        return f"SigningKey({self.name!r}, fingerprint={self.public.fingerprint})"


def check_name(name: str) -> str:
    """``name`` if it is a valid key name; else :class:`KeyringError` saying what a name may be."""
    if not isinstance(name, str) or not NAME.match(name):
        raise KeyringError(f"{name!r} is not a key name: use 1-64 lowercase letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    return name


class Keyring:
    """The keys under ``directory`` (normally ``<council home>/keys``)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def new(self, name: str) -> PublicKey:
        """Create key pair ``name``; refuse if it exists. The private key file is created mode 0600, never looser."""
        key = SigningKey.generate(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = key._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        try:
            # O_EXCL: an existing key is never overwritten; the mode is set at creation, so the
            # secret is never on disk with looser permissions, whatever the umask.
            fd = os.open(self._private_path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyringError(f"key {name!r} exists already in {self.directory}; choose another name") from None
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        public = Ed25519PublicKey.from_public_bytes(key.public.raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self._public_path(name).write_bytes(public)
        return key.public

    def ensure(self, name: str) -> PublicKey:
        """Key ``name``'s public half, creating the pair first if there is none."""
        if self._public_path(name).exists() or self._private_path(name).exists():
            return self.public(name)
        return self.new(name)

    def public(self, name: str) -> PublicKey:
        """The public key ``name`` (from ``NAME.pub``, or derived from ``NAME.key`` if only that exists)."""
        path = self._public_path(name)
        if not path.exists():
            if self._private_path(name).exists():
                return self.signer(name).public
            raise KeyringError(f"there is no key {name!r} in {self.directory}; create it with "
                               f"`council keys new {name}`")
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError:
            raise KeyringError(f"{path} is not a PEM public key; restore it or create a new key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyringError(f"{path} is not an Ed25519 key; agent-council uses Ed25519 only")
        return PublicKey(name, key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def signer(self, name: str) -> SigningKey:
        """The private key ``name``, after checking that only its owner can read or write its file."""
        path = self._private_path(name)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeyringError(f"there is no private key {name!r} in {self.directory}; create it with "
                               f"`council keys new {name}`, or sign on the machine that holds it") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(f"{path} is readable or writable by others (mode {stat.S_IMODE(mode):04o}); "
                               f"refusing to use it: run `chmod 600 {path}` if nobody else had it, else make a new key")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError):
            raise KeyringError(f"{path} is not an unencrypted PEM private key; restore it or create a new "
                               "key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyringError(f"{path} is not an Ed25519 key; agent-council uses Ed25519 only")
        return SigningKey(name, key)

    def names(self) -> list[str]:
        """The names of every key in the keyring, sorted."""
        if not self.directory.is_dir():
            return []
        found = {p.stem for p in self.directory.iterdir() if p.suffix in (".key", ".pub") and NAME.match(p.stem)}
        return sorted(found)

    def list(self) -> list[tuple[PublicKey, bool]]:
        """Every key as (public key, whether its private half is here), sorted by name."""
        return [(self.public(n), self._private_path(n).exists()) for n in self.names()]

    def _private_path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.key"

    def _public_path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.pub"
