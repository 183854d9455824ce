"""Sorting PKCS#11 failures into "try again after reconnecting" and "give up".

Transient faults come from the device or the link to it (a network HSM restarting, a
USB token pulled out, a session the module forgot): the layer reconnects and retries.
Permanent faults are mistakes that retrying cannot fix (wrong PIN, missing key,
unsupported mechanism) and are reported at once as configuration errors.
"""

from __future__ import annotations

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


def is_transient(exc: BaseException) -> bool:
    """True when reconnecting to the HSM may make the failed call succeed."""
    if isinstance(exc, TRANSIENT):
        return True
    # python-pkcs11 raises a bare PKCS11Error for return codes it has no class for,
    # e.g. CKR_CRYPTOKI_NOT_INITIALIZED after a network module lost its server.
    return type(exc) is p11.PKCS11Error


def describe(exc: BaseException) -> str:
    """A short, PIN-free description of a PKCS#11 failure for messages and health."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
