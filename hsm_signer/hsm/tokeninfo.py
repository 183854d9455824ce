"""What python-pkcs11 does not show, or shows wrong: PIN length limits, mechanism flags.

python-pkcs11 0.10 keeps only label, serial, model and flags of CK_TOKEN_INFO; the
readiness check needs ``ulMinPinLen``/``ulMaxPinLen`` (will the token take the PIN the
ceremony splits?). Its ``get_mechanism_info`` returns garbage flags here (a different
value on every run: measured with SoftHSM 2.6.1), and the check needs CKF_WRAP to find
every wrapping mechanism. This module asks the module itself through ctypes: ``dlopen`` of the
same path returns the library python-pkcs11 already initialised, so the call is made on
the same module state, under the same process lock (the caller's :meth:`Hsm.run`).

It reads public token information only; it never logs in, never sees a PIN.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

CK_ULONG = ctypes.c_ulong
_CK_UNAVAILABLE_INFORMATION = CK_ULONG(-1).value
_CK_EFFECTIVELY_INFINITE = 0


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class _TokenInfo(ctypes.Structure):
    _fields_ = [
        ("label", ctypes.c_char * 32), ("manufacturerID", ctypes.c_char * 32), ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16), ("flags", CK_ULONG),
        ("ulMaxSessionCount", CK_ULONG), ("ulSessionCount", CK_ULONG),
        ("ulMaxRwSessionCount", CK_ULONG), ("ulRwSessionCount", CK_ULONG),
        ("ulMaxPinLen", CK_ULONG), ("ulMinPinLen", CK_ULONG),
        ("ulTotalPublicMemory", CK_ULONG), ("ulFreePublicMemory", CK_ULONG),
        ("ulTotalPrivateMemory", CK_ULONG), ("ulFreePrivateMemory", CK_ULONG),
        ("hardwareVersion", _Version), ("firmwareVersion", _Version), ("utcTime", ctypes.c_char * 16),
    ]


class _MechanismInfo(ctypes.Structure):
    _fields_ = [("ulMinKeySize", CK_ULONG), ("ulMaxKeySize", CK_ULONG), ("flags", CK_ULONG)]


_GetTokenInfo = ctypes.CFUNCTYPE(CK_ULONG, CK_ULONG, ctypes.POINTER(_TokenInfo))
_GetMechanismList = ctypes.CFUNCTYPE(CK_ULONG, CK_ULONG, ctypes.POINTER(CK_ULONG), ctypes.POINTER(CK_ULONG))
_GetMechanismInfo = ctypes.CFUNCTYPE(CK_ULONG, CK_ULONG, CK_ULONG, ctypes.POINTER(_MechanismInfo))
CKF_WRAP = 0x20000
_Initialize = ctypes.CFUNCTYPE(CK_ULONG, ctypes.c_void_p)


class _FunctionList(ctypes.Structure):
    # CK_FUNCTION_LIST: the version, then C_Initialize, C_Finalize, C_GetInfo,
    # C_GetFunctionList, C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo, ... (PKCS#11 order)
    _fields_ = [("version", _Version), ("C_Initialize", _Initialize), ("C_Finalize", _Initialize),
                ("C_GetInfo", ctypes.c_void_p), ("C_GetFunctionList", ctypes.c_void_p),
                ("C_GetSlotList", ctypes.c_void_p), ("C_GetSlotInfo", ctypes.c_void_p),
                ("C_GetTokenInfo", _GetTokenInfo), ("C_GetMechanismList", _GetMechanismList),
                ("C_GetMechanismInfo", _GetMechanismInfo)]


@dataclass(frozen=True)
class PinLimits:
    """The user PIN lengths a token accepts (None where it does not say)."""

    min_length: int | None
    max_length: int | None
    max_sessions: int | None
    max_rw_sessions: int | None

    def accepts(self, length: int) -> bool | None:
        """Whether a PIN of ``length`` characters is within the limits (None: unknown)."""
        if self.max_length is None:
            return None
        return (self.min_length or 0) <= length <= self.max_length


class TokenInfoError(Exception):
    """C_GetTokenInfo could not be called or failed (``rv`` is its return value, if any)."""

    def __init__(self, message: str, rv: int | None = None):
        self.rv = rv
        super().__init__(message)


def _count(value: int) -> int | None:
    return None if value in (_CK_UNAVAILABLE_INFORMATION, _CK_EFFECTIVELY_INFINITE) else int(value)


def _call(module_path: str, ask):
    """``ask(functions)`` on the module's function list; the return value of ``ask`` is
    (rv, result). A module whose function lists keep their own state (p11-kit-proxy) is
    initialised for the call and finalised after it."""
    try:
        library = ctypes.CDLL(module_path, mode=ctypes.RTLD_LOCAL)
        get_function_list = library.C_GetFunctionList
    except (OSError, AttributeError) as exc:
        raise TokenInfoError(f"cannot reach C_GetFunctionList in {module_path}: {exc}") from None
    get_function_list.restype = CK_ULONG
    get_function_list.argtypes = [ctypes.POINTER(ctypes.POINTER(_FunctionList))]
    functions = ctypes.POINTER(_FunctionList)()
    rv = get_function_list(ctypes.byref(functions))
    if rv:
        raise TokenInfoError(f"C_GetFunctionList returned 0x{rv:08X}", rv)
    rv, result = ask(functions.contents)
    if rv == 0x190:  # CKR_CRYPTOKI_NOT_INITIALIZED
        initialised = functions.contents.C_Initialize(None)
        if initialised:
            raise TokenInfoError(f"C_Initialize of a second function list returned 0x{initialised:08X}", initialised)
        try:
            rv, result = ask(functions.contents)
        finally:
            functions.contents.C_Finalize(None)
    if rv:
        raise TokenInfoError(f"the module returned 0x{rv:08X}", rv)
    return result


def pin_limits(module_path: str, slot_id: int) -> PinLimits:
    """Ask the module loaded from ``module_path`` (already initialised) for ``slot_id``'s limits."""
    def ask(functions):
        info = _TokenInfo()
        return functions.C_GetTokenInfo(slot_id, ctypes.byref(info)), info
    info = _call(module_path, ask)
    return PinLimits(min_length=_count(info.ulMinPinLen), max_length=_count(info.ulMaxPinLen),
                     max_sessions=_count(info.ulMaxSessionCount), max_rw_sessions=_count(info.ulMaxRwSessionCount))


def wrapping_mechanisms(module_path: str, slot_id: int) -> list[int]:
    """The mechanisms of ``slot_id`` whose C_GetMechanismInfo flags include CKF_WRAP."""
    def ask(functions):
        count = CK_ULONG(0)
        rv = functions.C_GetMechanismList(slot_id, None, ctypes.byref(count))
        if rv:
            return rv, []
        mechanisms = (CK_ULONG * count.value)()
        rv = functions.C_GetMechanismList(slot_id, mechanisms, ctypes.byref(count))
        if rv:
            return rv, []
        found = []
        for mechanism in mechanisms[:count.value]:
            info = _MechanismInfo()
            if functions.C_GetMechanismInfo(slot_id, mechanism, ctypes.byref(info)) == 0 and info.flags & CKF_WRAP:
                found.append(int(mechanism))
        return 0, found
    return _call(module_path, ask)
