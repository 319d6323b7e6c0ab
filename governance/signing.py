"""What the council's signatures cover: canonical bytes of a typed object, under a purpose label.

Every signed object is a msgspec Struct encoded as deterministic MessagePack (fields in
declaration order, map keys sorted), so the same object always gives the same bytes. The bytes
signed are ``b"agent-council/v1/" + purpose + b"\\0" + those bytes``: a signature made for one
purpose (a warrant) can never be presented as another (an approval, a checkpoint).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from governance.keys import PublicKey, SigningKey

_ENCODER = msgspec.msgpack.Encoder(order="deterministic")
_DOMAIN = b"agent-council/v1/"


def canonical(obj: Any) -> bytes:
    """The canonical bytes of ``obj`` (a Struct, or plain data): deterministic MessagePack."""
    return _ENCODER.encode(obj)


def digest(obj: Any) -> str:
    """The SHA-256 of :func:`canonical` bytes, in hex: what approvers sign and what decisions name."""
    return hashlib.sha256(canonical(obj)).hexdigest()


def message(purpose: str, obj: Any) -> bytes:
    """The exact bytes a signature for ``purpose`` over ``obj`` covers."""
    return framed(purpose, canonical(obj))


def framed(purpose: str, data: bytes) -> bytes:
    """The exact bytes a signature for ``purpose`` over already-canonical bytes ``data`` covers."""
    return _DOMAIN + purpose.encode() + b"\0" + data


def sign(key: SigningKey, purpose: str, obj: Any) -> bytes:
    """``key``'s signature over ``obj`` for ``purpose``."""
    return key.sign(message(purpose, obj))


def verify(key: PublicKey, purpose: str, obj: Any, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature over ``obj`` for ``purpose``."""
    return key.verify(signature, message(purpose, obj))
