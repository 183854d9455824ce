"""Canonical JSON (RFC 8785) and the log leaf that is written in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm_signer.canonical import MAX_SAFE_INTEGER, canonicalize, loads_strict
from hsm_signer.errors import FormatError
from hsm_signer.log.leaf import LEAF_VERSION, Leaf

JCS = sorted((Path(__file__).parent / "vectors" / "jcs").glob("*.json"))


# --- RFC 8785 -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", JCS, ids=lambda p: p.stem)
def test_published_jcs_vector(path):
    v = json.loads(path.read_text())
    if v.get("rejected"):
        with pytest.raises(FormatError, match="number 56.0 has a fraction or exponent"):
            loads_strict(v["input"])
    else:
        assert canonicalize(loads_strict(v["input"].encode("utf-8"))) == v["output"].encode("utf-8")


def test_keys_sort_by_utf16_code_units_not_code_points():
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+E000.
    assert canonicalize({"\ue000": 1, "\U0001F600": 2}) == '{"\U0001F600":2,"\ue000":1}'.encode()


def test_strings_use_the_shortest_escapes_and_nothing_else_is_escaped():
    value = "\"\\\b\f\n\r\t\x00\x1f\x7f</é€😀"
    assert canonicalize(value) == '"\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f\x7f</é€😀"'.encode()


@pytest.mark.parametrize(
    "value, message",
    [
        (1.5, r"\$: floating-point numbers are not allowed"),
        ({"a": [float("nan")]}, r"\$.a\[0\]: floating-point numbers are not allowed"),
        (MAX_SAFE_INTEGER + 1, r"integer 9007199254740992 is outside the exact JSON range"),
        ({1: "x"}, "object keys must be strings, got int 1"),
        (b"bytes", "bytes cannot be written as canonical JSON"),
        ({"s": {1, 2}}, r"\$.s: set cannot be written"),
        ("\ud800", "lone surrogate U\\+D800"),
    ],
)
def test_values_outside_the_supported_subset_are_refused(value, message):
    with pytest.raises(FormatError, match=message):
        canonicalize(value)


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"a":1,"a":2}', "duplicate key 'a'"),
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        (b'{"a":"\xff"}', "not valid UTF-8"),
        (b'{"a":1e3}', "number 1e3 has a fraction or exponent"),
        (b'{"a":NaN}', "NaN is not valid JSON"),
        (b'{"a":', "not valid JSON"),
    ],
)
def test_strict_parsing_refuses_ambiguous_json(data, message):
    with pytest.raises(FormatError, match=message):
        loads_strict(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=5), children, max_size=4),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_form_parses_back_to_the_same_value_and_is_a_fixed_point(value):
    data = canonicalize(value)
    assert json.loads(data) == value
    assert canonicalize(loads_strict(data)) == data


ascii_keyed_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=5), children, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, ascii_keyed_values))
def test_the_fast_path_writes_exactly_what_the_general_encoder_writes(value):
    """canonicalize() takes a shortcut for plain values (exact built-in types, ASCII keys,
    strings with nothing to escape); it must give the general encoder's bytes, never others."""
    from hsm_signer.canonical import _encode
    out: list[str] = []
    _encode(value, "$", out)
    assert canonicalize(value) == "".join(out).encode("utf-8")


# --- the log leaf -------------------------------------------------------------------------

def test_a_new_online_ballot_is_canonical_json_with_only_the_documented_fields():
    leaf = Leaf.new("demo-2025", "ballot", {"leader": ["bob", "alice"], "deputy": []})
    data = leaf.to_bytes()
    assert json.loads(data) == {
        "version": LEAF_VERSION,
        "election": "demo-2025",
        "type": "ballot",
        "ballot_id": leaf.ballot_id,
        "selections": {"deputy": [], "leader": ["alice", "bob"]},
    }
    assert data == canonicalize(json.loads(data))
    assert Leaf.from_bytes(data) == leaf
    assert len(leaf.ballot_id) == 32 and int(leaf.ballot_id, 16) >= 0


def test_ballot_ids_are_fresh_random_128_bit_values():
    ids = {Leaf.new("e1", "postal", {}).ballot_id for _ in range(200)}
    assert len(ids) == 200


def test_leaves_are_immutable():
    leaf = Leaf.new("e1", "ballot", {"c": ["o"]})
    with pytest.raises(AttributeError):
        leaf.election = "e2"
    with pytest.raises(TypeError):
        leaf.selections["c"] = ("x",)
    assert hash(leaf) == hash(Leaf.from_bytes(leaf.to_bytes()))


GOOD = {"ballot_id": "0" * 32, "election": "e1", "selections": {"c": ["a", "b"]}, "type": "ballot", "version": LEAF_VERSION}


def _bytes(**changes):
    obj = {**GOOD, **changes}
    return canonicalize({k: v for k, v in obj.items() if v is not ...})


@pytest.mark.parametrize(
    "data, message",
    [
        (_bytes(code="ABCD-1234"), "leaf has unknown field\\(s\\): code"),
        (_bytes(voter="x", ip="1.2.3.4"), "unknown field\\(s\\): ip, voter"),
        (_bytes(selections=...), "leaf is missing field\\(s\\): selections"),
        (_bytes(version="hsm-signer/leaf/v2"), "leaf version must be 'hsm-signer/leaf/v1'"),
        (_bytes(type="email"), "type must be one of ballot, postal, got 'email'"),
        (_bytes(election="Demo"), "election must match"),
        (_bytes(election=7), "leaf field election must be a string, got int"),
        (_bytes(ballot_id="ABC"), "ballot_id must be 32 lowercase hex digits"),
        (_bytes(selections=[]), "leaf field selections must be an object, got list"),
        (_bytes(selections={"c": "a"}), "selections.c must be a list of option ids, got str"),
        (_bytes(selections={"c": ["b", "a"]}), "selections.c must be sorted and without duplicates"),
        (_bytes(selections={"c": ["a", "a"]}), "selections.c must be sorted and without duplicates"),
        (_bytes(selections={"c": ["A"]}), r"selections.c\[0\] must match"),
        (_bytes(selections={"-c": []}), "selections contest id must match"),
        (json.dumps(GOOD).encode(), "not in canonical JSON form"),
        (_bytes() + b" ", "not in canonical JSON form"),
        (b"[]", "leaf must be a JSON object, got list"),
        (b'{"a":1,"a":1}', "leaf: duplicate key 'a'"),
    ],
)
def test_leaf_parsing_is_strict_and_says_what_is_wrong(data, message):
    with pytest.raises(FormatError, match=message):
        Leaf.from_bytes(data)


def test_the_sample_leaf_is_accepted():
    assert Leaf.from_bytes(_bytes()).selections == {"c": ("a", "b")}


def test_new_refuses_selecting_an_option_twice():
    with pytest.raises(FormatError, match="selects the same option more than once"):
        Leaf.new("e1", "ballot", {"c": ["a", "a"]})
    with pytest.raises(FormatError, match="must be a list of option ids, not a single string"):
        Leaf.new("e1", "ballot", {"c": "a"})
