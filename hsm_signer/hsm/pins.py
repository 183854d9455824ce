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
from typing import Callable, Protocol

from ..config import PIN_SOURCES, PinSpec
from ..errors import ConfigError
from .shares import SharePin


class PinSource(Protocol):
    """Something that can hand over the user PIN once."""

    @property
    def production_grade(self) -> bool:
        """False for sources that keep the PIN at rest (files, environment): development only."""

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


def pin_source(spec: PinSpec) -> PinSource:
    """The PIN source a configuration's ``[... .pin]`` table describes."""
    if spec.source == "env":
        return EnvPin(spec.variable)
    if spec.source == "file":
        if spec.path is None:
            raise ConfigError("hsm.pin: source is 'file' but no path is given; add path = \"...\"")
        return FilePin(spec.path)
    if spec.source == "prompt":
        return PromptPin("HSM user PIN (not echoed): ")
    if spec.source == "shares":
        return SharePin(share_files=spec.share_files)  # m-of-n activation (SLIP-39 shares from the ceremony)
    raise ConfigError(f"hsm.pin: unknown source {spec.source!r}; use one of {', '.join(PIN_SOURCES)}")
