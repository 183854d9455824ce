"""One logged-in PKCS#11 token, safe to share between threads, that heals itself.

This is the only place (with :mod:`.faults` and :mod:`.keys`) that imports pkcs11.

Two rules shape it:

* **One lock per process.** python-pkcs11 initialises modules with ``C_Initialize(NULL)``
  (so SoftHSM2 skips its own locking) yet releases the GIL around every ``C_*`` call;
  two threads signing at once corrupted SoftHSM's heap on our machines. Every PKCS#11
  call of the process therefore runs under :data:`PKCS11_LOCK`.
* **Never repeat a change.** :meth:`Hsm.change` runs an operation that changes the token
  (key generation, destruction, import, C_SetPIN) exactly once: a failure is that
  operation's failure, named by the module's return code, and does not mark the token
  down. Only reads and signatures (:meth:`Hsm.run`) are retried.
* **Fail closed, fast, and recover alone.** A transient fault (see :mod:`.faults`) makes
  the token reconnect: ``lib.reinitialize()``, new session, login, key lookup, with a
  bounded backoff. If that does not work the call raises :class:`HsmUnavailableError`
  and, while the HSM stays down, later calls fail at once except for one reconnection
  attempt per ``retry.down_retry_interval``; the first one that works brings the token
  back without restarting the process.

Never log or put into an error the PIN, and never read secret attributes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import pkcs11
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from ..config import HsmSettings
from ..errors import (
    HsmConfigError, HsmError, HsmUnavailableError, KeyNotFoundError, MechanismNotSupportedError, TokenChangeFailedError,
)
from .deriver import HsmDeriver
from .faults import describe, is_transient, return_code, serial_is_ambiguous
from .keys import HsmMac, HsmSigner
from .pins import PinSource, pin_source

log = logging.getLogger(__name__)

#: Serialises every PKCS#11 call of this process (see the module docstring).
PKCS11_LOCK = threading.RLock()

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries before declaring the HSM unavailable.

    The defaults keep a failing call under about half a second, so a web request
    answers 503 quickly instead of hanging.
    """

    attempts: int = 3
    first_backoff: float = 0.05
    max_backoff: float = 0.4
    down_retry_interval: float = 1.0


class _Module:
    """A loaded PKCS#11 library, shared by every token opened through it.

    ``generation`` counts re-initialisations, so a token whose session predates the
    latest one knows to reopen its session rather than re-initialise once more (which
    would break the sessions of its siblings).
    """

    _loaded: dict[str, "_Module"] = {}

    def __init__(self, path: str):
        self.path = path
        self.generation = 0
        if not os.path.exists(path):
            raise HsmConfigError(
                f"cannot load PKCS#11 module {path!r} (no such file); set hsm.module to the path of your HSM "
                "vendor's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)")
        try:
            self.lib = pkcs11.lib(path)
        except RuntimeError as exc:  # PKCS11Error derives from RuntimeError
            code = return_code(exc)
            if code is None:  # dlopen or C_GetFunctionList failed: not a usable library
                raise HsmConfigError(
                    f"cannot load PKCS#11 module {path!r} ({exc}); set hsm.module to the path of "
                    "your HSM vendor's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"
                ) from None
            # The library loaded: its path is right, but C_Initialize (called by python-pkcs11
            # as it loads) failed: the module cannot reach what stands behind it.
            raise HsmUnavailableError(
                f"PKCS#11 module {path!r} loaded, but C_Initialize returned {code}: the module cannot "
                "reach its token. Check that what it talks to is running: its daemon (openCryptoki: "
                "pkcsslotd; tpm2-pkcs11: the TPM or its simulator), its network HSM server (p11-kit "
                "server: P11_KIT_SERVER_ADDRESS), or the device itself, and that this user may use it"
            ) from None

    @classmethod
    def load(cls, path: str) -> "_Module":
        # One module per real file: a library reached through two names (a symlink in
        # /usr/lib/.../pkcs11/) is one library in the process, initialised once.
        real = os.path.realpath(path)
        module = cls._loaded.get(real)
        if module is None:
            module = cls._loaded[real] = cls(path)
        return module

    def reinitialize(self) -> None:
        try:
            self.lib.finalize()
        except p11.PKCS11Error:
            pass  # a module that lost its device may refuse to finalise; initialise anyway
        self.lib.initialize()
        self.generation += 1


