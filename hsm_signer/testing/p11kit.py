"""A token served over p11-kit's RPC on a Unix socket: a network HSM simulated on one host.

For tests (an HSM outage is killing the server), benchmarks (signing through the network
client) and rehearsals. The service reaches the token by loading p11-kit's client module
with ``P11_KIT_SERVER_ADDRESS`` set to :attr:`P11KitServer.address`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..softhsm import SoftHsmToken

P11KIT_SERVER = "/usr/libexec/p11-kit/p11-kit-server"
P11KIT_CLIENT_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/pkcs11/p11-kit-client.so",
)


def find_client() -> str | None:
    """p11-kit's client module, if installed (Debian: p11-kit-modules)."""
    return next((p for p in P11KIT_CLIENT_CANDIDATES if os.path.exists(p)), None)


class P11KitServer:
    """``p11-kit server`` for one token. It forks a child per connection, so it runs in a
    session of its own and :meth:`stop` kills the whole process group (an outage)."""

    def __init__(self, token: SoftHsmToken, socket_path: Path):
        self.token = token
        self.socket_path = Path(socket_path)
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"unix:path={self.socket_path}"

    def start(self, timeout: float = 10) -> "P11KitServer":
        self.socket_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [P11KIT_SERVER, "-f", "-n", str(self.socket_path), "--provider", self.token.module,
             f"pkcs11:token={self.token.label}"],
            env={**os.environ, **self.token.env()}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        # The socket file appears at bind(), before listen(): wait until a connection is
        # accepted, or a client that comes in between finds no server (and no token).
        while not self._accepts():
            if self.process.poll() is not None:
                raise RuntimeError(f"p11-kit server exited: {self.process.communicate()[1].decode()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"p11-kit server did not accept connections within {timeout:.0f} s")
            time.sleep(0.02)
        return self

    def _accepts(self) -> bool:
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        """The outage: kill the server and every child serving a connection."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None
        self.socket_path.unlink(missing_ok=True)
