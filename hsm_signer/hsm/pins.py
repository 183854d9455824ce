"""Where the HSM user PIN comes from.

A PIN source is asked once, when the service logs in to the token; the PIN then lives
only in the memory of the process that holds the session. Sources describe themselves
for the start-up log (``describe()``) without ever revealing the PIN, and say whether
they are fit for production. The m-of-n share source used in production lives in
:mod:`hsm_signer.hsm.shares` (it rebuilds the PIN from SLIP-39 shares).

This module must never log, print or put a PIN into an exception message.
"""

from __future__ import annotations

import getpass
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import ConfigError


class PinSource(Protocol):
    """Something that can hand over the user PIN once."""

    #: False for sources that keep the PIN at rest (files, environment): development only.
    production_grade: bool

    def get_pin(self) -> str: ...

    def describe(self) -> str:
        """Where the PIN comes from, for logs. Never the PIN itself."""


def _checked(pin: str, where: str) -> str:
    pin = pin.strip("\r\n")
    if not pin:
        raise ConfigError(f"the PIN from {where} is empty; put the token's user PIN there")
    return pin


@dataclass(frozen=True)
class EnvPin:
    """PIN from an environment variable. Insecure: for development and tests."""

    variable: str = "HSM_SIGNER_PIN"
    production_grade: bool = field(default=False, init=False)

    def get_pin(self) -> str:
        value = os.environ.get(self.variable)
        if value is None:
            raise ConfigError(
                f"environment variable {self.variable} is not set; export the token's user PIN "
                "there or choose another hsm.pin source"
            )
        return _checked(value, f"environment variable {self.variable}")

    def describe(self) -> str:
        return f"environment variable {self.variable} (INSECURE: development only)"


@dataclass(frozen=True)
class FilePin:
    """PIN from a file readable only by its owner. Insecure: for development and tests."""

    path: Path
    production_grade: bool = field(default=False, init=False)

    def get_pin(self) -> str:
        try:
            mode = self.path.stat().st_mode
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read PIN file {self.path}: {exc.strerror}; check hsm.pin.file") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"PIN file {self.path} is readable by other users; run: chmod 600 {self.path}"
            )
        return _checked(text, f"file {self.path}")

    def describe(self) -> str:
        return f"file {self.path} (INSECURE: development only)"


@dataclass(frozen=True)
class PromptPin:
    """PIN typed at the terminal, not echoed."""

    prompt: str = "HSM user PIN: "
    reader: Callable[[str], str] = getpass.getpass
    production_grade: bool = field(default=True, init=False)

    def get_pin(self) -> str:
        return _checked(self.reader(self.prompt), "the prompt")

    def describe(self) -> str:
        return "interactive prompt"


@dataclass(frozen=True)
class FixedPin:
    """A PIN already in memory (the ceremony, which has just created it, and tests)."""

    pin: str = field(repr=False)
    production_grade: bool = field(default=False, init=False)

    def get_pin(self) -> str:
        return _checked(self.pin, "memory")

    def describe(self) -> str:
        return "in-memory PIN"


PIN_SOURCES = ("env", "file", "prompt", "shares")


@dataclass(frozen=True)
class PinSpec:
    """Where a PIN will come from, as a configuration file says it (never the PIN itself).

    Shared by the service configuration and the ceremony configuration.
    """

    source: str = "env"
    variable: str = "HSM_SIGNER_PIN"
    path: Path | None = None
    share_files: tuple[Path, ...] = ()

    def build(self) -> PinSource:
        if self.source == "env":
            return EnvPin(self.variable)
        if self.source == "file":
            assert self.path is not None
            return FilePin(self.path)
        if self.source == "prompt":
            return PromptPin("HSM user PIN (not echoed): ")
        from .shares import SharePin  # m-of-n activation (SLIP-39 shares from the ceremony)
        return SharePin(share_files=self.share_files)

    def record(self) -> dict[str, Any]:
        """What a transcript or log may say about this source (no secret in it)."""
        out: dict[str, Any] = {"source": self.source}
        if self.source == "env":
            out["variable"] = self.variable
        if self.source == "file":
            out["path"] = str(self.path)
        if self.source == "shares":
            out["share_files"] = len(self.share_files)
        return out
