"""SoftHSM2 provisioning for rehearsals, the demo and tests.

SoftHSM2 is a software token: good for rehearsing the ceremony and for tests, never for
a real election. Each user of it gets its own token directory through ``SOFTHSM2_CONF``
so runs never see each other's keys.

Token initialisation goes through ``softhsm2-util``; its PINs appear briefly on that
command line, which is acceptable only because SoftHSM tokens are rehearsal material.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def find_module() -> str | None:
    """Path of the SoftHSM2 PKCS#11 module, or None when SoftHSM2 is not installed."""
    for candidate in MODULE_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    return None


def require_module() -> str:
    module = find_module()
    if module is None or shutil.which("softhsm2-util") is None:
        raise ConfigError(
            "SoftHSM2 is not installed; on Debian/Ubuntu run: apt-get install softhsm2 "
            "(elsewhere install SoftHSM 2.6 and make sure softhsm2-util is on PATH)"
        )
    return module


def write_conf(directory: Path) -> Path:
    """Create ``directory/tokens`` and a softhsm2.conf pointing at it; return the conf path."""
    directory = Path(directory)
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = directory / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(
            f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
            "slots.removable = false\n",
            encoding="utf-8",
        )
    return conf


@dataclass(frozen=True)
class SoftHsmToken:
    """A SoftHSM2 token: where it lives and the PINs it was initialised with."""

    module: str
    conf: Path
    label: str
    so_pin: str = field(repr=False)
    user_pin: str = field(repr=False)

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}


def conf_problem(conf: Path) -> str | None:
    """What stops SoftHSM from making a token with ``conf``, or None: a missing file, or a
    token directory that is missing or not writable (SoftHSM would only fail at ``--init-token``)."""
    conf = Path(conf)
    if not conf.is_file():
        return f"the SoftHSM configuration {conf} does not exist"
    try:
        lines = conf.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return f"the SoftHSM configuration {conf} cannot be read ({exc})"
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and name.strip() == "directories.tokendir":
            tokens = Path(value.strip())
            if not tokens.is_dir():
                return f"the token directory {tokens} named in {conf} does not exist"
            if not os.access(tokens, os.W_OK):
                return f"the token directory {tokens} named in {conf} is not writable"
            return None
    return f"the SoftHSM configuration {conf} names no directories.tokendir"


def token_exists(conf: Path, label: str) -> bool:
    listing = subprocess.run(["softhsm2-util", "--show-slots"], env={**os.environ, "SOFTHSM2_CONF": str(conf)},
                             capture_output=True, text=True, check=False)
    return any(line.strip() == f"Label:            {label}" for line in listing.stdout.splitlines())


def init_token(conf: Path, label: str, *, so_pin: str, user_pin: str) -> SoftHsmToken:
    """Initialise a new token ``label`` in the first free slot of ``conf``'s directory."""
    module = require_module()
    result = subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", user_pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)}, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        # softhsm2-util never echoes PINs in its messages
        raise ConfigError(f"softhsm2-util could not initialise token {label!r}: {result.stderr.strip() or result.stdout.strip()}")
    return SoftHsmToken(module=module, conf=Path(conf), label=label, so_pin=so_pin, user_pin=user_pin)
