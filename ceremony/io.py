"""How the ceremony talks to the people in the room: one small interface, two implementations.

The runner never reads a terminal itself. It calls a :class:`CeremonyIO`:

* :class:`TerminalIO` — the real ceremony: prints each step, waits for the administrator
  to press Enter (typing ``abort`` stops the ceremony), asks people to acknowledge by
  typing their name, shows each share to one holder only between cleared screens, and
  reads shares back without echo.
* :class:`NonInteractiveIO` — rehearsals and tests: prints the steps, never waits.
  Nobody acknowledges anything and shares go to files (the runner's job).

Tests drive the runner with their own object that has the same methods.

This module must never log or keep a share after the screen showing it is cleared.
"""

from __future__ import annotations

import getpass
import sys
from typing import Callable, Protocol, TextIO

from hsm_signer.errors import HsmSignerError

CLEAR_SCREEN = "\033[3J\033[2J\033[H"
ABORT_WORD = "abort"


class CeremonyAbortedError(HsmSignerError):
    """The administrator (or the end of input) stopped the ceremony."""


class CeremonyIO(Protocol):
    #: True when people are present to confirm, acknowledge and receive shares on screen.
    interactive: bool

    def say(self, text: str) -> None:
        """Show text to everyone in the room."""

    def confirm(self, prompt: str) -> None:
        """Wait until the administrator confirms; raise CeremonyAbortedError on ``abort``."""

    def acknowledge(self, name: str, prompt: str) -> None:
        """Wait until ``name`` types their name; raise CeremonyAbortedError on ``abort``."""

    def show_share(self, holder: str, heading: str, share: str) -> None:
        """Show ``share`` to ``holder`` alone: clear, wait for them, show, wait, clear."""

    def read_share(self, prompt: str) -> str:
        """Read a share typed without echo; an empty string means "skip"."""


class NonInteractiveIO:
    """Rehearsal I/O: prints steps to ``out`` and never waits for anyone."""

    interactive = False

    def __init__(self, out: TextIO | None = None):
        self.out = out if out is not None else sys.stdout

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def confirm(self, prompt: str) -> None:
        pass

    def acknowledge(self, name: str, prompt: str) -> None:
        raise CeremonyAbortedError("a non-interactive ceremony cannot collect acknowledgements")

    def show_share(self, holder: str, heading: str, share: str) -> None:
        raise CeremonyAbortedError("a non-interactive ceremony never shows shares on screen")

    def read_share(self, prompt: str) -> str:
        raise CeremonyAbortedError("a non-interactive ceremony cannot read shares")


class TerminalIO:
    """The interactive ceremony on a terminal (or any pair of text streams)."""

    interactive = True

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None,
                 secret_reader: Callable[[str], str] | None = None):
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout
        self._secret_reader = secret_reader

    def say(self, text: str) -> None:
        print(text, file=self.stdout, flush=True)

    def _line(self, prompt: str) -> str:
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            raise CeremonyAbortedError("input ended before the ceremony finished")
        answer = line.strip()
        if answer.lower() == ABORT_WORD:
            raise CeremonyAbortedError("aborted at the administrator's request")
        return answer

    def confirm(self, prompt: str) -> None:
        self._line(f"{prompt} [Enter to continue, 'abort' to stop] ")

    def acknowledge(self, name: str, prompt: str) -> None:
        while True:
            answer = self._line(f"{prompt}\n  {name}, type your name to acknowledge: ")
            if " ".join(answer.split()).casefold() == " ".join(name.split()).casefold():
                return
            self.say(f"  That is not {name!r}; try again (or type 'abort').")

    def clear(self) -> None:
        self.stdout.write(CLEAR_SCREEN + "\n" * 3)
        self.stdout.flush()

    def show_share(self, holder: str, heading: str, share: str) -> None:
        self.clear()
        self._line(f"Only {holder} may look at the screen now. {holder}, press Enter when you are alone at it. ")
        self.say(heading)
        words = share.split()
        for start in range(0, len(words), 5):
            numbered = "  ".join(f"{start + i + 1:2d}. {w:<10}" for i, w in enumerate(words[start:start + 5]))
            self.say("    " + numbered.rstrip())
        self.say(f"SHARE: {share}")
        self._line("Write the words down on the share card, check them, then press Enter to clear the screen. ")
        self.clear()

    def read_share(self, prompt: str) -> str:
        if self._secret_reader is not None:
            answer = self._secret_reader(prompt)
        elif self.stdin is sys.stdin and sys.stdin.isatty():
            answer = getpass.getpass(prompt)
        else:
            answer = self._line(prompt)
        if answer.strip().lower() == ABORT_WORD:
            raise CeremonyAbortedError("aborted at the administrator's request")
        return answer
