"""``serve``'s gunicorn worker: gthread, plus a read deadline and secure error pages.

Slow clients: gunicorn's gthread worker waits for a connection's first byte without
holding a thread, but once a request has begun it reads headers and body with blocking
calls and no timeout, so a client that sends half a request holds a thread for as long as
it likes; 70 such clients stalled every voter (issue 13). Here every request must arrive
whole within ``read_timeout`` seconds of its first byte: after that the connection is
treated as closed by the client (gunicorn then drops it quietly), and its thread is free.
A buffering reverse proxy in front (docs/WEB.md, ``deploy/nginx``) does better still;
this keeps ``serve`` alive without one.

Error pages: the answers gunicorn writes itself (400 for a malformed request line, 414,
431, …) carry the same security headers as the application's own.
"""

from __future__ import annotations

import logging
import socket
import time

from gunicorn.workers.gthread import ThreadWorker

from hsm_signer.web.security import SECURITY_HEADERS

log = logging.getLogger(__name__)

DEFAULT_READ_TIMEOUT = 10.0
_EXTRA_HEADERS = "".join(f"{name}: {value}\r\n" for name, value in SECURITY_HEADERS.items())
_EXTRA_HEADERS += "Cache-Control: no-store\r\n"


class DeadlineSocket(socket.socket):
    """A client connection whose reads stop at the current request's deadline."""

    read_timeout = DEFAULT_READ_TIMEOUT
    deadline: float | None = None  # monotonic time the current request must have arrived by

    @classmethod
    def adopt(cls, sock: socket.socket) -> "DeadlineSocket":
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.deadline = None
        return adopted

    def start_request(self) -> None:
        self.deadline = None  # starts with the request's first read

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self.gettimeout() == 0.0:  # non-blocking (gunicorn's poller): as is
            return super().recv(size, flags)
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.read_timeout
        remaining = self.deadline - now
        if remaining <= 0:
            return self._too_slow()
        # The deadline bounds this read only: writes stay blocking as gunicorn made them (a
        # large record.zip to a slow reader must not be cut off by a reading deadline).
        self.settimeout(remaining)
        try:
            return super().recv(size, flags)
        except (TimeoutError, socket.timeout):
            return self._too_slow()
        finally:
            self.settimeout(None)

    def _too_slow(self) -> bytes:
        log.info("dropped a connection that did not send its request within %.0f s", self.read_timeout)
        return b""  # gunicorn: the client went away


class _SecureErrorPage:
    """The client socket as gunicorn's error-page writer sees it: our headers go in."""

    def __init__(self, sock):
        self._sock = sock

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def sendall(self, data: bytes, *args) -> None:
        head, sep, body = data.partition(b"\r\n")
        if sep and head.startswith(b"HTTP/"):
            data = head + sep + _EXTRA_HEADERS.encode("latin-1") + body
        self._sock.sendall(data, *args)


class HardenedThreadWorker(ThreadWorker):
    """gthread with a per-request read deadline and security headers on its error pages."""

    def handle(self, conn):
        if not isinstance(conn.sock, DeadlineSocket):
            # A new connection, not yet read from nor watched by the poller: adopt its socket.
            conn.sock = DeadlineSocket.adopt(conn.sock)
        conn.sock.start_request()
        return super().handle(conn)

    def handle_error(self, req, client, addr, exc):
        return super().handle_error(req, _SecureErrorPage(client), addr, exc)
