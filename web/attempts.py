"""How many wrong voting codes a client may try: a per-client budget with escalating delay.

Guessing an 80-bit code is hopeless (docs/WEB.md works out the numbers), so what the
limit protects is the HSM and the logs, without ever handing an attacker a switch that
locks every voter out. Hence:

* **Per client, never global.** A client is an IPv4 address or an IPv6 /64 (one
  subscriber's whole allocation). There is no overall limit a few hundred addresses could
  exhaust for everyone; an abnormal overall failure rate raises an alert (a log warning)
  for the operators instead.
* **Escalating delay, not lock-out.** ``free`` wrong codes cost nothing; after that each
  further attempt must wait ``first_delay`` seconds after the previous one, doubling up to
  ``max_delay``. After ``forget`` seconds without a wrong code the client starts afresh.
* **Count, then decide.** :meth:`CodeAttempts.reserve` counts the attempt as a failure
  under a lock *before* the code is checked; :meth:`settle` gives it back when the code
  turned out right (or was never checked: malformed, bad request, HSM down). A burst of
  concurrent wrong codes therefore gets exactly the allowance evaluated, never more.
* **Bounded memory.** At most ``max_clients`` clients are remembered; clients with
  nothing left to remember are dropped first, then the least recently seen.

Pure logic with an injected clock; the Flask glue is in :mod:`.security`. Holds no code.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


def client_key(address: str | None) -> str:
    """The rate-limit key of a client address: the IPv4 address, or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class AttemptPolicy:
    free: int = 10
    first_delay: float = 2.0
    max_delay: float = 900.0
    forget: float = 6 * 3600.0
    alert_per_minute: int = 600  # wrong codes per minute, over all clients, that alert the operators
    max_clients: int = 200_000

    def delay(self, failures: int) -> float:
        """How long after the last attempt a client with ``failures`` may try again."""
        if failures < self.free:
            return 0.0
        return min(self.first_delay * 2 ** min(failures - self.free, 40), self.max_delay)


@dataclass
class _Client:
    failures: int = 0     # counted attempts (reserved ones included) since the last fresh start
    last: float = 0.0     # when the last counted attempt began


class CodeAttempts:
    """Per-client wrong-code budgets (thread-safe; one per app)."""

    def __init__(self, policy: AttemptPolicy = AttemptPolicy(), clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._recent: deque[float] = deque()  # times of wrong codes in the last minute, all clients
        self._alerted_at = float("-inf")
        self.alerts = 0

    def reserve(self, key: str) -> float:
        """Count an attempt for ``key`` now; 0.0 if it may go ahead, else seconds to wait."""
        now = self.clock()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._remember(key)
            elif now - client.last >= self.policy.forget:
                client.failures = 0
            self._clients.move_to_end(key)
            wait = client.last + self.policy.delay(client.failures) - now
            if client.failures >= self.policy.free and wait > 0:
                return wait
            client.failures += 1
            client.last = now
            return 0.0

    def settle(self, key: str, failed: bool) -> None:
        """After the check: keep the count for a wrong code, give it back otherwise."""
        with self._lock:
            client = self._clients.get(key)
            if not failed:
                if client is not None and client.failures > 0:
                    client.failures -= 1
                return
            self._note_failure(self.clock())

    def failures(self, key: str) -> int:
        with self._lock:
            client = self._clients.get(key)
            return client.failures if client else 0

    def _remember(self, key: str) -> _Client:
        if len(self._clients) >= self.policy.max_clients:
            now = self.clock()
            for old in [k for k, c in self._clients.items()
                        if c.failures == 0 or now - c.last >= self.policy.forget]:
                del self._clients[old]
            while len(self._clients) >= self.policy.max_clients:
                self._clients.popitem(last=False)
        client = self._clients[key] = _Client()
        return client

    def _note_failure(self, now: float) -> None:
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) > self.policy.alert_per_minute and now - self._alerted_at >= 60:
            self._alerted_at = now
            self.alerts += 1
            log.warning("ALERT: %d wrong voting codes in the last minute over all clients (alert threshold %d); "
                        "someone may be guessing codes: check the access log for the addresses",
                        len(recent), self.policy.alert_per_minute)
