"""docs/ELECTIONS.md stays right: its definitions load, its postal CSV reads against them,
every definition field is documented, and a definition's error points to the page."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hsm_signer import postal
from hsm_signer.election import Election
from hsm_signer.errors import ConfigError

DOC = Path(__file__).resolve().parent.parent / "docs" / "ELECTIONS.md"
TEXT = DOC.read_text(encoding="utf-8")


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", TEXT, flags=re.S)


def _definition(text: str) -> Election:
    return Election.from_dict(tomllib.loads(text))


def test_every_documented_definition_loads():
    elections = [_definition(block) for block in _blocks("toml")]
    assert [e.id for e in elections] == ["leader-2026", "executive-2026"]
    assert elections[0].closes_at == "2026-09-02T17:00:00Z"
    assert [c.max_choices for c in elections[1].contests] == [1, 2]


def test_every_definition_field_is_in_the_table():
    documented = set(re.findall(r"^\| `([a-z_\[\]\.]+)` \|", TEXT, flags=re.M))
    fields = {"id", "title", "origin", "opens_at", "closes_at", "[[contests]]", "contests[].id", "contests[].title",
              "contests[].max_choices", "contests[].options"}
    assert fields <= documented
    # ... and the parser takes nothing else: a field the table lacks is refused.
    with pytest.raises(ConfigError, match=r"unknown key 'ballot_style'; check the spelling against the election "
                                          r"definition format in docs/ELECTIONS.md"):
        Election.from_dict({**tomllib.loads(_blocks("toml")[0]), "ballot_style": "x"})


def test_the_documented_postal_csv_reads_against_its_definition():
    election = _definition(_blocks("toml")[1])
    (csv_text,) = _blocks("csv")
    rows, problems = postal.read_csv(csv_text, election)
    assert problems == [] and [line for line, _, _ in rows] == [2, 3, 4]
    assert [postal.check_choices(election, cells) for _, _, cells in rows] == [
        {"chair": ["ann"], "executive": ["cat", "dev"]},
        {"chair": ["ben"], "executive": ["cat", "eve"]},
        {"chair": [], "executive": ["dev"]},
    ]


def test_every_documented_outcome_exists():
    documented = set(re.findall(r"^\| `([a-z_]+)` \| ", TEXT[TEXT.index("Every row gets exactly one outcome"):],
                                flags=re.M))
    assert set(postal.OUTCOMES) <= documented
