"""Hostile and unlucky input: every bad request gets its stable error code and status.

Also: security headers on every kind of response, CSRF on forms, the session cookie,
rate limits (a burst of wrong codes is stopped while another client votes), the HSM
going away (503 + Retry-After, no code consumed without its ballot), a slow signer
(503 receipt_pending, then the original receipt), and codes kept out of the logs.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time

import pytest

from harness import P11KitServer
from hsm_signer import codes as codes_mod
from hsm_signer.election import Election
from hsm_signer.errors import ConfigError
from hsm_signer.log.receipt import Receipt
from hsm_signer.service import Service
from hsm_signer.verify import verify_receipt
from hsm_signer.web import create_app
from hsm_signer.web.security import CSP

from servicekit import DEMO_ELECTION, open_election, provision
from test_web_vote import hidden, step, token_of
from werkzeug.datastructures import MultiDict

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["erin", "dan"]}
API = "/api/v1"
BALLOTS = f"{API}/elections/{ELECTION}/ballots"


def make_client(service, remote_addr="192.0.2.10", **config):
    client = create_app(service=service, test_config={"TESTING": True, **config}).test_client()
    client.environ_base["REMOTE_ADDR"] = remote_addr
    return client


@pytest.fixture
def client(service):
    return make_client(service)


def add_election(service, election_id, state):
    service.storage.create_election(Election.from_dict(dict(DEMO_ELECTION, id=election_id)))
    issued = list(codes_mod.issue(service.ballots.code_mac, election_id, 2))
    service.storage.add_codes(election_id, [digest for _, digest in issued])
    for state_step in {"draft": [], "open": ["open"], "closed": ["open", "closed"]}[state]:
        service.storage.set_state(election_id, state_step)
    return [codes_mod.display(code) for code, _ in issued]


def unknown_code() -> str:
    return codes_mod.display(codes_mod.new_code())


def typo(code: str) -> str:
    last = code[-1]
    return code[:-1] + ("0" if last != "0" else "1")


# --- the same generic answer for every code that is not valid here --------------------------

def test_unknown_and_other_election_codes_get_one_identical_answer_and_typos_one_per_kind(service, codes):
    """Which codes exist is never told: every well-formed code that is not this election's
    gets one answer. A text that cannot be a code at all (wrong length, a symbol codes never
    use, a check symbol that does not match) is told so, to help the voter (issue 16): that
    answer depends on the text alone, so it reveals nothing about the codes issued."""
    client = make_client(service, CODE_FAILURES_FREE=100)
    other_codes = add_election(service, "other-election", "open")

    def answers_for(*texts):
        answers = []
        for code in texts:
            for path in (BALLOTS, f"{API}/elections/{ELECTION}/code-status"):
                body = {"code": code, "selections": VOTE} if path == BALLOTS else {"code": code}
                response = client.post(path, json=body)
                answers.append((response.status_code, response.get_data()))
        return set(answers)

    well_formed = answers_for(unknown_code(), other_codes[0])
    assert len(well_formed) == 1
    assert answers_for(typo(codes[0]), typo(unknown_code())) == {
        (403, b'{"error":"invalid_code","message":"this code has a typo: one of its characters does not match the '
              b'others; check each character against your voting form"}\n')}
    assert len(answers_for("nonsense", "", "x" * 64)) == 1  # the wrong length
    assert len(answers_for("U" * 17)) == 1 and answers_for("U" * 17) != answers_for("nonsense")
    answers = sorted(well_formed)
    status, body = answers[0]
    assert status == 403 and b'"error":"invalid_code"' in body and b"not valid for this election" in body
    assert service.storage.count_codes(ELECTION)["unused"] == 10
    # ... and this election's code is just as invalid in the other one.
    response = client.post(f"{API}/elections/other-election/ballots", json={"code": codes[0], "selections": VOTE})
    assert (response.status_code, response.get_data()) == answers[0]


# --- every other bad request ------------------------------------------------------------------

BAD_REQUESTS = [
    # (case, method, path, request kwargs, status, error)
    ("draft poll", "post", f"{API}/elections/draft-election/ballots", {"json": {"code": "C", "selections": VOTE}},
     409, "poll_not_open"),
    ("closed poll", "post", f"{API}/elections/closed-election/ballots", {"json": {"code": "C", "selections": VOTE}},
     409, "poll_not_open"),
    ("unknown election", "post", f"{API}/elections/no-such-election/ballots",
     {"json": {"code": "C", "selections": VOTE}}, 404, "election_not_found"),
    ("unknown election status", "post", f"{API}/elections/no-such-election/code-status", {"json": {"code": "C"}},
     404, "election_not_found"),
    ("unknown election get", "get", f"{API}/elections/no-such-election", {}, 404, "election_not_found"),
    ("body over 16 KiB", "post", BALLOTS, {"data": b'{"code": "' + b"A" * 17000 + b'"}',
                                           "content_type": "application/json"}, 413, "payload_too_large"),
    ("text body", "post", BALLOTS, {"data": "code=C", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("form body", "post", BALLOTS, {"data": {"code": "C"}}, 415, "unsupported_media_type"),
    ("not JSON", "post", BALLOTS, {"data": b"{code: 1", "content_type": "application/json"}, 400, "invalid_json"),
    ("duplicate key", "post", BALLOTS, {"data": b'{"code": "A", "code": "B", "selections": {}}',
                                        "content_type": "application/json"}, 400, "invalid_json"),
    ("deep nesting", "post", BALLOTS, {"data": b"[" * 5000 + b"]" * 5000, "content_type": "application/json"},
     400, "invalid_json"),
    ("not UTF-8", "post", BALLOTS, {"data": b'{"code": "\xff"}', "content_type": "application/json"},
     400, "invalid_json"),
    ("array body", "post", BALLOTS, {"json": ["code"]}, 400, "invalid_request"),
    ("missing selections", "post", BALLOTS, {"json": {"code": "C"}}, 400, "invalid_request"),
    ("unknown field", "post", BALLOTS, {"json": {"code": "C", "selections": VOTE, "voter": "me"}},
     400, "invalid_request"),
    ("code not a string", "post", BALLOTS, {"json": {"code": 12345, "selections": VOTE}}, 400, "invalid_request"),
    ("selections a list", "post", BALLOTS, {"json": {"code": "C", "selections": ["carol"]}}, 400, "invalid_request"),
    ("unknown contest", "post", BALLOTS, {"json": {"code": "C", "selections": {**VOTE, "mayor": []}}},
     422, "invalid_ballot"),
    ("missing contest", "post", BALLOTS, {"json": {"code": "C", "selections": {"leader": ["carol"]}}},
     422, "invalid_ballot"),
    ("too many choices", "post", BALLOTS, {"json": {"code": "C", "selections": {"leader": ["alice", "bob"],
                                                                                 "board": []}}},
     422, "invalid_ballot"),
    ("unknown option", "post", BALLOTS, {"json": {"code": "C", "selections": {"leader": ["mallory"], "board": []}}},
     422, "invalid_ballot"),
    ("option twice", "post", BALLOTS, {"json": {"code": "C", "selections": {"leader": [], "board": ["dan", "dan"]}}},
     422, "invalid_ballot"),
    ("option not a string", "post", BALLOTS, {"json": {"code": "C", "selections": {"leader": [1], "board": []}}},
     422, "invalid_ballot"),
    ("proof without index", "get", f"{API}/elections/{ELECTION}/proof/inclusion", {}, 400, "invalid_parameter"),
    ("negative index", "get", f"{API}/elections/{ELECTION}/proof/inclusion?index=-1", {}, 400, "invalid_parameter"),
    ("index not a number", "get", f"{API}/elections/{ELECTION}/proof/inclusion?index=1e3", {},
     400, "invalid_parameter"),
    ("index beyond the tree", "get", f"{API}/elections/{ELECTION}/proof/inclusion?index=5", {},
     400, "invalid_parameter"),
    ("size beyond the signed tree", "get", f"{API}/elections/{ELECTION}/proof/inclusion?index=0&size=99", {},
     400, "invalid_parameter"),
    ("huge number", "get", f"{API}/elections/{ELECTION}/proof/inclusion?index=" + "9" * 40, {},
     400, "invalid_parameter"),
    ("consistency backwards", "get", f"{API}/elections/{ELECTION}/proof/consistency?from=2&to=1", {},
     400, "invalid_parameter"),
    ("consistency without from", "get", f"{API}/elections/{ELECTION}/proof/consistency", {},
     400, "invalid_parameter"),
    ("entries page too big", "get", f"{API}/elections/{ELECTION}/entries?start=0&end=5000", {},
     400, "invalid_parameter"),
    ("no checkpoint of that size", "get", f"{API}/elections/{ELECTION}/checkpoint?size=999", {},
     404, "checkpoint_not_found"),
    ("no tally", "get", f"{API}/elections/{ELECTION}/tally", {}, 404, "tally_not_found"),
    ("unknown API path", "get", f"{API}/votes", {}, 404, "not_found"),
    ("wrong method", "delete", BALLOTS, {}, 405, "method_not_allowed"),
    ("GET on ballots", "get", BALLOTS, {}, 405, "method_not_allowed"),
]


@pytest.fixture(scope="module")
def shared_world(tokens, tmp_path_factory):
    """One service for the whole table (bad requests change nothing): a tree of size 1,
    a draft and a closed election, and 9 unused codes."""
    svc = Service.open(provision(tokens, tmp_path_factory.mktemp("bad-requests")).load(),
                       with_sequencer=True).start()
    codes = open_election(svc, 10)
    add_election(svc, "draft-election", "draft")
    add_election(svc, "closed-election", "closed")
    svc.ballots.cast(ELECTION, codes[0], VOTE)
    yield svc, codes
    svc.close()


@pytest.mark.parametrize("case, method, path, kwargs, status, error", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_stable_error_code(shared_world, case, method, path, kwargs, status, error):
    service, codes = shared_world
    client = make_client(service)
    if "json" in kwargs and isinstance(kwargs["json"], dict) and kwargs["json"].get("code") == "C":
        kwargs = {"json": {**kwargs["json"], "code": codes[1]}}  # a valid code: only the other fault counts
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == error and isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"error", "message", "code_status"}
    assert "Traceback" not in response.get_data(as_text=True)
    if status == 405:
        assert "POST" in response.headers["Allow"]
    assert service.storage.count_codes(ELECTION)["unused"] == 9  # no bad request consumed a code


def test_an_unexpected_error_is_a_500_without_a_stack_trace(service, codes, caplog):
    app = create_app(service=service, test_config={"TESTING": False, "PROPAGATE_EXCEPTIONS": False})

    def boom():
        raise RuntimeError("secret internals")
    app.add_url_rule("/api/v1/boom", view_func=boom)
    app.add_url_rule("/boom", view_func=boom, endpoint="boom-page")
    with caplog.at_level(logging.ERROR):
        api = app.test_client().get("/api/v1/boom")
        page = app.test_client().get("/boom")
    assert api.status_code == 500 and api.get_json()["error"] == "internal_error"
    assert page.status_code == 500 and b"internal_error" in page.data
    for response in (api, page):
        assert b"secret internals" not in response.data and b"Traceback" not in response.data
    assert "secret internals" in caplog.text  # the operators still see it


# --- headers, CSRF, cookies ---------------------------------------------------------------------

def test_every_kind_of_response_carries_the_security_headers(client, codes):
    responses = [
        client.get("/"), client.get(f"/elections/{ELECTION}/vote"), client.get("/static/style.css"),
        client.get(f"{API}/elections"), client.get(f"{API}/nothing"), client.get("/nothing"),
        client.post(BALLOTS, data=b"x" * 20000, content_type="application/json"),
        client.post(f"/elections/{ELECTION}/vote/ballot", data={"code": codes[0]}),  # no CSRF token
        client.post(BALLOTS, json={"code": "nonsense", "selections": VOTE}),
    ]
    for response in responses:
        headers = response.headers
        assert headers["Content-Security-Policy"] == CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in headers
    assert CSP == ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                   "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    assert responses[1].headers["Cache-Control"] == "no-store"


def test_hsts_and_secure_cookies_only_behind_tls(service, codes):
    tls = copy.copy(service)
    tls.config = dataclasses.replace(service.config,
                                     server=dataclasses.replace(service.config.server, behind_tls=True))
    client = create_app(service=tls, test_config={"TESTING": True}).test_client()
    response = client.get(f"/elections/{ELECTION}/vote")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"]


def test_forms_need_the_session_csrf_token(client, service, codes):
    page = client.get(f"/elections/{ELECTION}/vote")
    cookie = page.headers["Set-Cookie"]
    assert "SameSite=Strict" in cookie and "HttpOnly" in cookie and "Secure" not in cookie
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    path = f"/elections/{ELECTION}/vote/ballot"
    for data in ({"code": codes[0]}, {"code": codes[0], "csrf_token": "forged"}, {"code": codes[0], "csrf_token": ""}):
        refused = client.post(path, data=data)
        assert refused.status_code == 400 and b"csrf_failed" in refused.data
    stranger = make_client(service)  # another browser: no session, so the token means nothing
    assert stranger.post(path, data={"code": codes[0], "csrf_token": token}).status_code == 400
    accepted = step(client, path, {"code": codes[0], "csrf_token": token})
    assert accepted.status_code == 200 and b"sel-leader" in accepted.data


def test_the_session_cookie_holds_only_the_csrf_token(service, codes):
    app = create_app(service=service, test_config={"TESTING": True})
    client = app.test_client()
    page = client.get(f"/elections/{ELECTION}/vote")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post(f"/elections/{ELECTION}/vote/ballot", data={"code": codes[0], "csrf_token": token})
    cookie = client.get_cookie("hsm_signer_session")
    session = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert session == {"csrf_token": token}


def test_the_session_key_comes_from_the_key_file_or_is_fresh_per_process(service, tmp_path):
    assert create_app(service=service).secret_key != create_app(service=service).secret_key
    key_file = tmp_path / "session.key"
    key_file.write_bytes(b"k" * 48)
    keyed = copy.copy(service)
    keyed.config = dataclasses.replace(service.config, server=dataclasses.replace(
        service.config.server, secret_key_file=key_file))
    assert create_app(service=keyed).secret_key == b"k" * 48
    key_file.write_bytes(b"short")
    with pytest.raises(ConfigError, match="server.secret_key_file"):
        create_app(service=keyed)


# --- rate limits --------------------------------------------------------------------------------

def test_a_burst_of_wrong_codes_is_rate_limited_while_another_client_votes(service, codes):
    app = create_app(service=service,
                     test_config={"TESTING": True, "CODE_FAILURES_FREE": 5, "CODE_FAILURE_DELAY": 60})
    attacker, voter = app.test_client(), app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.66"
    voter.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    statuses = [attacker.post(BALLOTS, json={"code": unknown_code(), "selections": VOTE}).status_code
                for _ in range(8)]
    assert statuses == [403] * 5 + [429] * 3
    limited = attacker.post(f"{API}/elections/{ELECTION}/code-status", json={"code": codes[0]})
    assert limited.status_code == 429 and limited.get_json()["error"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    html = attacker.post(f"/elections/{ELECTION}/vote/ballot", data={"code": codes[0]})
    assert html.status_code in (400, 429)  # (no CSRF token) but never a code check

    voted = voter.post(BALLOTS, json={"code": codes[0], "selections": VOTE})
    assert voted.status_code == 201
    # Correct codes do not use up a client's allowance.
    for code in codes[1:7]:
        assert voter.post(f"{API}/elections/{ELECTION}/code-status", json={"code": code}).status_code == 200


def test_html_code_attempts_count_against_the_same_allowance(service, codes):
    client = make_client(service, CODE_FAILURES_FREE=3, CODE_FAILURE_DELAY=60)
    page = client.get(f"/elections/{ELECTION}/vote")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    statuses = [step(client, f"/elections/{ELECTION}/vote/ballot", {"code": unknown_code(), "csrf_token": token})
                .status_code for _ in range(3)]
    assert statuses == [403, 403, 403]
    assert client.post(BALLOTS, json={"code": codes[0], "selections": VOTE}).status_code == 429
    page = client.post("/check", data={"election": ELECTION, "code": codes[0], "csrf_token": token})
    assert page.status_code == 429 and b"rate_limited" in page.data


# --- the HSM and the signer ---------------------------------------------------------------------

@pytest.fixture
def network_service(tokens, tmp_path, p11kit_client_module, p11kit_socket):
    """A service whose HSM is a SoftHSM token behind ``p11-kit server`` (kill it for an outage)."""
    kit = provision(tokens, tmp_path)
    server = P11KitServer(kit.token, p11kit_socket)
    server.start()
    text = kit.config_path.read_text()
    text = text.replace(f'module = "{kit.token.module}"', f'module = "{p11kit_client_module}"')
    text = text.replace("[hsm.pin]", "down_retry_interval = 0.2\n[hsm.pin]")
    kit.config_path.write_text(text)
    svc = Service.open(kit.load(), with_sequencer=True).start()
    yield server, svc
    svc.close()
    server.stop()


def test_hsm_outage_gives_503_with_retry_after_and_consumes_no_code(network_service):
    server, service = network_service
    codes = open_election(service, 4)
    client = make_client(service)
    assert client.post(BALLOTS, json={"code": codes[0], "selections": VOTE}).status_code == 201
    # A voter without JavaScript reaches the confirmation page before the HSM goes.
    token = token_of(client.get(f"/elections/{ELECTION}/vote").text)
    ballot = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": codes[2], "csrf_token": token})
    confirm = step(client, f"/elections/{ELECTION}/vote/confirm",
                   MultiDict([*hidden(ballot.text, "/vote/confirm"), ("sel-leader", "bob")]))

    server.stop()
    down = client.post(BALLOTS, json={"code": codes[1], "selections": VOTE})
    assert down.status_code == 503 and down.get_json()["error"] == "hsm_unavailable"
    assert int(down.headers["Retry-After"]) >= 1
    status = client.post(f"{API}/elections/{ELECTION}/code-status", json={"code": codes[1]})
    assert status.status_code == 503 and status.get_json()["error"] == "hsm_unavailable"
    health = client.get(f"{API}/health")
    assert health.status_code == 503 and health.get_json()["hsm"]["status"] != "ok"
    html = step(client, f"/elections/{ELECTION}/vote/cast", MultiDict(hidden(confirm.text, "/vote/cast")))
    assert html.status_code == 503 and int(html.headers["Retry-After"]) >= 1
    assert b"nothing was recorded" in html.data and b"Cast my ballot" in html.data  # try again from here
    assert service.storage.count_codes(ELECTION) == {"unused": 3, "online": 1, "postal": 0}  # 1 and 2 unused
    assert service.storage.pending(ELECTION, 10) == [] and service.storage.tree_size(ELECTION) == 1

    server.start()  # the HSM returns: the service recovers by itself
    deadline = time.monotonic() + 15
    while True:
        again = client.post(BALLOTS, json={"code": codes[1], "selections": VOTE})
        if again.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert again.status_code == 201, again.get_json()
    verify_receipt(Receipt.from_dict(again.get_json()), service.bundle)
    assert client.get(f"{API}/health").status_code == 200


def test_a_stalled_signer_gives_receipt_pending_and_then_the_original_receipt(kit):
    service = Service.open(kit.load())  # no sequencer yet: ballots are stored, not signed
    try:
        codes = open_election(service, 3)
        service.ballots.receipt_timeout = 0.3
        client = make_client(service)
        pending = client.post(BALLOTS, json={"code": codes[0], "selections": VOTE})
        assert pending.status_code == 503 and pending.get_json()["error"] == "receipt_pending"
        assert pending.headers["Retry-After"] == "2"
        ballot_id = pending.get_json()["ballot_id"]
        assert service.storage.count_codes(ELECTION)["online"] == 1 and len(service.storage.pending(ELECTION, 9)) == 1
        page = client.get(f"/elections/{ELECTION}/receipts/{ballot_id}")
        assert page.status_code == 503 and b"receipt_pending" in page.data

        service.sequencer = service.make_sequencer().start()
        service.ballots.receipt_timeout = 10
        done = client.post(BALLOTS, json={"code": codes[0], "selections": VOTE})
        assert done.status_code == 200  # stored by the first request: this is its receipt
        verify_receipt(Receipt.from_dict(done.get_json()), service.bundle)
        assert service.storage.tree_size(ELECTION) == 1
    finally:
        service.close()


# --- codes stay out of the logs ---------------------------------------------------------------

def test_voting_codes_never_reach_a_log_line(client, service, codes, caplog):
    with caplog.at_level(logging.DEBUG):
        client.post(BALLOTS, json={"code": codes[0], "selections": VOTE})
        client.post(BALLOTS, json={"code": codes[0], "selections": {"leader": [], "board": []}})
        client.post(BALLOTS, json={"code": typo(codes[1]), "selections": VOTE})
        client.post(f"{API}/elections/{ELECTION}/code-status", json={"code": codes[2]})
        client.post(f"{API}/elections/no-such/ballots", json={"code": codes[3], "selections": VOTE})
    logged = caplog.text.upper().replace("-", "")
    for code in codes[:4] + [typo(codes[1])]:
        assert code.replace("-", "") not in logged


class _PollClosesBeforeTheTransaction:
    """The service's storage, but the official closes the poll just before a ballot's
    transaction: after the view and the ballot box saw it open."""

    def __init__(self, inner):
        self._inner = inner

    def cast_many(self, requests):
        self._inner.set_state(ELECTION, "closed")
        return self._inner.cast_many(requests)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_a_poll_closing_during_the_request_refuses_the_ballot(kit):
    from hsm_signer.storage import open_storage
    cfg = kit.load()
    racing = _PollClosesBeforeTheTransaction(open_storage(cfg.storage_url))
    service = Service.open(cfg, with_sequencer=True, storage=racing).start()
    try:
        codes = open_election(service, 10)
        client = create_app(service=service, test_config={"TESTING": True}).test_client()
        response = client.post(BALLOTS, json={"code": codes[0], "selections": VOTE})
        assert response.status_code == 409 and response.get_json()["error"] == "poll_not_open"
        assert service.storage.count_codes(ELECTION) == {"unused": 10, "online": 0, "postal": 0}
        assert service.storage.get_election(ELECTION).state == "closed"
    finally:
        service.close()
