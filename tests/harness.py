"""Test harness: throwaway SoftHSM2 tokens, a p11-kit network HSM, PyKCS11 as a witness.

PyKCS11 is an independent PKCS#11 client: tests use it to check what python-pkcs11 (our
HSM layer) did, so a bug in one library cannot hide behind itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hsm_signer import softhsm
from hsm_signer.testing.p11kit import P11KIT_SERVER, P11KitServer  # noqa: F401  (re-exported)
from hsm_signer.testing.p11kit import find_client as find_p11kit_client  # noqa: F401

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


# --- the module under test ----------------------------------------------------------------
# The HSM-facing tests (marked ``hsm``) run against SoftHSM2 by default, and against any
# other PKCS#11 module these variables name (docs/HSM.md, "Running the tests on your token"):
#   HSM_SIGNER_TEST_MODULE   the module's path; "opencryptoki" starts the openCryptoki soft
#                            token of this machine for the run (tests/harness: OpenCryptokiSoftToken)
#   HSM_SIGNER_TEST_TOKEN    the label of a token prepared beforehand (else SoftHSM tokens are
#                            made, reached through HSM_SIGNER_TEST_MODULE: p11-kit-proxy)
#   HSM_SIGNER_TEST_PIN      that token's user PIN
#   HSM_SIGNER_TEST_PREPARE  a command ``PREPARE LABEL USER_PIN`` that (re)makes a token with
#                            that label and user PIN, for tests that need a fresh token
# A capability the token lacks makes a test SKIP with the reason (``requires``), never pass.
TEST_MODULE = os.environ.get("HSM_SIGNER_TEST_MODULE") or None
TEST_TOKEN = os.environ.get("HSM_SIGNER_TEST_TOKEN") or None
TEST_PIN = os.environ.get("HSM_SIGNER_TEST_PIN") or None
TEST_PREPARE = os.environ.get("HSM_SIGNER_TEST_PREPARE") or None


class TokenFactory:
    """Makes fresh, uniquely labelled tokens: SoftHSM2 tokens in one token directory (reached
    through ``HSM_SIGNER_TEST_MODULE`` when set), or the prepared token of another module."""

    def __init__(self, conf: Path, *, module: str | None = None, token: str | None = None,
                 pin: str | None = None, prepare=None):
        self.conf = conf
        self.module = module
        self.premade = token
        self.pin = pin
        self.prepare = prepare  # callable(label, user_pin) or a command line, or None
        self._numbers = itertools.count(1)

    @property
    def softhsm_backed(self) -> bool:
        """True when tokens are SoftHSM tokens (reached directly or through a proxy)."""
        return self.premade is None

    def shared(self, prefix: str = "shared") -> softhsm.SoftHsmToken:
        """The token most tests share: a new SoftHSM token, or the prepared one as it is."""
        if self.premade is not None:
            return self._premade(self.premade, self.pin or "")
        return self.new(prefix)

    def new(self, prefix: str = "test") -> softhsm.SoftHsmToken:
        label = f"{prefix}-{os.getpid()}-{next(self._numbers)}"
        if self.premade is not None:
            if self.prepare is None:
                pytest.skip(f"needs a fresh token, and {self.module} has only the prepared token "
                            f"{self.premade!r} (set HSM_SIGNER_TEST_PREPARE to make fresh ones)")
            label = label[:32]
            if callable(self.prepare):
                self.prepare(label, USER_PIN[:8])
            else:
                subprocess.run([*self.prepare.split(), label, USER_PIN[:8]], check=True, timeout=120)
            return self._premade(label, USER_PIN[:8])
        token = softhsm.init_token(self.conf, label, so_pin=SO_PIN, user_pin=USER_PIN)
        return dataclasses.replace(token, module=self.module) if self.module else token

    def _premade(self, label: str, pin: str) -> softhsm.SoftHsmToken:
        return softhsm.SoftHsmToken(module=self.module or "", conf=self.conf, label=label, so_pin="not-known",
                                    user_pin=pin)


def served_by_softhsm(token: softhsm.SoftHsmToken) -> softhsm.SoftHsmToken:
    """``token`` as a p11-kit server must load it: through SoftHSM itself, whatever module
    the tests reach tokens through (a proxy cannot be a server's provider)."""
    return dataclasses.replace(token, module=softhsm.require_module())


_offered: dict[tuple[str, str], frozenset] = {}


def requires(token: softhsm.SoftHsmToken, *mechanisms) -> None:
    """Skip, naming the module and what it lacks, unless ``token`` offers every mechanism
    (like python-pkcs11's own ``@requires(Mechanism.X)``). Never a failure, even in CI:
    a capability is the token's, not a missing install."""
    from hsm_signer.hsm import FixedPin, Hsm
    key = (token.module, token.label)
    if key not in _offered:
        with Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)) as hsm:
            _offered[key] = hsm.mechanisms()
    missing = [f"CKM_{m.name}" for m in mechanisms if m not in _offered[key]]
    if missing:
        pytest.skip(f"token {token.label!r} through {token.module} lacks {', '.join(missing)}")


