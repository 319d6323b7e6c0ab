"""The store actor's door: appends from writers on its own node over a local socket, rather than a Ray call each.

Why. Every append in the system is a call to one actor, and on a small machine Ray's call is most
of an append's cost: with 16 writers on two cores, Ray alone — an actor that answers at once and
stores nothing — makes about 1,800 calls a second, and the store actor behind Ray calls commits
about 1,050 appends a second; through the door, about 2,900 (``bench/store_postgres.py --ray``).
A writer on the store actor's node knocks at the door instead; a writer anywhere else, or one
whose knock fails, makes the Ray call as before. The two carry the same bytes
(:mod:`actors.store_wire`) to the same group commit, so which way an append went changes nothing
but its cost — and since every event's id is given before the first try, an append whose answer
was lost with the door is sent again through Ray and stored once.

Who may enter. The socket is a file in a directory of its own (mode 0700) under the node's
temporary directory; a sandboxed command sees neither (its ``/tmp`` is private and its network
namespace its own). A caller must first send the door's token: 32 random bytes the actor made when
it started, given only to whoever asks the actor through Ray. A wrong token, a frame over
:data:`MAX_FRAME` or a frame cut short closes the connection and nothing is appended.

What crosses. After the token, each request is a frame (a 4-byte big-endian length, then the
bytes) and is answered by one frame. A connection carries one request at a time — a
:class:`actors.store_client.StoreClient` combines its threads' appends into one call anyway.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import msgspec

TOKEN_BYTES = 32
MAX_FRAME = 256 << 20
"""The largest request or answer a frame carries (bytes): a bigger one closes the connection."""
_LENGTH = struct.Struct("!I")
_PREFIX = "council-store-door-"
_log = logging.getLogger(__name__)


class Address(msgspec.Struct, frozen=True):
    """Where the door is and how to be let in: the Ray node it is on, its socket's path, its token."""

    node_id: str
    path: str
    token: bytes


class Door:
    """The server side, in the store actor: a thread accepting connections, one thread serving each.

    ``answer`` turns a request's bytes into the answer's; it is called from several threads at once
    (as the actor's Ray methods are), and an exception it raises closes that connection only.
    """

    def __init__(self, answer: Callable[[bytes], bytes], node_id: str) -> None:
        self._answer = answer
        _sweep()
        # Mode 0700: only this user may look in. The pid in its name lets a later door sweep it once this one died.
        self._dir = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
        path = os.path.join(self._dir, "door")
        self.address = Address(node_id, path, secrets.token_bytes(TOKEN_BYTES))
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(path)
        os.chmod(path, 0o600)
        self._socket.listen(128)
        self._closed = False
        self._answered = 0
        self._counting = threading.Lock()
        threading.Thread(target=self._accept, name="store-door", daemon=True).start()

    @property
    def answered(self) -> int:
        """How many requests the door has answered."""
        return self._answered

    def close(self) -> None:
        """Stop taking connections and remove the socket (connections being served end with the process)."""
        self._closed = True
        self._socket.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(connection,), name="store-door-guest", daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                if not hmac.compare_digest(_exactly(connection, TOKEN_BYTES), self.address.token):
                    return
                while True:
                    answer = self._answer(_receive(connection))
                    with self._counting:  # counted before it is sent: a guest that has its answer sees it counted
                        self._answered += 1
                    connection.sendall(_frame(answer))
            except (OSError, EOFError, FrameTooLarge):
                return  # the caller left, or broke the protocol: its connection ends, nothing else does
            except Exception:  # noqa: BLE001 - the answer failed: this caller retries through Ray
                _log.exception("the store door could not answer a request; the connection is closed")


class Knock:
    """The client side: one connection to a door, one request at a time. Any failure raises :class:`OSError`
    (or :class:`EOFError`), after which the connection is useless: close it."""

    def __init__(self, address: Address, timeout: float) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout)
        try:
            self._socket.connect(address.path)
            self._socket.sendall(address.token)
        except OSError:
            self._socket.close()
            raise

    def call(self, request: bytes) -> bytes:
        """Send ``request`` and return the answer."""
        self._socket.sendall(_frame(request))
        return _receive(self._socket)

    def close(self) -> None:
        self._socket.close()


def _sweep() -> None:
    """Remove the directories of doors whose process has died (a killed store actor cannot remove its own)."""
    for found in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = found.name[len(_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or found.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(found, ignore_errors=True)
        except OSError:
            continue  # gone meanwhile, or alive as another user's process


class FrameTooLarge(OSError):
    """A frame's length is over :data:`MAX_FRAME`."""


def _frame(data: bytes) -> bytes:
    if len(data) > MAX_FRAME:
        raise FrameTooLarge(f"a frame of {len(data)} bytes is over the door's {MAX_FRAME}")
    return _LENGTH.pack(len(data)) + data


def _receive(connection: socket.socket) -> bytes:
    (length,) = _LENGTH.unpack(_exactly(connection, _LENGTH.size))
    if length > MAX_FRAME:
        raise FrameTooLarge(f"a frame of {length} bytes is over the door's {MAX_FRAME}")
    return _exactly(connection, length)


def _exactly(connection: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``connection``; :class:`EOFError` if it ends first."""
    data = bytearray()
    while len(data) < n:
        chunk = connection.recv(min(n - len(data), 1 << 20))
        if not chunk:
            raise EOFError(f"the connection ended {n - len(data)} bytes short")
        data += chunk
    return bytes(data)
