"""Postal batches: the official's ``postal record --csv`` against the plain intake of the same number of ballots.

Not timed: a SoftHSM token with the checkpoint, tally and code keys, the election's
sealing key on a token of its own (as the ceremony makes it), the election with twice
``rows`` codes, opened, and the batch CSV. Then, side by side in one run:

* **postal record** — ``hsm-signer postal record ID --csv FILE --report FILE`` as an
  official runs it (its own process, SQLite WAL + synchronous=FULL, its own sequencer, as
  no server runs): the whole file checked first, each code hashed in the HSM, each ballot
  sealed to the sealing key and stored, the batch signed, every row's outcome in the report;
* **plain intake** — the same number of ballots (the other codes, the same votes), hashed
  and sealed beforehand, handed ready-made to the product's own intake in parts of 1,000:
  the durable writes alone, which any way of recording them must pay;
* **sealing alone** — HPKE-sealing the same number of ballots in one thread (the part of
  recording no batching removes: a fresh ephemeral key and a Diffie-Hellman step each).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from pathlib import Path

from .common import ELECTION_DEFINITION, VOTES, Context, fmt

NAME = "postal"
TITLE = "Postal batches: `postal record` against the plain intake of the same ballots"

PART = 1000
"""Ballots per intake call, as ``postal record`` stores them."""


def missing_prerequisite() -> str | None:
    from hsm_signer.commands import MODULES
    return None if "postal" in MODULES else "the `hsm-signer postal` command does not exist yet"


def _cli(kit, *args: str, timeout: float) -> str:
    from .servers import ROOT, python_module
    out = subprocess.run(python_module("hsm_signer", "--config", str(kit.config_path), *args), cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"`hsm-signer {' '.join(args[:2])}` failed ({out.returncode}): {out.stderr.strip()[-800:]}")
    return out.stdout


def _write_batch(path: Path, codes: list[str]) -> None:
    contests = [c["id"] for c in ELECTION_DEFINITION["contests"]]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", *contests])
        for i, code in enumerate(codes):
            writer.writerow([code, *(" ".join(VOTES[i % len(VOTES)][c]) for c in contests)])


def _ready_made(kit, point: bytes, codes: list[str]) -> tuple[list, float]:
    """The intake's requests for ``codes`` (hashed in the HSM, sealed: not timed) and the
    seconds the sealing alone took."""
    from hsm_signer.ballots import HashedCode
    from hsm_signer.election import OPEN
    from hsm_signer.log import sealed
    from hsm_signer.log.leaf import POSTAL, SealedLeaf, new_ballot_id
    from hsm_signer.service import Service
    from hsm_signer.storage.base import CastRequest

    eid = ELECTION_DEFINITION["id"]
    service = Service.open(kit.load())
    try:
        hashed = service.ballots.hash_codes(eid, codes)
        election = service.storage.get_election(eid).election
    finally:
        service.close()
    size = sealed.padded_size(election)
    votes = [election.validate_selections(VOTES[i % len(VOTES)]) for i in range(len(codes))]
    ballot_ids = [new_ballot_id() for _ in codes]
    started = time.perf_counter()
    boxes = [sealed.seal_ballot(point, eid, "postal", ballot_id, vote, size) for ballot_id, vote in zip(ballot_ids, votes)]
    sealing = time.perf_counter() - started
    until = int(time.time()) + 3600
    requests = [CastRequest(eid, code.digest, "postal", ballot_id, SealedLeaf(eid, POSTAL, ballot_id, box).to_bytes(),
                            os.urandom(60), require_state=OPEN, link_until=until)
                for code, ballot_id, box in zip(hashed, ballot_ids, boxes) if isinstance(code, HashedCode)]
    if len(requests) != len(codes):
        raise RuntimeError("a benchmark code did not hash")
    return requests, sealing


def _plain_intake(kit, requests: list) -> float:
    """Seconds the product's intake takes to store ``requests`` durably, ``PART`` per call."""
    from hsm_signer.intake import CastIntake
    from hsm_signer.storage import open_storage

    storage = open_storage(kit.load().storage_url)
    intake = CastIntake(storage)
    try:
        started = time.perf_counter()
        for start in range(0, len(requests), PART):
            outcomes = intake.cast_many(requests[start:start + PART])
            if not all(getattr(o, "stored", False) for o in outcomes):
                raise RuntimeError(f"the plain intake did not store every ballot: {outcomes[:3]}")
        return time.perf_counter() - started
    finally:
        intake.close()
        storage.close()


