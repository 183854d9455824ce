"""Sealed ballots and leaf v2: what is sealed, what is bound, what the length gives away (nothing)."""

from __future__ import annotations

import base64
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_signer.canonical import canonicalize
from hsm_signer.election import Election
from hsm_signer.errors import FormatError
from hsm_signer.log import hpke, sealed
from hsm_signer.log.leaf import LEAF_VERSION, SEALED_LEAF_VERSION, Leaf, SealedLeaf, parse_leaf

DEMO = Election.load(__import__("hsm_signer").__path__[0] + "/data/demo-election.toml")
SIZE = sealed.padded_size(DEMO)


@pytest.fixture(scope="module")
def sealing_key():
    return ec.generate_private_key(ec.SECP256R1())


def _pk(key) -> bytes:
    return hpke.public_key_bytes(key.public_key())


def _every_valid_ballot(election: Election):
    per_contest = []
    for contest in election.contests:
        choices = [list(c) for k in range(contest.max_choices + 1)
                   for c in itertools.combinations(contest.option_ids, k)]
        per_contest.append([(contest.id, c) for c in choices])
    for combo in itertools.product(*per_contest):
        yield election.validate_selections(dict(combo))


def test_every_valid_ballot_of_an_election_seals_to_the_same_length(sealing_key):
    ballots = list(_every_valid_ballot(DEMO))
    assert len(ballots) == 4 * 11  # (3 options + blank) x (1 blank + 4 singles + 6 pairs)
    lengths = {len(sealed.seal_ballot(_pk(sealing_key), DEMO.id, sealed.ONLINE, "ab" * 16, b, SIZE)) for b in ballots}
    assert lengths == {sealed.sealed_length(SIZE)}
    assert SIZE % sealed.PAD_BLOCK == 0
    longest = max(len(canonicalize(b)) for b in ballots)
    assert longest <= SIZE < longest + sealed.PAD_BLOCK


def test_a_sealed_ballot_opens_only_for_its_own_election_channel_and_ballot_id(sealing_key):
    selections = {"executive": ["dev-patel", "grace-liu"], "leader": ["ben-carter"]}
    ballot_id = "0123456789abcdef" * 2
    blob = sealed.seal_ballot(_pk(sealing_key), DEMO.id, sealed.ONLINE, ballot_id, selections, SIZE)
    secret = hpke.decapsulate(sealing_key, blob[:hpke.N_ENC])
    assert sealed.open_sealed(secret, DEMO.id, sealed.ONLINE, ballot_id, blob, SIZE) == selections
    for election, channel, other_id in [("other-2026", sealed.ONLINE, ballot_id),
                                        (DEMO.id, sealed.POSTAL, ballot_id),
                                        (DEMO.id, sealed.ONLINE, "f" * 32)]:
        with pytest.raises(hpke.OpeningError):
            sealed.open_sealed(secret, election, channel, other_id, blob, SIZE)


def test_the_info_names_the_format_and_is_canonical_json():
    info = sealed.sealing_info("demo-2026", "postal", "a" * 32)
    assert info == (b'{"ballot_id":"' + b"a" * 32 + b'","channel":"postal","election":"demo-2026",'
                    b'"format":"hsm-signer/sealed-ballot/v1"}')
    with pytest.raises(FormatError, match="channel must be one of online, postal"):
        sealed.sealing_info("demo-2026", "email", "a" * 32)


@pytest.mark.parametrize("plaintext, message", [
    (b'{"leader":[]}' + bytes(10), "is 23 bytes; every ballot of this election is 64"),
    (b'{"leader":[]}\x00 ' + bytes(49), "zero byte inside its JSON"),
    (b'{"leader": []}' + bytes(50), "not in canonical JSON form"),
    (b'{"leader":["b","a"]}' + bytes(44), "not sorted or repeat"),
    (b'{"leader":"a"}' + bytes(50), "not an object of contests to lists"),
    (b'["leader"]' + bytes(54), "not an object of contests to lists"),
    (b'{"leader":[1]}' + bytes(50), "not an object of contests to lists"),
    (b"\xff" * 64, "not valid UTF-8"),
])
def test_an_opened_plaintext_must_be_exactly_what_sealing_makes(plaintext, message):
    with pytest.raises(FormatError, match=message):
        sealed.decode_plaintext(plaintext, 64)


