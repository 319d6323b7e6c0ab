"""The only way out of a sandbox the policy granted the network: a proxy that reaches the internet, never the host.

A command in the sandbox has no network interface but its own loopback, granted the network or
not. When a rule grants it (``network = true``: a dependency install), the command runs under a
small forwarder (:data:`FORWARDER`) that listens on the sandbox's loopback at :data:`PORT` and
hands each connection, through a Unix socket bound into the sandbox, to an :class:`EgressProxy`
running in the agent. ``HTTPS_PROXY`` and ``HTTP_PROXY`` point at the forwarder, so pip, uv, git
and curl go through it; a program that ignores them has no way out at all.

The proxy speaks HTTP ``CONNECT`` (and plain HTTP in absolute form). It resolves the name itself
and connects to the very address it checked, which must be global: a loopback, private,
link-local, shared or reserved address — the council's metrics, Ray's GCS and dashboard, the
cloud's metadata service, anything else on the host or its network — is refused, and so is any
port but 443 and 80. The hosts of the policy's package index are trusted with any address and
port (an index on the team's own network). Every destination asked for, reached or refused, is
kept in :attr:`EgressProxy.asked`.
"""

from __future__ import annotations

import ipaddress
import os
import select
import shutil
import socket
import socketserver
import tempfile
import threading
from pathlib import Path

PORT = 3128
"""Where the forwarder listens on the sandbox's own loopback."""
MOUNT = "/run/council-egress"
"""Where the proxy's socket directory is bound inside the sandbox."""
SOCKET = "proxy.sock"
OPEN_PORTS = (443, 80)
"""The ports an untrusted host may be reached on."""
IDLE = 120.0
"""Seconds a tunnel may carry nothing before it is closed."""
HEAD_LIMIT = 16384

FORWARDER = '''
import os, signal, socket, subprocess, sys, threading
path, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(64)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve():
    while True:
        client, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
code = subprocess.call(argv)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
'''
"""Run inside the sandbox ahead of the command (``python -I -c FORWARDER SOCKET PORT -- ARGV``): forwards
loopback connections to the proxy's socket, runs the command, and ends as it ended (by the same signal, if one
killed it)."""


def inside(python: str, argv: list[str]) -> list[str]:
    """``argv`` run under the forwarder, with the interpreter ``python`` (one the sandbox can read)."""
    return [python, "-I", "-c", FORWARDER, f"{MOUNT}/{SOCKET}", str(PORT), *argv]


def variables() -> dict[str, str]:
    """The environment that sends a command's HTTP(S) through the forwarder."""
    proxy = f"http://127.0.0.1:{PORT}"
    return {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy,
            "NO_PROXY": "", "no_proxy": ""}


def refusal(host: str, port: int, address: str, trusted: frozenset[str]) -> str | None:
    """Why ``host:port`` (resolved to ``address``) may not be reached from a sandbox; None if it may."""
    if host.lower() in trusted:
        return None
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        return f"{address} is not a public address (the host, its network, or a reserved range)"
    if port not in OPEN_PORTS:
        return f"port {port} is not open to commands (only {', '.join(map(str, OPEN_PORTS))})"
    return None


class EgressProxy:
    """An HTTP proxy on a Unix socket in a private directory, for the commands of one action; stop it after."""

    def __init__(self, trusted: tuple[str, ...] = (), *, connect_timeout: float = 20.0) -> None:
        """``trusted`` are host names reached whatever their address and port (the package index's)."""
        self.directory = Path(tempfile.mkdtemp(prefix="council-egress-"))
        self.trusted = frozenset(h.lower() for h in trusted)
        self.connect_timeout = connect_timeout
        self.asked: list[str] = []
        """Each destination asked for, in order: ``host:port`` and, if refused, `` refused: why``."""
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self._server = Server(str(self.directory / SOCKET), Handler)
        os.chmod(self.directory / SOCKET, 0o666)  # the sandbox's user (nobody, when the council is root) connects
        self._thread = threading.Thread(target=self._server.serve_forever, name="egress-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> EgressProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop listening and remove the socket's directory (tunnels still open end with their command)."""
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _note(self, line: str) -> None:
        with self._lock:
            if len(self.asked) < 1000:
                self.asked.append(line)

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(30.0)
        try:
            head = _read_head(client)
            method, target, rest = _request_line(head)
            if method == "CONNECT":
                host, port = _split(target, 443)
                upstream = self._open(client, host, port)
                if upstream is not None:
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    _splice(client, upstream)
            elif target.startswith("http://"):
                host, port, path = _absolute(target)
                upstream = self._open(client, host, port)
                if upstream is not None:
                    upstream.sendall(f"{method} {path} {rest}".encode() + head[head.index(b"\r\n"):])
                    _splice(client, upstream)
            else:
                _answer(client, 400, "the proxy takes CONNECT or an absolute http:// URL")
        except (OSError, ValueError):
            pass
        finally:
            client.close()

    def _open(self, client: socket.socket, host: str, port: int) -> socket.socket | None:
        """A connection to ``host:port`` at an address that may be reached, or None (the client told why)."""
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            self._note(f"{host}:{port} refused: it does not resolve ({exc})")
            _answer(client, 502, f"{host} does not resolve")
            return None
        for family, kind, proto, _, address in found:
            why = refusal(host, port, str(address[0]), self.trusted)
            if why is not None:
                self._note(f"{host}:{port} refused: {why}")
                _answer(client, 403, f"{host}:{port} may not be reached from the sandbox: {why}")
                return None
            upstream = socket.socket(family, kind, proto)
            upstream.settimeout(self.connect_timeout)
            try:
                upstream.connect(address)  # the address just checked, never a second lookup
            except OSError:
                upstream.close()
                continue
            self._note(f"{host}:{port}")
            upstream.settimeout(IDLE)
            client.settimeout(IDLE)
            return upstream
        self._note(f"{host}:{port} refused: no address answered")
        _answer(client, 502, f"{host}:{port} did not answer")
        return None


def _read_head(client: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        data = client.recv(4096)
        if not data or len(head) > HEAD_LIMIT:
            raise ValueError("no request head")
        head += data
    return head


def _request_line(head: bytes) -> tuple[str, str, str]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    method, target, rest = line.split(" ", 2)
    return method.upper(), target, rest


def _split(authority: str, default: int) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` as (host, port)."""
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        port = port.removeprefix(":")
    elif authority.count(":") == 1:
        host, _, port = authority.partition(":")
    else:
        host, port = authority, ""
    return host, int(port) if port else default


def _absolute(url: str) -> tuple[str, int, str]:
    """An absolute ``http://`` URL as (host, port, the path to ask the host for)."""
    authority, slash, path = url.removeprefix("http://").partition("/")
    host, port = _split(authority, 80)
    return host, port, slash + path if slash else "/"


def _answer(client: socket.socket, status: int, why: str) -> None:
    body = why.encode()
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    client.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                   "Connection: close\r\n\r\n".encode() + body)


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Carry bytes both ways until either side closes or both stay idle for :data:`IDLE` seconds."""
    pair = {a: b, b: a}
    try:
        while True:
            ready, _, _ = select.select(list(pair), [], [], IDLE)
            if not ready:
                return
            for source in ready:
                data = source.recv(65536)
                if not data:
                    return
                pair[source].sendall(data)
    finally:
        b.close()
