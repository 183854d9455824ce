"""The wrong-code budget (web/attempts.py): per client, escalating delay, counted before the check.

The story of issue 13: 125 addresses sending malformed codes once exhausted a global limit
and locked every voter out. Now no address can spend anyone else's budget, malformed codes
cost nothing, a burst of concurrent wrong codes gets exactly its allowance evaluated, and
an abnormal overall failure rate raises an alert instead of a lock-out.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from hsm_signer import codes as codes_mod
from hsm_signer.service import Service, hsm_keys
from hsm_signer.web import create_app
from hsm_signer.web.attempts import AttemptPolicy, CodeAttempts, client_key

from servicekit import DEMO_ELECTION, open_election

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["erin", "dan"]}
API = f"/api/v1/elections/{ELECTION}"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wrong_code() -> str:
    return codes_mod.display(codes_mod.new_code())  # well formed, so it costs an HSM call


def malformed_code(n: int) -> str:
    return f"not-a-code-{n}"


# --- the policy, with a clock we move -----------------------------------------------------------

def test_free_attempts_then_a_doubling_delay_then_a_fresh_start():
    clock = Clock()
    attempts = CodeAttempts(AttemptPolicy(free=3, first_delay=2, max_delay=10, forget=100), clock)
    for _ in range(3):
        assert attempts.reserve("a") == 0
        attempts.settle("a", failed=True)
    assert attempts.reserve("a") == 2  # the fourth waits 2 s after the third ...
    clock.now += 2
    assert attempts.reserve("a") == 0
    attempts.settle("a", failed=True)
    assert attempts.reserve("a") == 4  # ... the fifth 4 s, then 8, then at most 10
    for expected in (4, 8, 10, 10):
        clock.now += expected
        assert attempts.reserve("a") == 0
        attempts.settle("a", failed=True)
    assert attempts.reserve("b") == 0  # nobody else is slowed down
    clock.now += 100
    assert attempts.reserve("a") == 0 and attempts.failures("a") == 1  # forgotten: a fresh start


def test_a_right_or_malformed_code_gives_its_attempt_back():
    attempts = CodeAttempts(AttemptPolicy(free=2), Clock())
    for _ in range(10):
        assert attempts.reserve("voter") == 0
        attempts.settle("voter", failed=False)
    assert attempts.failures("voter") == 0


def test_ipv6_clients_are_counted_per_64_and_ipv4_per_address():
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.8") != client_key("192.0.2.7")
    assert client_key(None) == "unknown"


def test_memory_is_bounded_and_clients_with_a_debt_are_kept_longest():
    clock = Clock()
    attempts = CodeAttempts(AttemptPolicy(free=1, max_clients=100), clock)
    attempts.reserve("guesser")
    attempts.settle("guesser", failed=True)
    for n in range(1000):
        clock.now += 0.001
        attempts.reserve(f"visitor-{n}")
        attempts.settle(f"visitor-{n}", failed=False)
    assert len(attempts._clients) <= 100
    assert attempts.failures("guesser") == 1


def test_an_abnormal_overall_failure_rate_alerts_once_a_minute(caplog):
    clock = Clock()
    attempts = CodeAttempts(AttemptPolicy(alert_per_minute=50), clock)
    with caplog.at_level(logging.WARNING, logger="hsm_signer.web.attempts"):
        for n in range(200):
            key = f"198.51.100.{n}"
            attempts.reserve(key)
            attempts.settle(key, failed=True)
            clock.now += 0.1  # 200 wrong codes in 20 s
    assert attempts.alerts == 1
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "wrong voting codes" in caplog.text


# --- through the app -----------------------------------------------------------------------------

def _app(service, **config):
    return create_app(service=service, test_config={"TESTING": True, **config})


class CountingMac:
    """The service's own HSM code key, counting its calls (to see what reached the HSM)."""

    def __init__(self, mac):
        self.inner, self.calls = mac, 0
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    def mac(self, data: bytes) -> bytes:
        with self._lock:
            self.calls += 1
        return self.inner.mac(data)


@pytest.fixture
def counted(kit):
    """A service whose code key counts its calls (handed in as the service's code MAC), with
    the test election open; ``(service, counting mac)``."""
    made = []

    def keys(hsm, bundle):
        own = hsm_keys(hsm, bundle)
        made.append(CountingMac(own.code_mac))
        return dataclasses.replace(own, code_mac=made[0])
    service = Service.open(kit.load(), with_sequencer=True, keys=keys).start()
    try:
        open_election(service, 10)
        made[0].calls = 0  # issuing the codes hashed them
        yield service, made[0]
    finally:
        service.close()


