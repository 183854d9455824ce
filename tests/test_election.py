"""Election definitions: strict parsing with field paths, ballot rules, the life cycle."""

from __future__ import annotations

import pytest

from hsm_signer.election import BallotError, Election, check_transition
from hsm_signer.errors import ConfigError, ElectionError

from servicekit import DEMO_ELECTION

GOOD = """
id = "leader-2026"
title = "Leadership"
opens_at = 2026-08-01T09:00:00Z
closes_at = 2026-09-02T17:00:00Z

[[contests]]
id = "leader"
title = "Leader"
options = [{ id = "a", title = "A" }, { id = "b", title = "B" }]
"""


def write(tmp_path, text):
    path = tmp_path / "election.toml"
    path.write_text(text)
    return path


def test_a_definition_file_loads(tmp_path):
    election = Election.load(write(tmp_path, GOOD))
    assert election.id == "leader-2026" and election.contests[0].option_ids == ("a", "b")
    assert election.closes_at == "2026-09-02T17:00:00Z"
    assert Election.from_json(election.to_json()) == election


def test_the_log_origin_is_recorded_in_the_definition(tmp_path):
    bare = Election.load(write(tmp_path, GOOD))
    assert bare.origin is None and bare.log_origin == "hsm-signer/leader-2026"  # as elections stored before origins
    assert "origin" not in bare.to_dict()  # so the digest of an earlier definition is unchanged
    named = bare.with_origin("vote.example.org")
    assert named.log_origin == "vote.example.org/leader-2026" and named.to_dict()["origin"] == named.log_origin
    assert Election.from_json(named.to_json()) == named
    assert named.with_origin("other.example.org") == named  # an origin, once recorded, stays
    own = Election.load(write(tmp_path, GOOD.replace('title = "Leadership"', 'title = "Leadership"\norigin = "x.example/leader-2026"')))
    assert own.log_origin == "x.example/leader-2026"


@pytest.mark.parametrize("change, message", [
    (('id = "leader-2026"', 'id = "Leader 2026"'), r"^id: 'Leader 2026' is not a valid id"),
    (('title = "Leadership"\n', 'title = "Leadership"\ncolour = "red"\n'), r"unknown key 'colour'"),
    (('title = "Leadership"\n', 'title = "Leadership"\norigin = "vote.example.org/leader-2027"\n'),
     r"^origin: log origin 'vote.example.org/leader-2027' does not name election 'leader-2026'"),
    (('title = "Leadership"\n', 'title = "Leadership"\norigin = "leader-2026"\n'),
     r"^origin: log origin 'leader-2026' is not <origin prefix>/<election id>"),
    (('title = "Leader"\n', 'title = "Leader"\nmax_choices = 3\n'), r"contests\[0\]\.max_choices: max_choices 3 exceeds the 2 options"),
    (('{ id = "b", title = "B" }', '{ id = "a", title = "B" }'), r"contests\[0\]\.options: option ids must be unique"),
    (('closes_at = 2026-09-02T17:00:00Z', 'closes_at = 2026-07-02T17:00:00Z'), r"closes_at: closes_at must be after opens_at"),
    (('opens_at = 2026-08-01T09:00:00Z', 'opens_at = 2026-08-01T09:00:00'), r"opens_at: give a time zone"),
    (('title = "Leadership"\n', ''), r"^title: missing"),
])
def test_definition_errors_name_the_field(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        Election.load(write(tmp_path, GOOD.replace(*change)))


def test_selections_are_checked_and_put_in_canonical_form():
    election = Election.from_dict(DEMO_ELECTION)
    assert election.validate_selections({"leader": ["bob"], "board": ["frank", "dan"]}) == \
        {"leader": ["bob"], "board": ["dan", "frank"]}
    assert election.validate_selections({"leader": [], "board": []}) == {"leader": [], "board": []}


@pytest.mark.parametrize("selections, message", [
    ({"leader": ["bob"]}, "contest 'board' is missing"),
    ({"leader": ["bob", "alice"], "board": []}, "at most 1 choice, got 2"),
    ({"leader": ["zed"], "board": []}, "has no option 'zed'"),
    ({"leader": ["bob"], "board": ["dan", "dan"]}, "names an option twice"),
    ({"leader": ["bob"], "board": [], "extra": []}, "unknown contest 'extra'"),
    ({"leader": "bob", "board": []}, "must be a list of option ids"),
    (["bob"], "selections must be an object"),
])
def test_bad_selections_are_refused_precisely(selections, message):
    with pytest.raises(BallotError, match=message):
        Election.from_dict(DEMO_ELECTION).validate_selections(selections)


def test_the_life_cycle_only_moves_forward():
    check_transition("draft", "open", "e")
    check_transition("open", "closed", "e")
    for current, wanted in [("draft", "closed"), ("open", "draft"), ("closed", "open"), ("open", "open")]:
        with pytest.raises(ElectionError, match="the life cycle is draft → open → closed"):
            check_transition(current, wanted, "e")