class Hsm:
    """A token, found by label or serial, logged in with a PIN from a :class:`PinSource`."""

    def __init__(
        self,
        module: str,
        *,
        pin_source: PinSource,
        token_label: str | None = None,
        token_serial: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
    ):
        if not (token_label or token_serial):
            raise HsmConfigError("no token chosen; set hsm.token_label (or hsm.token_serial)")
        if not token_label and token_serial is not None and serial_is_ambiguous(token_serial):
            raise HsmConfigError(
                f"hsm.token_serial {token_serial!r} does not identify a token (blank or all zeros, as "
                "tpm2-pkcs11 and openCryptoki report); choose the token by hsm.token_label instead")
        self.module_path = module
        self.token_label = token_label
        self.token_serial = token_serial
        self.retry = retry
        self._pin_source = pin_source
        self._pin: str | None = None
        self._module: _Module | None = None
        self._generation = -1
        self._token: Any = None
        self._session: Any = None
        self._keys: dict[tuple[str, int], Any] = {}
        self._mechanisms: frozenset | None = None
        self._connected_once = False
        self._down_since: float | None = None
        self._next_try = 0.0
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    # --- life cycle --------------------------------------------------------------
    @property
    def token_name(self) -> str:
        return repr(self.token_label) if self.token_label else f"serial {self.token_serial}"

    def open(self, *, may_be_away: bool = False) -> "Hsm":
        """Connect and log in now, turning every set-up mistake into a clear error.

        ``may_be_away``: a server that must start even while its HSM cannot be reached
        (a network HSM rebooting). The PIN is read first (it may be typed in); if the HSM
        is unavailable the token is returned *down*, as after an outage: every call fails
        at once with :class:`HsmUnavailableError` but for one connection attempt per
        ``retry.down_retry_interval``, and the first that works brings it up. Set-up
        mistakes (wrong PIN, no such token, a module that will not load) still raise.
        """
        with PKCS11_LOCK:
            self._module = _Module.load(self.module_path)
            if may_be_away and self._pin is None:
                self._pin = self._pin_source.get_pin()
            try:
                try:
                    self._connect()
                except p11.PKCS11Error as exc:
                    if not is_transient(exc):
                        raise
                    # The module was loaded earlier in this process and its device or
                    # server has gone away since: start it afresh once.
                    self._module.reinitialize()
                    self._connect()
            except p11.PKCS11Error as exc:
                if not is_transient(exc):
                    raise self._permanent(exc, f"opening token {self.token_name}") from None
                self._record_error(describe(exc))
                unavailable = HsmUnavailableError(
                    f"HSM unavailable: cannot open token {self.token_name} through {self.module_path} "
                    f"({describe(exc)}); check that the HSM is up and reachable")
                if not may_be_away:
                    raise unavailable from None
                self._start_down(unavailable)
                return self
            except HsmUnavailableError as exc:  # the module lists no token at all
                if not may_be_away:
                    raise
                self._record_error(str(exc))
                self._start_down(exc)
                return self
        log.info("HSM token %s opened through %s; PIN from %s",
                 self.token_name, self.module_path, self._pin_source.describe())
        if not self._pin_source.production_grade:
            log.warning("the HSM PIN source is %s: never use it for a real election",
                        self._pin_source.describe())
        return self

    def _start_down(self, exc: HsmUnavailableError) -> None:
        self._session = None
        self._down_since = time.monotonic()
        self._next_try = self._down_since + self.retry.down_retry_interval
        log.warning("%s; starting without it and trying again every %.1f s", exc, self.retry.down_retry_interval)

    def close(self) -> None:
        with PKCS11_LOCK:
            if self._session is not None:
                try:
                    self._session.close()
                except p11.PKCS11Error:
                    pass
            self._session = None
            self._keys.clear()

    def __enter__(self) -> "Hsm":
        return self.open() if self._session is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the guarded call ----------------------------------------------------------
    def run(self, what: str, operation: Callable[[Any], T]) -> T:
        """Run ``operation(session)`` under the process lock, healing transient faults.

        Raises :class:`HsmUnavailableError` when the HSM cannot be reached and
        :class:`HsmConfigError` (or another :class:`HsmError`) for permanent faults.
        """
        with PKCS11_LOCK:
            if self._module is None:
                raise HsmError(f"HSM token {self.token_name} is not open; call open() first")
            down = self._down_since is not None
            if down and time.monotonic() < self._next_try:
                raise HsmUnavailableError(
                    f"HSM unavailable (token {self.token_name}: {self.last_error}); retry shortly"
                )
            attempts = 1 if down else self.retry.attempts
            delay = self.retry.first_backoff
            last: BaseException | None = None
            for attempt in range(attempts):
                if attempt:
                    time.sleep(delay)
                    delay = min(delay * 2, self.retry.max_backoff)
                try:
                    if self._session is None:
                        self._reconnect()
                    result = operation(self._session)
                except p11.NoSuchToken as exc:
                    if not self._connected_once:
                        raise
                    last = exc  # the token vanished with its device: transient
                except HsmUnavailableError as exc:  # never connected yet, and the module lists no token
                    last = exc
                except p11.PKCS11Error as exc:
                    if not is_transient(exc):
                        raise self._permanent(exc, what) from None
                    last = exc
                else:
                    self._mark_up()
                    return result
                self._drop_session()
                self._record_error(str(last) if isinstance(last, HsmUnavailableError) else describe(last))
            self._down_since = self._down_since or time.monotonic()
            self._next_try = time.monotonic() + self.retry.down_retry_interval
            log.error("HSM unavailable: %s failed on token %s: %s", what, self.token_name, self.last_error)
            raise HsmUnavailableError(
                f"HSM unavailable: {what} failed on token {self.token_name} ({self.last_error}); "
                "it will be retried automatically"
            )

    def change(self, what: str, operation: Callable[[Any], T]) -> T:
        """Run ``operation(session)`` that changes the token, once and only once.

        Never retried, whatever the fault: a module that fails a key generation may still
        have made the key. A PKCS#11 failure raises :class:`TokenChangeFailedError` naming
        the module's return code; the token is not marked down for it (if the fault did
        kill the session, the next read finds out and heals as reads do).
        """
        with PKCS11_LOCK:
            if self._module is None:
                raise HsmError(f"HSM token {self.token_name} is not open; call open() first")
            if self._session is None or self._down_since is not None:
                # Connecting changes nothing on the token; a read proves the token answers.
                self.run(f"reconnecting before {what}", lambda session: session.token.label)
            try:
                return operation(self._session)
            except p11.PKCS11Error as exc:
                if isinstance(exc, (p11.MechanismInvalid, p11.FunctionNotSupported)):
                    raise self._permanent(exc, what) from None
                code = return_code(exc) or describe(exc)
                self._record_error(describe(exc))
                log.error("%s failed on token %s: %s (not repeated)", what, self.token_name, code)
                raise TokenChangeFailedError(
                    f"{what} failed on HSM token {self.token_name}: the module returned {code}. It was not "
                    "repeated (an operation that changes the token runs once): look at the token before "
                    "trying again — a key may or may not have been made — and ask its vendor what "
                    f"{code} means there", return_code=code) from None

    def _connect(self) -> None:
        """Find the token, open a session and log in (caller holds the lock)."""
        assert self._module is not None
        lib = self._module.lib
        query: dict[str, str | bytes]
        if self.token_label:
            query = {"token_label": self.token_label}
        else:
            assert self.token_serial is not None  # __init__ requires a label or a serial
            query = {"token_serial": self.token_serial.encode()}
        try:
            try:
                token = lib.get_token(**query)
            except p11.NoSuchToken:
                if self._connected_once:
                    raise
                # Modules may list slots only as they were at C_Initialize (SoftHSM2
                # does): rescan once before calling the token missing.
                self._module.reinitialize()
                lib = self._module.lib
                token = lib.get_token(**query)
        except p11.NoSuchToken:
            if self._connected_once:
                raise
            labels = ", ".join(repr(t.label) for t in lib.get_tokens())
            if not labels:
                raise HsmUnavailableError(
                    f"HSM unavailable: cannot open token {self.token_name}: PKCS#11 module {self.module_path} "
                    "lists no tokens at all; check that the HSM is up and reachable (a network HSM's "
                    "server, a USB token plugged in)") from None
            raise HsmConfigError(
                f"no token {self.token_name} in PKCS#11 module {self.module_path} (tokens present: "
                f"{labels}); fix hsm.token_label/hsm.token_serial or initialise the token"
            ) from None
        except p11.MultipleTokensReturned:
            if self.token_label:
                raise HsmConfigError(
                    f"several tokens are labelled {self.token_name}; give each token a unique label "
                    "(or choose one with hsm.token_serial if the serials differ)") from None
            raise HsmConfigError(
                f"several tokens have {self.token_name}: the serial does not identify a token here; "
                "choose the token by hsm.token_label (give it a unique label)") from None
        if self._pin is None:
            self._pin = self._pin_source.get_pin()
        try:
            session = token.open(user_pin=self._pin, rw=True)
        except p11.UserAlreadyLoggedIn:
            # Another Hsm object of this process is logged in to the same token; the
            # login state is shared by all sessions of the application.
            session = token.open(rw=True)
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            self._pin = None
            raise HsmConfigError(
                f"wrong PIN for HSM token {self.token_name}; check the PIN source "
                f"({self._pin_source.describe()}) — repeated failures will lock the token"
            ) from None
        except p11.PinLocked:
            raise HsmConfigError(
                f"the user PIN of HSM token {self.token_name} is locked; the security officer must reset it"
            ) from None
        self._token = token
        self._session = session
        self._generation = self._module.generation
        self._keys.clear()
        self._mechanisms = None
        self._connected_once = True

    def _reconnect(self) -> None:
        assert self._module is not None
        if self._generation == self._module.generation:
            # Nobody has re-initialised since our session (or our last failed attempt)
            # began: a network module only reconnects to its server on C_Initialize.
            self._module.reinitialize()
        self._generation = self._module.generation
        self._connect()

    def forget_key_handles(self) -> None:
        """Drop cached key handles (after keys were created or destroyed)."""
        with PKCS11_LOCK:
            self._keys.clear()

    def _drop_session(self) -> None:
        self._session = None  # its handle is dead; closing it would only fail again
        self._keys.clear()

    def _record_error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = time.time()

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.warning("HSM token %s is available again after %.1f s",
                        self.token_name, time.monotonic() - self._down_since)
            self._down_since = None

    def _permanent(self, exc: BaseException, what: str) -> HsmError:
        if isinstance(exc, (p11.MechanismInvalid, p11.FunctionNotSupported)):
            return MechanismNotSupportedError(
                f"HSM token {self.token_name} does not support the mechanism needed for {what}"
            )
        self._record_error(describe(exc))
        return HsmError(f"{what} failed on HSM token {self.token_name}: {describe(exc)}")

    # --- inspection ------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return self._down_since is None and self._session is not None

    def mechanisms(self) -> frozenset:
        """The mechanisms the token's slot offers."""
        def read(session: Any) -> frozenset:
            if self._mechanisms is None:
                self._mechanisms = frozenset(session.token.slot.get_mechanisms())
            return self._mechanisms
        return self.run("listing mechanisms", read)

    def require_mechanism(self, mechanism: Mechanism, purpose: str) -> None:
        if mechanism not in self.mechanisms():
            raise MechanismNotSupportedError(
                f"HSM token {self.token_name} (through {self.module_path}) does not offer {mechanism.name}, "
                f"needed for {purpose}; {_advice_for(mechanism)}")

    def token_info(self) -> dict[str, Any]:
        def read(session: Any) -> dict[str, Any]:
            token = session.token
            lib = self._module.lib  # type: ignore[union-attr]
            return {
                "label": token.label,
                "serial": token.serial.decode("ascii", "replace").strip() if isinstance(token.serial, bytes) else str(token.serial),
                "manufacturer": token.manufacturer_id,
                "model": token.model,
                "hardware_version": ".".join(map(str, token.hardware_version)),
                "firmware_version": ".".join(map(str, token.firmware_version)),
                "module_path": self.module_path,
                "module_description": lib.library_description,
                "module_manufacturer": lib.manufacturer_id,
                "module_version": ".".join(map(str, lib.library_version)),
                "cryptoki_version": ".".join(map(str, lib.cryptoki_version)),
            }
        return self.run("reading token information", read)

    def key_labels(self) -> list[str]:
        """Labels of the private and secret keys on the token, sorted."""
        def read(session: Any) -> list[str]:
            labels = set()
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                for obj in session.get_objects({Attribute.CLASS: cls}):
                    labels.add(obj[Attribute.LABEL])
            return sorted(labels)
        return self.run("listing keys", read)

    def health(self) -> dict[str, Any]:
        """Token, keys and last error; never raises (it is what a health check shows)."""
        report: dict[str, Any] = {"token": self.token_name.strip("'"), "module": self.module_path}
        try:
            report["keys"] = self.key_labels()
            report["status"] = "ok"
        except HsmUnavailableError:
            report["status"] = "unavailable"
        except HsmError as exc:
            report["status"] = "error"
            report["error"] = str(exc)
        report["last_error"] = self.last_error
        report["last_error_at"] = self.last_error_at
        return report

    # --- keys --------------------------------------------------------------------------
    def find_key(self, session: Any, label: str, object_class: ObjectClass) -> Any:
        """The one key object with ``label`` and ``object_class`` (cached per session)."""
        cache_key = (label, int(object_class))
        key = self._keys.get(cache_key)
        if key is None:
            matches = list(session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label}))
            kind = object_class.name.lower().replace("_", " ")
            if not matches:
                raise KeyNotFoundError(
                    f"no {kind} labelled {label!r} on HSM token {self.token_name}; "
                    "check the key label in the configuration or run the key ceremony"
                )
            if len(matches) > 1:
                raise KeyNotFoundError(
                    f"{len(matches)} {kind}s labelled {label!r} on HSM token {self.token_name}; "
                    "labels must be unique: retire the extra key"
                )
            key = self._keys[cache_key] = matches[0]
        return key

    def signer(self, label: str) -> HsmSigner:
        return HsmSigner(self, label)

    def mac(self, label: str) -> HsmMac:
        return HsmMac(self, label)

    def deriver(self, label: str) -> HsmDeriver:
        return HsmDeriver(self, label)

    def random_bytes(self, count: int) -> bytes:
        return self.run("generating random bytes", lambda s: s.generate_random(count * 8))

    def key_exists(self, label: str) -> bool:
        def look(session: Any) -> bool:
            # exhaust the search: an abandoned one is finalised later, maybe on a dead session
            return len(list(session.get_objects({Attribute.LABEL: label}))) > 0
        return self.run(f"looking up label {label!r}", look)


