"""SoftHSM tokens, keys and a p11-kit network HSM for benchmarks.

Each benchmark process gets its own SoftHSM token directory under its scratch directory
(``SOFTHSM2_CONF`` is set before the PKCS#11 module is first loaded: SoftHSM reads it at
``C_Initialize``, once per process). Keys are made with the product's own ceremony calls
(:mod:`hsm_signer.hsm.manage`), so they have the production attributes. The PINs are
fixed, benchmark-only values on throwaway tokens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from hsm_signer import softhsm

SO_PIN = "bench-so-pin-1234"
USER_PIN = "bench-user-pin-5678"
P11KIT_SERVER = "/usr/libexec/p11-kit/p11-kit-server"
P11KIT_CLIENT_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/pkcs11/p11-kit-client.so",
)


def token_directory(workdir: Path) -> Path:
    """Create this process's SoftHSM token directory and point ``SOFTHSM2_CONF`` at it."""
    conf = softhsm.write_conf(Path(workdir) / "softhsm")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


def new_token(conf: Path, label: str) -> softhsm.SoftHsmToken:
    return softhsm.init_token(conf, label, so_pin=SO_PIN, user_pin=USER_PIN)


def open_hsm(token: softhsm.SoftHsmToken, module: str | None = None):
    from hsm_signer.hsm import FixedPin, Hsm
    return Hsm(module or token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)).open()


def find_p11kit_client() -> str | None:
    return next((p for p in P11KIT_CLIENT_CANDIDATES if os.path.exists(p)), None)


class P11KitServer:
    """``p11-kit server`` exporting one token on a Unix socket (a network HSM on loopback).

    The server forks a child per connection, so it runs in its own session and is
    stopped by killing that process group (only the group this object started).
    """

    def __init__(self, token: softhsm.SoftHsmToken, socket_path: Path):
        self.token = token
        self.socket_path = Path(socket_path)
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"unix:path={self.socket_path}"

    def start(self) -> "P11KitServer":
        if self.socket_path.exists():
            self.socket_path.unlink()
        self.process = subprocess.Popen(
            [P11KIT_SERVER, "-f", "-n", str(self.socket_path), "--provider", self.token.module,
             f"pkcs11:token={self.token.label}"],
            env={**os.environ, **self.token.env()}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"p11-kit server exited: {self.process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise RuntimeError("p11-kit server did not create its socket within 10 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        self.process = None
        self.socket_path.unlink(missing_ok=True)
