"""The one exception tree of hsm-signer.

Every error the project raises on purpose derives from :class:`HsmSignerError` and
belongs to one family: HSM access, configuration, verification or election rules.
Messages say what was wrong and what to do about it. They must never contain a PIN,
a voting code or private key material.
"""

from __future__ import annotations


class HsmSignerError(Exception):
    """Root of every deliberate hsm-signer error."""


# --- configuration -------------------------------------------------------------------
class ConfigError(HsmSignerError):
    """A configuration file, option or environment variable is wrong.

    ``path`` names the offending field (``hsm.module``) when there is one.
    """

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


# --- HSM access ----------------------------------------------------------------------
class HsmError(HsmSignerError):
    """A PKCS#11 operation failed for a reason that retrying will not fix."""


class HsmConfigError(HsmError, ConfigError):
    """The HSM is reachable but not set up as configured (module, token, PIN, key)."""

    def __init__(self, message: str):
        ConfigError.__init__(self, message)


class KeyNotFoundError(HsmConfigError):
    """No key, or more than one key, matches a label."""


class MechanismNotSupportedError(HsmConfigError):
    """The token does not offer a mechanism this operation needs."""


class TokenChangeFailedError(HsmError):
    """An operation that changes the token (key generation, destruction, import, PIN
    change) failed; it was run once and is never repeated automatically.

    ``return_code`` is the module's own ``CKR_…`` name.
    """

    def __init__(self, message: str, return_code: str | None = None):
        self.return_code = return_code
        super().__init__(message)


class HsmUnavailableError(HsmError):
    """The HSM cannot be reached right now; callers answer 503 and retry later."""


# --- verification --------------------------------------------------------------------
class VerificationError(HsmSignerError):
    """A signature, proof, receipt, transcript or record failed to verify.

    ``code`` is a stable, language-neutral name of what failed (``note.no-trusted-signature``,
    ``proof.root-mismatch``, ``json.duplicate-key``...), the same one the browser verifier
    (``web/static/js/verify/``) reports for the same input; messages may change, codes do
    not. docs/FORMATS.md lists them.
    """

    default_code = "verification-failed"
    step: str | None = None
    """Which step of a multi-step check failed (``verify_receipt`` sets it: keys, receipt, checkpoint...)."""

    def __init__(self, message: str = "", code: str | None = None):
        super().__init__(message)
        self.code = code or self.default_code

    def within(self, context: str) -> "VerificationError":
        """The same error (class and code) with ``context`` in front of its message."""
        return type(self)(f"{context}: {self}", self.code)


class FormatError(VerificationError):
    """Input (a note, receipt, proof, bundle) is malformed before any check runs."""

    default_code = "malformed"


class RootMismatchError(VerificationError):
    """A well-formed proof leads to a different root than the one expected."""

    default_code = "proof.root-mismatch"


# --- election rules ------------------------------------------------------------------
class ElectionError(HsmSignerError):
    """An action is not allowed by the election's rules or current state."""


class UnknownElectionError(ElectionError):
    """No election has this id."""


class PollNotOpenError(ElectionError):
    """The poll has not opened yet or has closed: no ballot is accepted."""
