"""Sorting PKCS#11 failures into "try again after reconnecting" and "give up", and naming them.

Transient faults come from the device or the link to it (a network HSM restarting, a
USB token pulled out, a session the module forgot): the layer reconnects and retries
*reads and signatures*. Operations that change the token (key generation, destruction,
import, C_SetPIN) are never repeated, whatever the fault (see ``Hsm.change``): a second
key generation after a failed first one can leave two keys under one label.
Permanent faults are mistakes that retrying cannot fix (wrong PIN, missing key,
unsupported mechanism) and are reported at once as configuration errors.
"""

from __future__ import annotations

import re

from pkcs11 import exceptions as p11

TRANSIENT = (
    p11.DeviceError,
    p11.DeviceRemoved,
    p11.DeviceMemory,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
    p11.UserNotLoggedIn,
    p11.FunctionFailed,
    p11.GeneralError,
    p11.SlotIDInvalid,
    p11.OperationActive,
    p11.OperationNotInitialized,
)

# python-pkcs11 names its exception classes after the return codes, in CamelCase; these are
# the ones whose spelling differs from the CKR_ name.
_CKR_SPELLING = {
    "FunctionCancelled": "CKR_FUNCTION_CANCELED",
    "TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED",
    "RandomNoRNG": "CKR_RANDOM_NO_RNG",
    "AnotherUserAlreadyLoggedIn": "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
    "PinIncorrect": "CKR_PIN_INCORRECT",
    "SessionReadOnlyExists": "CKR_SESSION_READ_ONLY_EXISTS",
}
_NOT_RETURN_CODES = {"NoSuchToken", "NoSuchKey", "MultipleObjectsReturned", "MultipleTokensReturned",
                     "AlreadyInitialized", "PKCS11Error", "ParentageError"}
_UNMAPPED = re.compile(r"Unmapped error code (0x[0-9a-fA-F]+)")
_BARE = {"not initialized": "CKR_CRYPTOKI_NOT_INITIALIZED", "already initialized": "CKR_CRYPTOKI_ALREADY_INITIALIZED"}


def is_transient(exc: BaseException) -> bool:
    """True when reconnecting to the HSM may make the failed call succeed."""
    if isinstance(exc, TRANSIENT):
        return True
    # python-pkcs11 raises a bare PKCS11Error for return codes it has no class for,
    # e.g. CKR_CRYPTOKI_NOT_INITIALIZED after a network module lost its server.
    return type(exc) is p11.PKCS11Error


def return_code(exc: BaseException) -> str | None:
    """The module's own return code behind a python-pkcs11 exception (``CKR_GENERAL_ERROR``).

    None for errors python-pkcs11 makes up itself (no such token, several objects).
    """
    name = type(exc).__name__
    if name in _CKR_SPELLING:
        return _CKR_SPELLING[name]
    if name == "PKCS11Error":
        text = str(exc)
        if match := _UNMAPPED.search(text):
            return f"CKR 0x{int(match.group(1), 16):08X}"
        return next((code for phrase, code in _BARE.items() if phrase in text), None)
    if name in _NOT_RETURN_CODES or not isinstance(exc, p11.PKCS11Error):
        return None
    return "CKR_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def describe(exc: BaseException) -> str:
    """A short, PIN-free description of a PKCS#11 failure for messages and health."""
    text = str(exc).strip()
    code = return_code(exc)
    name = code or type(exc).__name__
    return f"{name}: {text}" if text and code is None else name


def serial_is_ambiguous(serial: str) -> bool:
    """Blank or all-zero serials (tpm2-pkcs11, openCryptoki) cannot tell tokens apart."""
    return not serial.strip() or set(serial.strip()) <= {"0"}