def test_a_burst_of_64_concurrent_wrong_codes_gets_exactly_the_allowance_evaluated(counted):
    service, counting = counted
    app = _app(service, CODE_FAILURES_FREE=10, CODE_FAILURE_DELAY=60)
    start = threading.Barrier(64)

    def attempt(n: int) -> int:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = "203.0.113.66"
        body = {"code": wrong_code()} if n % 2 else {"code": wrong_code(), "selections": VOTE}
        start.wait(timeout=30)
        return client.post(f"{API}/{'code-status' if n % 2 else 'ballots'}", json=body).status_code

    with ThreadPoolExecutor(64) as pool:
        statuses = list(pool.map(attempt, range(64)))
    assert sorted(statuses) == [403] * 10 + [429] * 54
    assert counting.calls == 10  # the HSM saw exactly the allowance


def test_malformed_codes_reach_no_hsm_and_cost_no_budget(counted):
    service, counting = counted
    app = _app(service, CODE_FAILURES_FREE=3, CODE_FAILURE_DELAY=60)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    statuses = [client.post(f"{API}/code-status", json={"code": malformed_code(n)}).status_code for n in range(40)]
    assert statuses == [403] * 40 and counting.calls == 0
    statuses = [client.post(f"{API}/code-status", json={"code": wrong_code()}).status_code for _ in range(5)]
    assert statuses == [403, 403, 403, 429, 429] and counting.calls == 3


def test_150_addresses_guessing_as_fast_as_they_can_do_not_stop_a_voter_at_a_fresh_address(service, codes, caplog):
    """Through a trusted proxy (X-Forwarded-For), with the production defaults."""
    app = _app(service, PROXY_FIX_X_FOR=1, RATELIMIT_DEFAULT="100000 per minute", CODE_FAILURES_ALERT_PER_MINUTE=300)
    attackers = [f"10.{n // 200}.{n % 200}.1" for n in range(150)]
    stop = threading.Event()
    answers: dict[int, int] = {}
    lock = threading.Lock()

    def hammer(address: str) -> None:
        client = app.test_client()
        for n in range(18):  # bounded: 18 requests per address, 6 malformed and 12 wrong codes
            if stop.is_set():
                return
            code = malformed_code(n) if n % 3 == 0 else wrong_code()
            path, body = (("ballots", {"code": code, "selections": VOTE}) if n % 2
                          else ("code-status", {"code": code}))
            status = client.post(f"{API}/{path}", json=body, headers={"X-Forwarded-For": address}).status_code
            with lock:
                answers[status] = answers.get(status, 0) + 1

    voter = app.test_client()
    with caplog.at_level(logging.WARNING, logger="hsm_signer.web.attempts"):
        with ThreadPoolExecutor(16) as pool:
            running = [pool.submit(hammer, address) for address in attackers]
            # The voter arrives while the attack runs, from an address nobody used.
            for _ in range(1200):  # until half the attack is done (at most 60 s)
                if sum(answers.values()) >= 150 * 9 or all(f.done() for f in running):
                    break
                stop.wait(0.05)
            status = voter.post(f"{API}/code-status", json={"code": codes[0]},
                                headers={"X-Forwarded-For": "192.0.2.200"}).status_code
            cast = voter.post(f"{API}/ballots", json={"code": codes[0], "selections": VOTE},
                              headers={"X-Forwarded-For": "192.0.2.200"})
            for future in running:
                future.result(timeout=120)
    assert status == 200
    assert cast.status_code == 201, cast.get_json()
    # Every address got its own allowance: 10 wrong codes, and its malformed ones until it was slowed down.
    assert set(answers) <= {403, 429} and answers[403] >= 150 * 15
    assert sum(answers.values()) == 150 * 18
    assert answers[429] > 0  # ... and no more
    assert "ALERT" in caplog.text  # the operators hear of it
    # A second voter, after the attack, from another fresh address: still fine.
    again = voter.post(f"{API}/code-status", json={"code": codes[1]}, headers={"X-Forwarded-For": "192.0.2.201"})
    assert again.status_code == 200


def test_a_voter_behind_the_same_address_as_a_guesser_waits_but_is_not_locked_out(service, codes):
    clock = Clock()
    app = _app(service, CODE_FAILURES_FREE=2, CODE_FAILURE_DELAY=5)
    app.extensions["hsm_signer_code_attempts"].clock = clock
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "2001:db8:5:5::1"
    neighbour = app.test_client()
    neighbour.environ_base["REMOTE_ADDR"] = "2001:db8:5:5::2"  # the same /64
    for _ in range(2):
        assert client.post(f"{API}/code-status", json={"code": wrong_code()}).status_code == 403
    limited = neighbour.post(f"{API}/code-status", json={"code": codes[0]})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "5"
    clock.now += 5
    assert neighbour.post(f"{API}/code-status", json={"code": codes[0]}).status_code == 200