def run(ctx: Context) -> dict:
    from . import hsmkit
    from .full_election import _definition_toml

    rows = ctx.size(48_000, 300)
    eid = ELECTION_DEFINITION["id"]
    conf = hsmkit.token_directory(ctx.workdir)
    kit = hsmkit.service_kit(ctx.workdir / "service", label="bench-postal", token_conf=conf)
    point = hsmkit.add_sealing_key(kit, conf, label="bench-postal-sealing")
    definition = ctx.workdir / "election.toml"
    definition.write_text(_definition_toml(ELECTION_DEFINITION), encoding="utf-8")
    _cli(kit, "election", "create", str(definition), timeout=60)
    codes_csv = ctx.workdir / "codes.csv"
    _cli(kit, "codes", "issue", eid, "--count", str(2 * rows), "--out", str(codes_csv), timeout=600)
    _cli(kit, "election", "open", eid, timeout=60)
    with open(codes_csv, newline="", encoding="utf-8") as handle:
        codes = [row["code"] for row in csv.DictReader(handle)]
    batch, report = ctx.workdir / "postal.csv", ctx.workdir / "postal-report.json"
    _write_batch(batch, codes[:rows])
    ctx.log(f"postal: {2 * rows:,} codes issued, a batch of {rows:,} rows written")

    started = time.perf_counter()
    _cli(kit, "postal", "record", eid, "--csv", str(batch), "--report", str(report), timeout=ctx.size(900, 120))
    postal_seconds = time.perf_counter() - started
    counts = json.loads(report.read_text(encoding="utf-8"))["counts"]
    if counts["recorded"] != rows:
        raise RuntimeError(f"postal record did not record every row: {counts}")
    ctx.log(f"postal: `postal record` of {rows:,} rows in {postal_seconds:.1f} s ({rows / postal_seconds:,.0f}/s)")

    requests, sealing_seconds = _ready_made(kit, point, codes[rows:])
    intake_seconds = _plain_intake(kit, requests)
    ctx.log(f"postal: plain intake of {rows:,} ready-made ballots in {intake_seconds:.1f} s; "
            f"sealing them alone took {sealing_seconds:.1f} s")

    postal_rate, intake_rate, sealing_rate = rows / postal_seconds, rows / intake_seconds, rows / sealing_seconds
    ratios = {"postal_over_plain_intake": round(postal_rate / intake_rate, 4),
              "postal_over_sealing_alone": round(postal_rate / sealing_rate, 4)}
    summary = (f"`postal record` of {rows:,} rows with sealing in {postal_seconds:.1f} s ({postal_rate:,.0f} rows/s), "
               f"{ratios['postal_over_plain_intake']:.2f}× the plain intake of the same ballots ready-made "
               f"({intake_rate:,.0f}/s) and {ratios['postal_over_sealing_alone']:.2f}× sealing them alone "
               f"({sealing_rate:,.0f}/s)")
    return {"summary": summary, "ratios": ratios, "rows": rows,
            "phase_seconds": {"postal_record": round(postal_seconds, 2), "plain_intake": round(intake_seconds, 2),
                        "sealing_alone": round(sealing_seconds, 2)},
            "per_s": {"postal_record": round(postal_rate), "plain_intake": round(intake_rate),
                      "sealing_alone": round(sealing_rate)},
            "report_counts": counts, "command": f"hsm-signer postal record {eid} --csv postal.csv --report report.json"}


def render(result: dict, charts) -> str:
    s, r = result["phase_seconds"], result["per_s"]
    lines = [result["summary"] + ".", "",
             f"{result['rows']:,} ballots each way, measured in one run:", "",
             "| what | seconds | ballots/s | postal record / this |", "|---|---:|---:|---:|",
             f"| `{result['command']}` (whole command: check, hash, seal, store, sign, report) | "
             f"{fmt(s['postal_record'])} | {fmt(r['postal_record'])} | 1 |",
             f"| plain intake of the same ballots ready-made (durable writes alone) | {fmt(s['plain_intake'])} | "
             f"{fmt(r['plain_intake'])} | {fmt(result['ratios']['postal_over_plain_intake'])} |",
             f"| sealing them alone, one thread | {fmt(s['sealing_alone'])} | {fmt(r['sealing_alone'])} | "
             f"{fmt(result['ratios']['postal_over_sealing_alone'])} |", ""]
    return "\n".join(lines)
