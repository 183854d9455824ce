"""Test harness: throwaway SoftHSM2 tokens, a p11-kit network HSM, PyKCS11 as a witness.

PyKCS11 is an independent PKCS#11 client: tests use it to check what python-pkcs11 (our
HSM layer) did, so a bug in one library cannot hide behind itself.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_signer import softhsm
from hsm_signer.p11kit import P11KIT_SERVER, P11KitServer  # noqa: F401  (re-exported)
from hsm_signer.p11kit import find_client as find_p11kit_client  # noqa: F401

# The console script installed beside the interpreter running the tests (the venv's bin/),
# never whatever happens to be on PATH: a fresh machine has nothing there.
_SCRIPT = Path(sys.executable).with_name("hsm-signer")
HSM_SIGNER_COMMAND: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "hsm_signer"]

SO_PIN = "so-pin-1234"
USER_PIN = "user-pin-5678"


def require(condition: bool, reason: str) -> None:
    """Skip when a system part is missing; in CI (where everything is installed) fail."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: check .ci/run)")
    pytest.skip(reason)


class TokenFactory:
    """Makes fresh, uniquely labelled SoftHSM2 tokens in one token directory."""

    def __init__(self, conf: Path):
        self.conf = conf
        self._numbers = itertools.count(1)

    def new(self, prefix: str = "test") -> softhsm.SoftHsmToken:
        label = f"{prefix}-{os.getpid()}-{next(self._numbers)}"
        return softhsm.init_token(self.conf, label, so_pin=SO_PIN, user_pin=USER_PIN)


def pykcs11(token: softhsm.SoftHsmToken, operation: str, arg: str | None = None, module: str | None = None):
    """Ask the independent PyKCS11 client (its own process) about ``token``.

    Operations: ``objects`` (every key with its security attributes), ``read-value LABEL``
    and ``wrap LABEL`` (attempts to get a key out; return the PKCS#11 error), and
    ``duplicate-ec LABEL`` (create a second key pair under an existing label).
    """
    command = [sys.executable, str(Path(__file__).with_name("pykcs11_client.py")),
               module or token.module, token.label, operation] + ([arg] if arg else [])
    result = subprocess.run(command, env={**os.environ, **token.env(), "PKCS11_PIN": token.user_pin},
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"PyKCS11 client failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


FAULTY_MODULE_SOURCE = Path(__file__).parent / "p11shim" / "faulty.c"


def build_faulty_module(directory: Path) -> Path:
    """Compile ``p11shim/faulty.c``: a PKCS#11 module in front of a real one that fails on
    purpose (``P11SHIM_FAIL``) and logs the calls that change a token (``P11SHIM_LOG``)."""
    import shutil as _shutil
    require(_shutil.which("gcc") is not None and Path("/usr/include/p11-kit-1/p11-kit/pkcs11.h").exists(),
            "building the faulty PKCS#11 module needs gcc and libp11-kit-dev")
    target = Path(directory) / "faulty-pkcs11.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-I/usr/include/p11-kit-1", "-o", str(target),
                    str(FAULTY_MODULE_SOURCE), "-ldl"], check=True, capture_output=True, timeout=120)
    return target


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, run as the ``postgres`` user.

    PostgreSQL refuses to run as root, so as root the cluster is initialised and started
    through ``runuser``; it listens only on a Unix socket inside its own directory.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.data = directory / "data"
        self.socket_dir = directory / "socket"

    def _as_postgres(self, *command: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)

    def start(self) -> str:
        import shutil as _shutil
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            _shutil.chown(self.directory, "postgres", "postgres")
            _shutil.chown(self.socket_dir, "postgres", "postgres")
        result = self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                   "--auth=trust", "--no-sync", "-E", "UTF8")
        if result.returncode:
            raise RuntimeError(f"initdb failed: {result.stderr}")
        result = self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.directory / "log"),
            "-o", f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' -c fsync=on", "start")
        if result.returncode:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr} {(self.directory / 'log').read_text()}")
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        import psycopg
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