OPENCRYPTOKI_MODULES = ("/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so.0",
                        "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
                        "/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so")
OPENCRYPTOKI_SO_PIN = "87654321"  # openCryptoki's factory SO PIN, kept: this token is test material


class OpenCryptokiSoftToken:
    """This machine's openCryptoki soft token (Debian ``opencryptoki``), for tests only.

    openCryptoki keeps one soft token per machine (``/var/lib/opencryptoki/swtok``) behind
    its slot daemon ``pkcsslotd``. :meth:`start` starts the daemon if it is not running and
    :meth:`init` (re)initialises the token with ``pkcsconf`` — erasing it — so it is only
    used when the token is factory-fresh or was made by these tests (label ``hsm-signer…``).
    PINs are 4–8 characters on this token.
    """

    def __init__(self):
        self.module = next((m for m in OPENCRYPTOKI_MODULES if os.path.exists(m)), None)
        self.slot: int | None = None
        self.started_pid: int | None = None

    def start(self) -> "OpenCryptokiSoftToken":
        import shutil as _shutil
        require(self.module is not None and _shutil.which("pkcsslotd") is not None,
                "openCryptoki is not installed (apt-get install opencryptoki)")
        require(os.geteuid() == 0, "starting pkcsslotd and initialising its token needs root")
        if not self._daemon_running():
            subprocess.run(["pkcsslotd"], check=True, timeout=30)  # it forks and writes its pid file
            deadline = time.monotonic() + 15
            while self._daemon_pid() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            self.started_pid = self._daemon_pid()
            require(self.started_pid is not None, "pkcsslotd did not start (see its messages in the system log)")
        listing = subprocess.run(["pkcsconf", "-t"], capture_output=True, text=True, timeout=30).stdout
        slot, label = None, None
        for block in listing.split("Token #")[1:]:
            if "Model: IBM SoftTok" in block:
                slot = int(block.split()[0])
                label = block.split("Label:")[1].splitlines()[0].strip()
        require(slot is not None, f"openCryptoki lists no soft token (pkcsconf -t said: {listing.strip()[:200]})")
        if label not in ("IBM OS PKCS#11", "") and not label.startswith("hsm-signer"):
            pytest.skip(f"the openCryptoki soft token is labelled {label!r}: not made by these tests, left alone")
        self.slot = slot
        return self

    def init(self, label: str, user_pin: str) -> None:
        """Erase the token and initialise it: label, then the user PIN (set by the SO, then
        changed by the user, as ``pkcsconf`` documents)."""
        assert self.slot is not None
        slot = str(self.slot)
        steps = [(["pkcsconf", "-I", "-c", slot, "-S", OPENCRYPTOKI_SO_PIN], f"{label}\n"),
                 (["pkcsconf", "-u", "-c", slot, "-S", OPENCRYPTOKI_SO_PIN, "-n", "0000"], None),
                 (["pkcsconf", "-p", "-c", slot, "-U", "0000", "-n", user_pin], None)]
        for command, stdin in steps:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
            if done.returncode != 0 or "Error" in done.stdout + done.stderr:
                raise RuntimeError(f"{command[:2]} failed: {(done.stdout + done.stderr).strip()}")

    def stop(self) -> None:
        """Stop the daemon if this harness started it (its own pid, nothing else)."""
        if self.started_pid:
            try:
                os.kill(self.started_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            # pkcsslotd stays up while a process it knows still has the module loaded; the
            # outage tests want it gone: SIGKILL after a grace period.
            for sig, grace in ((None, 5.0), (signal.SIGKILL, 10.0)):
                if sig is not None and self._daemon_running():
                    os.kill(self.started_pid, sig)
                deadline = time.monotonic() + grace
                while self._daemon_running() and time.monotonic() < deadline:
                    time.sleep(0.05)
            if self._daemon_running():
                raise RuntimeError(f"pkcsslotd (pid {self.started_pid}) did not stop")
            self.started_pid = None

    @staticmethod
    def _daemon_pid() -> int | None:
        try:
            pid = int(Path("/run/pkcsslotd.pid").read_text().strip())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            return None
        return pid if name == "pkcsslotd" and state not in ("Z", "X") else None

    def _daemon_running(self) -> bool:
        return self._daemon_pid() is not None


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