def open_hsm(settings: HsmSettings, *, may_be_away: bool = False) -> Hsm:
    """An opened :class:`Hsm` for the ``[hsm]`` table of a configuration file
    (``may_be_away``: start even while it cannot be reached, see :meth:`Hsm.open`)."""
    if settings.softhsm_conf is not None:
        os.environ["SOFTHSM2_CONF"] = str(settings.softhsm_conf)
    return Hsm(
        settings.module, token_label=settings.token_label, token_serial=settings.token_serial,
        pin_source=pin_source(settings.pin),
        retry=RetryPolicy(attempts=settings.retry_attempts, down_retry_interval=settings.down_retry_interval),
    ).open(may_be_away=may_be_away)


def _advice_for(mechanism: Mechanism) -> str:
    """What to do about a missing mechanism: only the choices that exist for it."""
    if mechanism in (Mechanism.GENERIC_SECRET_KEY_GEN, Mechanism.SHA256_HMAC):
        return ("the code key is an HMAC-SHA256 secret made in the HSM and has no other algorithm: use a token "
                "that generates generic secret keys (CKM_GENERIC_SECRET_KEY_GEN) and offers CKM_SHA256_HMAC")
    if mechanism in (Mechanism.EDDSA, Mechanism.EC_EDWARDS_KEY_PAIR_GEN):
        return "use a token (and module) that offers it, or choose algorithm \"ecdsa-p256\" for this key"
    if mechanism == Mechanism.ECDH1_DERIVE:
        return "the sealing key needs ECDH on P-256: use a token that offers CKM_ECDH1_DERIVE"
    return "use a token (or firmware/licence) that offers it; `hsm-signer hsm check` lists all it lacks"
