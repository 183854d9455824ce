"""Counting and signing the tally: the line format, strict counting, and the officials' rules.

The first half is pure (no HSM): the documented extension lines, the strict parser, the
recount that the audit shares. The second half runs the service on a SoftHSM token: an
open poll is never tallied, a tally is bound to the final checkpoint, re-tallying returns
the stored tally or refuses a different result.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from hsm_signer.bundle import CHECKPOINT, TALLY
from hsm_signer.election import Election
from hsm_signer.errors import ElectionError, FormatError, VerificationError
from hsm_signer.lifecycle import close_poll, tally_election
from hsm_signer.log.checkpoint import Checkpoint, open_checkpoint
from hsm_signer.log.leaf import Leaf
from hsm_signer.log.merkle import leaf_hash
from hsm_signer.tally import Tally, definition_digest, format_tally, open_tally, tally_summary
from hsm_signer.recount import Recount, count_leaves
from hsm_signer.service import Service
from hsm_signer.testing.service import TEST_ORIGIN_PREFIX

from merkle_reference import root_from_leaf_hashes
from servicekit import DEMO_ELECTION, open_election, provision

ELECTION = Election.from_dict(DEMO_ELECTION)


def leaf(selections: dict, type: str = "ballot", election: str = "test-election") -> bytes:
    return Leaf.new(election, type, selections).to_bytes()


def sample_leaves() -> list[bytes]:
    return [
        leaf({"leader": ["alice"], "board": ["dan", "erin"]}),
        leaf({"leader": ["bob"], "board": ["dan"]}),
        leaf({"leader": ["alice"], "board": []}, "postal"),
        leaf({"leader": [], "board": ["erin"]}),
        leaf({"leader": ["alice"], "board": ["dan", "erin"]}),
    ]


# --- the line format -----------------------------------------------------------------------

def test_the_extension_lines_list_every_option_in_definition_order_with_channels_and_ballots():
    leaves = sample_leaves()
    tally = count_leaves(ELECTION, leaves)
    assert tally.size == 5
    assert tally.root_hash == root_from_leaf_hashes([leaf_hash(x) for x in leaves])
    assert tally.extension_lines() == (
        f"definition {definition_digest(ELECTION)}",
        "tally leader alice 3",
        "tally leader bob 1",
        "tally leader carol 0",
        "tally board dan 3",
        "tally board erin 3",
        "tally board frank 0",
        "blank leader 1",
        "blank board 1",
        "tally-channel online leader alice 2",
        "tally-channel online leader bob 1",
        "tally-channel online leader carol 0",
        "tally-channel online board dan 3",
        "tally-channel online board erin 3",
        "tally-channel online board frank 0",
        "tally-channel postal leader alice 1",
        "tally-channel postal leader bob 0",
        "tally-channel postal leader carol 0",
        "tally-channel postal board dan 0",
        "tally-channel postal board erin 0",
        "tally-channel postal board frank 0",
        "ballots online 4",
        "ballots postal 1",
    )
    assert Tally.from_checkpoint(tally.checkpoint()) == tally
    assert definition_digest(ELECTION).startswith("sha256:") and len(definition_digest(ELECTION)) == 71


def test_an_empty_election_tallies_to_zeros_over_the_empty_tree():
    tally = count_leaves(ELECTION, [])
    assert tally.size == 0 and tally.ballots_online == tally.ballots_postal == 0
    assert "tally leader carol 0" in tally.extension_lines()
    assert Tally.from_checkpoint(tally.checkpoint()) == tally


def test_the_summary_and_the_printed_result_show_online_postal_and_total():
    tally = count_leaves(ELECTION, sample_leaves())
    data = tally.to_dict()
    assert data["ballots"] == {"online": 4, "postal": 1, "total": 5}
    assert data["contests"][0]["options"][0] == {"id": "alice", "votes": 3, "online": 2, "postal": 1}
    assert data["contests"][0]["blank"] == 1
    text = "\n".join(format_tally(tally, ELECTION))
    assert "ballots: 5 (online 4, postal 1)" in text
    assert "alice         3   (online 2, postal 1)  Alice" in text


def _lines_with(change) -> Checkpoint:
    tally = count_leaves(ELECTION, sample_leaves())
    lines = list(tally.extension_lines())
    change(lines)
    return Checkpoint(tally.origin, tally.size, tally.root_hash, lines)


@pytest.mark.parametrize("change, message", [
    (lambda lines: lines.pop(0), "the tally has no 'definition sha256:<hex>' line"),
    (lambda lines: lines.__setitem__(1, "tally leader alice 03"), "count '03' is not a decimal number"),
    (lambda lines: lines.__setitem__(1, "tally leader alice 4"), r"'tally leader alice 4' is not the sum of its channel"),
    (lambda lines: lines.__setitem__(1, "tally  leader alice 3"), "a tally line has 3 field"),
    (lambda lines: lines.append("turnout 5"), "unknown line kind 'turnout'"),
    (lambda lines: lines.append("ballots online 4"), "repeats the ballot count of channel online"),
    (lambda lines: lines.__setitem__(-1, "ballots postal 2"), r"do not add up to the tree size 5"),
    (lambda lines: lines.remove("blank board 1"), "the tally has no 'blank board <count>' line"),
    (lambda lines: lines.remove("tally-channel postal board erin 0"),
     "no 'tally-channel postal board erin <count>' line"),
    (lambda lines: lines.__setitem__(-2, "ballots email 4"), "unknown channel 'email'"),
    (lambda lines: lines.insert(7, lines.pop(8)), r"tally line 8 is 'blank board 1', but in the documented order it must "
                                                  r"be 'blank leader 1'"),
    (lambda lines: lines.__setitem__(7, "blank leader 5"), r"'tally leader alice 3' exceeds the 0 non-blank ballots"),
])
def test_a_malformed_tally_is_rejected_naming_the_line(change, message):
    with pytest.raises(FormatError, match=message):
        Tally.from_checkpoint(_lines_with(change))


# --- counting is strict ------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (leaf({"leader": ["alice"], "board": []}, election="other-election"),
     "entry 2 belongs to election 'other-election', not 'test-election'"),
    (leaf({"leader": ["alice", "bob"], "board": []}), "entry 2 does not fit the election definition: contest 'leader' allows at most 1"),
    (leaf({"leader": ["zed"], "board": []}), "entry 2 does not fit the election definition: contest 'leader' has no option 'zed'"),
    (leaf({"leader": ["alice"]}), "entry 2 does not fit the election definition: contest 'board' is missing"),
    (leaf({"leader": ["alice"], "board": []}).replace(b'{"ballot_id"', b'{ "ballot_id"'), "entry 2: leaf is not in canonical JSON form"),
    (b"not json", "entry 2: leaf: "),
])
def test_the_recount_names_the_first_bad_entry(bad, message):
    recount = Recount(ELECTION)
    recount.add(leaf({"leader": ["alice"], "board": []}))
    recount.add(leaf({"leader": ["bob"], "board": []}))
    with pytest.raises(VerificationError, match=message):
        recount.add(bad)


def test_the_recount_refuses_a_ballot_that_is_in_the_log_twice():
    recount = Recount(ELECTION)
    first = leaf({"leader": ["alice"], "board": []})
    recount.add(first)
    recount.add(leaf({"leader": ["bob"], "board": []}))
    with pytest.raises(VerificationError, match=r"entry 2 repeats ballot id [0-9a-f]{32} of an earlier entry"):
        recount.add(first)


def test_cached_checks_still_reject_a_leaf_whose_shape_differs_only_in_the_ballot_id():
    recount = Recount(ELECTION)
    good = leaf({"leader": ["alice"], "board": []})
    recount.add(good)
    upper = good.replace(good[14:46], good[14:46].upper().replace(b"A", b"B").replace(b"0", b"C"))
    assert upper != good
    with pytest.raises(VerificationError, match="entry 1: leaf: ballot_id must be 32 lowercase hex digits"):
        recount.add(upper)


# --- officials on SoftHSM --------------------------------------------------------------------

@pytest.fixture
def service(tokens, tmp_path):
    kit = provision(tokens, tmp_path / "state")
    svc = Service.open(kit.load(), with_sequencer=True).start()
    svc.kit = kit
    yield svc
    svc.close()


def cast_some(service, codes) -> None:
    box = service.ballots
    box.cast("test-election", codes[0], {"leader": ["alice"], "board": ["dan", "erin"]})
    box.cast("test-election", codes[1], {"leader": ["bob"], "board": []})
    box.cast("test-election", codes[2], {"leader": ["alice"], "board": ["frank"]}, channel="postal")


def test_an_open_poll_is_never_tallied(service):
    codes = open_election(service, 3)
    cast_some(service, codes)
    with pytest.raises(ElectionError, match="election 'test-election' is open: close the poll first"):
        tally_election(service, "test-election")
    assert service.storage.get_tally("test-election") is None


def test_the_tally_is_signed_by_the_tally_key_and_bound_to_the_final_checkpoint(service):
    codes = open_election(service, 3)
    cast_some(service, codes)
    size, final_note = close_poll(service, "test-election")
    signed = tally_election(service, "test-election")
    assert signed.created and size == 3
    final = open_checkpoint(final_note, [service.bundle.verifier(CHECKPOINT)])
    tally, key_name = open_tally(signed.note, service.bundle)
    assert key_name == service.bundle.key(TALLY).note_key_name
    assert (tally.size, tally.root_hash) == (final.size, final.root_hash)
    assert "tally leader alice 2" in tally.extension_lines()
    assert "tally-channel postal board frank 1" in tally.extension_lines()
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        open_checkpoint(signed.note, [service.bundle.verifier(CHECKPOINT)])  # not the checkpoint key
    assert service.storage.get_tally("test-election") == signed.note

    summary = tally_summary(signed.note, service.bundle, service.storage.get_election("test-election").election)
    assert summary["ballots"] == {"online": 2, "postal": 1, "total": 3}
    assert summary["contests"][0]["title"] == "Leader"
    assert summary["contests"][0]["options"][0] == {"id": "alice", "votes": 2, "online": 1, "postal": 1, "title": "Alice"}
    assert summary["signed_tally"] == signed.note and summary["key_name"] == key_name


def test_tallying_again_returns_the_stored_tally_and_a_different_result_is_refused(service):
    codes = open_election(service, 3)
    cast_some(service, codes)
    close_poll(service, "test-election")
    first = tally_election(service, "test-election")
    again = tally_election(service, "test-election")
    assert (again.note, again.created) == (first.note, False)

    # The definition the tally was counted against changes behind the officials' back.
    db = sqlite3.connect(service.kit.directory / "ballots.sqlite3")
    definition = db.execute("SELECT definition FROM elections WHERE id = 'test-election'").fetchone()[0]
    db.execute("UPDATE elections SET definition = ? WHERE id = 'test-election'",
               (definition.replace('"Alice"', '"Alicia"'),))
    db.commit()
    db.close()
    with pytest.raises(ElectionError, match="already has a signed tally with a different result; it is never re-signed"):
        tally_election(service, "test-election")
    assert service.storage.get_tally("test-election") == first.note


def test_a_tally_is_refused_when_the_stored_entries_no_longer_hash_to_the_final_checkpoint(service):
    codes = open_election(service, 3)
    cast_some(service, codes)
    close_poll(service, "test-election")
    db = sqlite3.connect(service.kit.directory / "ballots.sqlite3")
    stored = db.execute("SELECT leaf FROM entries WHERE leaf_index = 1").fetchone()[0]
    db.execute("UPDATE entries SET leaf = ? WHERE leaf_index = 1", (stored.replace(b'"bob"', b'"carol"'),))
    db.commit()
    db.close()
    with pytest.raises(VerificationError, match="do not hash to the root of the final checkpoint .size 3.: the database was altered"):
        tally_election(service, "test-election")
    assert service.storage.get_tally("test-election") is None


def test_the_tally_command_prints_the_counts_and_the_signed_note(service, capsys):
    from hsm_signer.cli import main

    codes = open_election(service, 3)
    cast_some(service, codes)
    close_poll(service, "test-election")
    service.close()
    capsys.readouterr()
    assert main(["--config", str(service.kit.config_path), "tally", "test-election"]) == 0
    out = capsys.readouterr()
    assert "election 'test-election': signed the tally (key test/tally)" in out.out
    assert "ballots: 3 (online 2, postal 1)" in out.out
    assert "alice         2   (online 1, postal 1)  Alice" in out.out
    assert "\ntally leader alice 2\n" in out.out and "\n— test/tally " in out.out
    assert "counting entries: 3/3 (100%)" in out.err
    assert main(["--config", str(service.kit.config_path), "tally", "test-election"]) == 0
    assert "already signed with this result; unchanged" in capsys.readouterr().out
    assert main(["--config", str(service.kit.config_path), "tally", "test-election", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ballots"] == {"online": 2, "postal": 1, "total": 3} and data["title"] == "Test election"
    assert data["signed_tally"].startswith(f"{TEST_ORIGIN_PREFIX}/test-election\n3\n")


def test_the_full_tally_example_in_formats_md_parses_and_renders_identically():
    import re
    from pathlib import Path

    formats = (Path(__file__).resolve().parent.parent / "docs" / "FORMATS.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example:tally-full -->\n```\n(.*?)^```$", formats, re.S | re.M)
    assert match, "no example:tally-full in FORMATS.md"
    tally = Tally.from_checkpoint(Checkpoint.from_text(match.group(1)))
    assert tally.checkpoint().to_text() == match.group(1)
    assert tally.definition == definition_digest(ELECTION)
    assert tally.to_dict()["ballots"] == {"online": 4, "postal": 1, "total": 5}
