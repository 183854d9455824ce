"""Benchmark: audit a synthetic election record of N entries (default 1,000,000) and report entries/s.

The record is built without a database or an HSM, in the exact published layout: random
valid ballots (online and postal) for a two-contest election, a checkpoint every
``--checkpoint-every`` entries (as the sequencer's batches would make) signed by an
in-memory P-256 key, the signed tally, the manifest. Software keys are fine here: the
audit does the same work whatever signed the notes. Only the audit is timed.

    python bench/audit_scale.py                       # 1,000,000 entries in a temporary directory
    python bench/audit_scale.py --entries 2000 --dir /tmp/rec --keep

Not part of the test suite (tests/test_record_audit.py runs it once with 2,000 entries).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hsm_signer.audit import audit_record  # noqa: E402
from hsm_signer.bundle import KeyBundle, KeyEntry  # noqa: E402
from hsm_signer.election import Election  # noqa: E402
from hsm_signer.log.checkpoint import Checkpoint, sign_checkpoint  # noqa: E402
from hsm_signer.log.leaf import Leaf  # noqa: E402
from hsm_signer.record import RECORD_VERSION, record_readme  # noqa: E402
from hsm_signer.signer import SoftwareSigner  # noqa: E402
from hsm_signer.log.merkle import leaf_hash  # noqa: E402
from hsm_signer.log.tree import CompactRange  # noqa: E402
from hsm_signer.recount import Recount  # noqa: E402

DEFINITION = {
    "id": "bench-election",
    "title": "Benchmark election",
    "contests": [
        {"id": "leader", "title": "Leader", "options": [
            {"id": f"candidate-{c}", "title": f"Candidate {c.upper()}"} for c in "abcde"]},
        {"id": "board", "title": "Board", "max_choices": 3, "options": [
            {"id": f"member-{i}", "title": f"Member {i}"} for i in range(1, 9)]},
    ],
}


def build_record(directory: Path, entries: int, checkpoint_every: int, seed: int) -> None:
    rng = random.Random(seed)
    election = Election.from_dict(DEFINITION)
    checkpoint_signer, tally_signer = SoftwareSigner.generate(), SoftwareSigner.generate()
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    bundle = KeyBundle(ceremony_id="bench", created=created, keys=(
        KeyEntry.for_signing_key("checkpoint", "bench-checkpoint", "01", checkpoint_signer.public_key_der, "bench/checkpoint"),
        KeyEntry.for_signing_key("tally", "bench-tally", "02", tally_signer.public_key_der, "bench/tally"),
    ))
    directory.mkdir(parents=True)
    bundle.write(directory / "keys")
    (directory / "election.json").write_text(election.to_json(), encoding="utf-8")
    (directory / "checkpoints").mkdir()
    leaders = election.contests[0].option_ids + ((),)
    board = election.contests[1].option_ids
    recount, root = Recount(election), CompactRange()
    origin = election.log_origin
    checkpoints = 0
    # Canonical leaf bytes differ only in the ballot id: encode each distinct ballot once
    # with the real encoder and substitute fresh random ids (building is not what is timed).
    templates: dict[tuple, tuple[bytes, bytes]] = {}
    placeholder = "0" * 32
    with open(directory / "entries.jsonl", "wb") as out:
        for i in range(entries):
            leader = rng.choice(leaders)
            kind = "postal" if rng.random() < 0.3 else "ballot"
            chosen = tuple(sorted(rng.sample(board, rng.randint(0, 3))))
            key = (kind, leader, chosen)
            if key not in templates:
                selections = {"leader": [leader] if leader else [], "board": list(chosen)}
                encoded = Leaf(election.id, kind, placeholder, selections).to_bytes()
                head, tail = encoded.split(placeholder.encode())
                templates[key] = (head, tail)
            head, tail = templates[key]
            leaf = head + b"%032x" % rng.getrandbits(128) + tail
            out.write(leaf + b"\n")
            recount.add(leaf)
            root.extend(leaf_hash(leaf))
            if (i + 1) % checkpoint_every == 0 or i + 1 == entries:
                note = sign_checkpoint(Checkpoint(origin, i + 1, root.root()), "bench/checkpoint", checkpoint_signer)
                (directory / "checkpoints" / f"{i + 1}.note").write_text(note, encoding="utf-8")
                checkpoints += 1
    if entries == 0:
        note = sign_checkpoint(Checkpoint(origin, 0, root.root()), "bench/checkpoint", checkpoint_signer)
        (directory / "checkpoints" / "0.note").write_text(note, encoding="utf-8")
        checkpoints = 1
    tally = recount.tally(root.root())
    (directory / "tally.txt").write_text(sign_checkpoint(tally.checkpoint(), "bench/tally", tally_signer), encoding="utf-8")
    (directory / "README.md").write_text(record_readme(election.id, election.title, entries, checkpoints), encoding="utf-8")
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    manifest = {"version": RECORD_VERSION, "election": election.id, "tree_size": entries, "files": [
        {"path": f, "sha256": hashlib.sha256((directory / f).read_bytes()).hexdigest(), "size": (directory / f).stat().st_size}
        for f in files]}
    (directory / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="number of log entries (default 1,000,000)")
    parser.add_argument("--checkpoint-every", type=int, default=1000,
                        help="entries per signed checkpoint (the sequencer's batch size; default 1000)")
    parser.add_argument("--dir", type=Path, help="where to build the record (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the record afterwards")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.entries < 0 or args.checkpoint_every < 1:
        parser.error("--entries must be >= 0 and --checkpoint-every >= 1")

    base = args.dir or Path(tempfile.mkdtemp(prefix="hsm-signer-bench-")) / "record"
    try:
        started = time.perf_counter()
        build_record(base, args.entries, args.checkpoint_every, args.seed)
        built = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) / 1e6
        print(f"built a record of {args.entries:,} entries ({size_mb:,.0f} MB) in {built:.1f} s")

        def progress(stage: str, done: int, total: int) -> None:
            print(f"  {stage}: {done:,}/{total:,}", file=sys.stderr, flush=True)

        started = time.perf_counter()
        result = audit_record(base, progress=progress)
        elapsed = time.perf_counter() - started
        rate = result.tree_size / elapsed if elapsed else float("inf")
        print(f"audited {result.tree_size:,} entries and {result.checkpoints:,} checkpoints in {elapsed:.2f} s: "
              f"{rate:,.0f} entries/s")
    finally:
        if not args.keep:
            shutil.rmtree(base if args.dir else base.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
