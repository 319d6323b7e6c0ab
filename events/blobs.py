"""Bodies too large or too private for an event: a content-addressed store of files beside the log.

A blob is named by the SHA-256 of its bytes (``blobs/sha256/ab/cdef…``), written once (to a
temporary file, flushed, then renamed into place: a reader sees all of it or nothing) and never
changed. The event that needs it carries only the digest, which the ledger's hash covers; reading
a blob checks its bytes against its name, so a blob changed on disk is refused, never believed.
``council verify`` checks every blob the log names.

:class:`Blobs` is the one way to keep blobs (put, get, has); :class:`BlobStore` keeps them in files
on this node's disk. An agent on a node without the council's home keeps them through the
council's depot instead (``actors.depot.DepotBlobs``), which holds them in the same files.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from events.errors import CouncilError

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class BlobError(CouncilError):
    """A blob the log names is missing or is not what its digest says."""


class Blobs(ABC):
    """Where blobs are kept: content-addressed, written once, checked against their names when read."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` (once: the same bytes are the same blob) and return its SHA-256, hex."""

    @abstractmethod
    def get(self, digest: str) -> bytes:
        """The bytes of blob ``digest``; :class:`BlobError` if it is missing or its bytes are not its digest's."""

    @abstractmethod
    def has(self, digest: str) -> bool:
        """Whether blob ``digest`` is stored (not whether it is intact: :meth:`get` says that)."""


def checked(digest: str, data: bytes, where: str) -> bytes:
    """``data``, if it is blob ``digest``'s bytes; :class:`BlobError` naming ``where`` it came from if not."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise BlobError(f"blob {digest} in {where} has been altered: its bytes no longer hash to its name")
    return data


def name_of(digest: str) -> str:
    """``digest``, if it is a blob's name (a SHA-256 in lowercase hex); :class:`BlobError` if not."""
    if not _DIGEST.match(digest):
        raise BlobError(f"{digest!r} is not a blob's name (a SHA-256 in lowercase hex)")
    return digest


class BlobStore(Blobs):
    """The blobs under ``root`` (a council's ``<home>/blobs``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes) -> str:
        """Store ``data`` (once: the same bytes are the same blob) and return its SHA-256, hex."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if path.is_file():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)  # atomic: a reader never sees part of a blob
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes of blob ``digest``; :class:`BlobError` if it is missing or its bytes are not its digest's."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobError(f"blob {digest} is missing from {self.root}; the log names it, so the blob store was "
                            "changed or is not this log's (check --home)") from None
        return checked(digest, data, str(self.root))

    def has(self, digest: str) -> bool:
        """Whether blob ``digest`` is stored (not whether it is intact: :meth:`get` says that)."""
        return self.path(digest).is_file()

    def path(self, digest: str) -> Path:
        """Where blob ``digest`` lives; :class:`BlobError` for a name that is not a SHA-256 in hex."""
        name_of(digest)
        return self.root / "sha256" / digest[:2] / digest[2:]
