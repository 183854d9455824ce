"""Schemathesis hooks for tests/test_api_fuzz.py: the API's rules a JSON Schema cannot say.

Loaded by ``st run`` through ``SCHEMATHESIS_HOOKS``; the test passes the facts of the live
election in ``HSM_SIGNER_FUZZ_FACTS`` (JSON: ``signed_size``, ``contests``, ``codes``).

Schema-valid ("positive") requests must be accepted, so positive cases are made to keep
the rules documented in docs/WEB.md and in the OpenAPI descriptions:

* proofs and entries: ``index < size``, ``from <= to``, ``start <= end <= start + 1000``,
  and no size beyond the latest signed checkpoint (the tree only grows during the run, so
  the size signed before it is a safe bound);
* ballots: selections that fit the election's ballot (its contests, at most
  ``max_choices`` options each, no repeats), and sometimes a real voting code, so that
  casting reaches the HSM and returns receipts for the response checks.

Negative (schema-invalid) cases are left alone: every one of them must be refused.
"""

from __future__ import annotations

import json
import os
import zlib

import schemathesis

FACTS = json.loads(os.environ.get("HSM_SIGNER_FUZZ_FACTS", "{}"))
SIGNED = int(FACTS.get("signed_size", 0))
MAX_PAGE = 1000


def _int(query: dict, name: str, default: int) -> int | None:
    value = query.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _keeps_the_rules(path: str, query: dict) -> bool:
    if path.endswith("/proof/inclusion"):
        index, size = _int(query, "index", -1), _int(query, "size", SIGNED)
        return index is not None and size is not None and index < size <= SIGNED
    if path.endswith("/proof/consistency"):
        first, second = _int(query, "from", -1), _int(query, "to", SIGNED)
        return first is not None and second is not None and first <= second <= SIGNED
    if path.endswith(("/entries", "/openings")):
        start = _int(query, "start", 0)
        end = _int(query, "end", (start or 0) + 100)
        return start is not None and end is not None and start <= end <= start + MAX_PAGE
    return True


def _positive(case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def filter_case(context, case) -> bool:
    if not _positive(case) or case.method.upper() != "GET":
        return True
    return _keeps_the_rules(case.operation.path, dict(case.query or {}))


def _fitting(selections: object) -> dict[str, list[str]]:
    """A valid ballot, chosen by a hash of whatever was generated (so it still varies)."""
    seed = zlib.crc32(json.dumps(selections, sort_keys=True, default=str).encode())
    ballot = {}
    for contest in FACTS.get("contests", []):
        options = contest["options"]
        count = seed % (min(contest["max_choices"], len(options)) + 1)  # 0 = a blank vote
        start = (seed // 7) % len(options)
        ballot[contest["id"]] = [options[(start + k) % len(options)] for k in range(count)]
        seed //= 3
    return ballot


@schemathesis.hook
def map_case(context, case):
    if not _positive(case) or not isinstance(case.body, dict) or case.method.upper() != "POST":
        return case
    body = dict(case.body)
    codes = FACTS.get("codes", [])
    if isinstance(body.get("code"), str) and codes:
        pick = zlib.crc32(body["code"].encode()) % (2 * len(codes))
        if pick < len(codes):  # half the time a real code, else the generated (invalid) one
            body["code"] = codes[pick]
    if "selections" in body:
        body["selections"] = _fitting(body["selections"])
    case.body = body
    return case

