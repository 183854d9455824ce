"""Scheduled polls: opens_at and closes_at are enforced by the service, whatever the state
column says, and the sequencer closes the poll at closes_at as `election close` would.
Time is a clock the test passes in; nothing sleeps until a real date."""

from __future__ import annotations

import datetime as dt
import html
import time

import pytest

from servicekit import DEMO_ELECTION, open_election

OPENS, CLOSES = "2030-01-01T09:00:00Z", "2030-01-01T17:00:00Z"
SCHEDULED = {**DEMO_ELECTION, "opens_at": OPENS, "closes_at": CLOSES}
VOTE = {"leader": ["bob"], "board": []}


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Clock:
    """The time the service sees, set by the test."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scheduled(kit):
    from hsm_signer.service import Service
    clock = Clock(_at(OPENS) - 3600)
    service = Service.open(kit.load(), with_sequencer=True, clock=clock).start()
    codes = open_election(service, 4, SCHEDULED)  # the state column says open from the start
    yield service, clock, codes
    service.close()


def test_a_ballot_outside_the_schedule_is_refused_whatever_the_state(scheduled):
    from hsm_signer.errors import PollNotOpenError
    service, clock, codes = scheduled
    with pytest.raises(PollNotOpenError, match=r"the poll for election 'test-election' opens at 2030-01-01 09:00 UTC; "
                                               r"no ballot is accepted before its opening time"):
        service.ballots.cast("test-election", codes[0], VOTE)
    clock.now = _at(OPENS)
    assert service.ballots.cast("test-election", codes[0], VOTE).new
    clock.now = _at(CLOSES)
    with pytest.raises(PollNotOpenError, match=r"closed at 2030-01-01 17:00 UTC; no ballot is accepted after its "
                                               r"closing time"):
        service.ballots.cast("test-election", codes[1], VOTE)
    with pytest.raises(PollNotOpenError, match="closed at"):  # postal ballots too
        service.ballots.cast("test-election", codes[2], VOTE, channel="postal")
    assert service.storage.count_codes("test-election") == {"unused": 3, "online": 1, "postal": 0}


def test_the_sequencer_closes_the_poll_at_closes_at_like_a_manual_close(scheduled):
    from hsm_signer.lifecycle import close_poll, tally_election
    service, clock, codes = scheduled
    clock.now = _at(OPENS) + 60
    service.ballots.cast("test-election", codes[0], VOTE)
    service.ballots.submit("test-election", codes[1], {"leader": ["alice"], "board": ["dan"]})
    time.sleep(1.5)  # a heartbeat or more: before closes_at, the sequencer leaves the poll open
    assert service.storage.get_election("test-election").state == "open"

    clock.now = _at(CLOSES)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the sequencer looks about once a second
        latest = service.storage.latest_checkpoint("test-election")
        if service.storage.get_election("test-election").state == "closed" and latest and latest[0] == 2:
            break
        time.sleep(0.1)
    assert service.storage.get_election("test-election").state == "closed"
    assert service.storage.latest_checkpoint("test-election")[0] == 2
    # What `election close` would have done is done: closing again changes nothing, the tally signs.
    assert close_poll(service, "test-election", timeout=10) == service.storage.latest_checkpoint("test-election")
    assert tally_election(service, "test-election").tally.checkpoint().size == 2


def test_election_open_refuses_a_poll_whose_closes_at_has_passed(officials, tmp_path):
    definition = tmp_path / "old.toml"
    definition.write_text('id = "old-2020"\ntitle = "Old"\ncloses_at = 2020-06-01T17:00:00Z\n[[contests]]\n'
                          'id = "chair"\ntitle = "Chair"\noptions = [{ id = "ann", title = "Ann" }]\n')
    officials("election", "create", str(definition))
    _, err = officials("election", "open", "old-2020", expect=2)
    assert "election 'old-2020' has closes_at 2020-06-01 17:00 UTC, which has passed" in err
    out, _ = officials("election", "list")
    assert "old-2020\tdraft" in out


def test_the_api_refuses_a_ballot_after_closes_at_with_a_clear_message(kit):
    """The 2020 election of the issue: state open in the database, closes_at long past."""
    from hsm_signer.service import Service
    from hsm_signer.web import create_app
    service = Service.open(kit.load(), with_sequencer=True).start()
    try:
        codes = open_election(service, 1, {**DEMO_ELECTION, "closes_at": "2020-06-01T17:00:00Z"})
        client = create_app(service=service, test_config={"TESTING": True}).test_client()
        response = client.post("/api/v1/elections/test-election/ballots", json={"code": codes[0], "selections": VOTE})
        assert response.status_code == 409
        assert response.get_json()["error"] == "poll_not_open"
        assert "closed at 2020-06-01 17:00 UTC" in response.get_json()["message"]
        assert service.storage.count_codes("test-election")["unused"] == 1
    finally:
        service.close()


def test_the_voting_pages_follow_the_schedule_on_the_service_clock(scheduled):
    """An open poll before opens_at (an official opened it ahead of time) and after
    closes_at (the sequencer has not closed it yet): the voting page says when, in words."""
    from hsm_signer.web import create_app
    service, clock, codes = scheduled
    client = create_app(service=service, test_config={"TESTING": True}).test_client()
    early = client.get("/elections/test-election/vote")
    assert early.status_code == 409
    assert "The poll for this election opens on Tuesday 1 January 2030 at 9:00am (UTC)." in early.text
    assert 'name="code"' not in early.text
    welsh = client.get("/elections/test-election/vote", headers={"Accept-Language": "cy"})
    assert "Mae'r bleidlais ar gyfer yr etholiad hwn yn agor ar Dydd Mawrth 1 Ionawr 2030, 09:00 (UTC)." in html.unescape(
        welsh.text)

    clock.now = _at(OPENS)
    assert client.get("/elections/test-election/vote").status_code == 200
    clock.now = _at(CLOSES)
    late = client.get("/elections/test-election/vote")
    assert late.status_code == 409 and "closed on Tuesday 1 January 2030 at 5:00pm (UTC)." in late.text