def test_selections_longer_than_the_padded_size_are_refused():
    with pytest.raises(FormatError, match="more than the election's sealed size 64"):
        sealed.encode_plaintext({"leader": ["x" * 80]}, 64)


def test_check_sealed_wants_the_exact_length_and_a_curve_point(sealing_key):
    blob = sealed.seal_ballot(_pk(sealing_key), DEMO.id, sealed.ONLINE, "c" * 32, {"leader": [], "executive": []}, SIZE)
    assert sealed.check_sealed(blob, SIZE) == blob
    with pytest.raises(FormatError, match=f"is {sealed.sealed_length(SIZE)} bytes, got {len(blob) - 1}"):
        sealed.check_sealed(blob[:-1], SIZE)
    with pytest.raises(FormatError, match="not a point on the P-256 curve"):
        sealed.check_sealed(b"\x04" + bytes(64) + blob[65:], SIZE)


def test_leaf_v2_round_trips_and_never_holds_selections(sealing_key):
    blob = sealed.seal_ballot(_pk(sealing_key), DEMO.id, sealed.POSTAL, "d" * 32, {"leader": ["amara-okafor"], "executive": []}, SIZE)
    leaf = SealedLeaf.new(DEMO.id, "postal", blob, ballot_id="d" * 32)
    data = leaf.to_bytes()
    assert b"amara" not in data and b"selections" not in data
    assert data.startswith(b'{"ballot_id":"' + b"d" * 32 + b'","election":"demo-2026","sealed":"')
    assert parse_leaf(data) == leaf and leaf.channel == "postal"
    assert SealedLeaf.from_bytes(data).sealed == blob


def test_parse_leaf_still_reads_v1_leaves_of_earlier_records():
    v1 = Leaf.new("demo-2026", "ballot", {"leader": ["ben-carter"]})
    assert parse_leaf(v1.to_bytes()) == v1


def _v2(**changes) -> bytes:
    obj = {"version": SEALED_LEAF_VERSION, "election": "demo-2026", "type": "ballot", "ballot_id": "e" * 32,
           "sealed": base64.b64encode(b"\x04" + bytes(100)).decode()}
    obj.update(changes)
    return canonicalize({k: v for k, v in obj.items() if v is not None})


@pytest.mark.parametrize("data, message", [
    (_v2(version="hsm-signer/leaf/v3"), "leaf version must be"),
    (_v2(sealed="not base64!"), "sealed is not valid base64"),
    (_v2(sealed=""), "non-empty bytes"),
    (_v2(selections={"leader": []}), "unknown field"),
    (_v2(sealed=None), "missing field"),
    (_v2(ballot_id="E" * 32), "32 lowercase hex digits"),
    (_v2(type="email"), "type must be one of"),
    (_v2(sealed=7), "must be a string"),
    (_v2().replace(b",", b", ", 1), "not in canonical JSON form"),
    (b"[]", "must be a JSON object"),
])
def test_malformed_v2_leaves_are_refused_with_the_reason(data, message):
    with pytest.raises(FormatError, match=message):
        parse_leaf(data)


def test_a_v1_leaf_is_not_mistaken_for_v2_or_the_other_way_round():
    with pytest.raises(FormatError, match="version must be"):
        SealedLeaf.from_bytes(Leaf.new("demo-2026", "ballot", {}).to_bytes())
    with pytest.raises(FormatError):
        Leaf.from_bytes(_v2())
    assert LEAF_VERSION != SEALED_LEAF_VERSION
