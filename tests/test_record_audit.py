"""The election record and its independent audit: a clean record passes, every tampering is named.

One election is run once on SoftHSM for the whole module (ballots, receipts, close, tally,
export). Forged artefacts that only a key holder could make (a forked checkpoint, a tally
with a wrong count, a tally for another tree) are signed there with the real HSM keys, so
the tests show the audit catches a misbehaving *signer*, not only a careless editor.
Each tampering test works on its own copy of the record and, where the manifest would
otherwise fire first, re-seals MANIFEST.json so the deeper check is the one that fires.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_signer.audit import audit_record, receipt_files
from hsm_signer.bundle import CHECKPOINT, TALLY, KeyBundle
from hsm_signer.errors import ConfigError, ElectionError, FormatError, VerificationError
from hsm_signer.lifecycle import close_poll, tally_election
from hsm_signer.log.checkpoint import Checkpoint, sign_checkpoint
from hsm_signer.log.leaf import Leaf
from hsm_signer.log.merkle import leaf_hash
from hsm_signer.tally import OptionCount
from hsm_signer.record import MANIFEST_FILE, export_record
from hsm_signer.recount import count_leaves
from hsm_signer.service import Service
from hsm_signer.testing.service import TEST_ORIGIN_PREFIX
from hsm_signer.signer import SoftwareSigner

from merkle_reference import root_from_leaf_hashes
from servicekit import DEMO_ELECTION, open_election, provision

ELECTION = "test-election"
OTHER = {**DEMO_ELECTION, "id": "other-election", "title": "Another election"}
BALLOTS = [
    ({"leader": ["alice"], "board": ["dan", "erin"]}, "online"),
    ({"leader": ["bob"], "board": ["dan"]}, "online"),
    ({"leader": ["alice"], "board": []}, "postal"),
    ({"leader": ["carol"], "board": ["frank"]}, "online"),
    ({"leader": [], "board": ["erin"]}, "online"),
    ({"leader": ["alice"], "board": ["dan", "frank"]}, "postal"),
    ({"leader": ["bob"], "board": ["erin"]}, "online"),
    ({"leader": ["alice"], "board": ["dan"]}, "online"),
]


@dataclasses.dataclass
class Run:
    kit: object
    record: Path
    receipts: Path
    other_receipt: Path
    bundle: KeyBundle
    forged: dict


@pytest.fixture(scope="module")
def run(tokens, tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("record")
    kit = provision(tokens, base / "state")
    service = Service.open(kit.load(), with_sequencer=True).start()
    try:
        codes = open_election(service, len(BALLOTS))
        receipts = base / "receipts"
        receipts.mkdir()
        for i, (code, (selections, channel)) in enumerate(zip(codes, BALLOTS)):
            receipt = service.ballots.cast(ELECTION, code, selections, channel=channel).receipt
            (receipts / f"receipt-{i}.json").write_text(receipt.to_json(), encoding="utf-8")
        other_code = open_election(service, 1, OTHER)[0]
        other_receipt = base / "other-receipt.json"
        other_receipt.write_text(service.ballots.cast("other-election", other_code, BALLOTS[0][0]).receipt.to_json(),
                                 encoding="utf-8")
        close_poll(service, ELECTION)
        signed = tally_election(service, ELECTION)

        bundle = service.bundle
        checkpoint_signer = service.hsm.signer(bundle.key(CHECKPOINT).label)
        tally_signer = service.tally_signer()
        checkpoint_name, tally_name = bundle.key(CHECKPOINT).note_key_name, bundle.key(TALLY).note_key_name
        election = service.storage.get_election(ELECTION).election
        leaves = service.storage.entries(ELECTION, 0, len(BALLOTS))
        tally = signed.tally

        # alice gets one more online vote: every line stays self-consistent, only the count is wrong
        leader = tally.contests[0]
        alice = leader.options[0]
        padded = dataclasses.replace(leader, options=(OptionCount("alice", alice.online + 1, alice.postal),
                                                      *leader.options[1:]))
        wrong_count = dataclasses.replace(tally, contests=(padded, *tally.contests[1:]))
        earlier = count_leaves(election, leaves[:5])
        forked_root = root_from_leaf_hashes([leaf_hash(x) for x in [leaves[0], leaves[2], leaves[1]]])
        forged = {
            "wrong_count": sign_checkpoint(_unchecked_checkpoint(wrong_count), tally_name, tally_signer),
            "earlier_tree": sign_checkpoint(earlier.checkpoint(), tally_name, tally_signer),
            "by_checkpoint_key": sign_checkpoint(tally.checkpoint(), checkpoint_name, checkpoint_signer),
            "by_software_key": sign_checkpoint(tally.checkpoint(), tally_name, SoftwareSigner.generate()),
            "forked_checkpoint": sign_checkpoint(Checkpoint(election.log_origin, 3, forked_root), checkpoint_name,
                                                 checkpoint_signer),
        }
        # A server holding both keys rewrites ballot 2 and re-signs every checkpoint and the tally.
        rewritten = list(leaves)
        rewritten[2] = Leaf.new(ELECTION, "postal", {"leader": ["bob"], "board": []}).to_bytes()
        hashes = [leaf_hash(x) for x in rewritten]
        forged["resigned"] = {
            "entries": rewritten,
            "checkpoints": {n: sign_checkpoint(Checkpoint(election.log_origin, n, root_from_leaf_hashes(hashes[:n])),
                                               checkpoint_name, checkpoint_signer) for n in range(1, len(rewritten) + 1)},
            "tally": sign_checkpoint(count_leaves(election, rewritten).checkpoint(), tally_name, tally_signer),
        }
        # The same log as an election defined before origins were configured would have it signed.
        legacy = dataclasses.replace(election, origin=None)
        original = [leaf_hash(x) for x in leaves]
        forged["legacy"] = {
            "election": legacy.to_json(),
            "checkpoints": {n: sign_checkpoint(Checkpoint(legacy.log_origin, n, root_from_leaf_hashes(original[:n])),
                                               checkpoint_name, checkpoint_signer) for n in range(1, len(leaves) + 1)},
            "tally": sign_checkpoint(count_leaves(legacy, leaves).checkpoint(), tally_name, tally_signer),
        }
        record = base / "record"
        export_record(service.storage, kit.load().key_bundle, ELECTION, record)
    finally:
        service.close()
    return Run(kit=kit, record=record, receipts=receipts, other_receipt=other_receipt, bundle=KeyBundle.load(record / "keys"),
               forged=forged)


def _unchecked_checkpoint(tally) -> Checkpoint:
    """The checkpoint of a deliberately wrong tally (the dataclass does not check the arithmetic)."""
    return Checkpoint(tally.origin, tally.size, tally.root_hash, tally.extension_lines())


@pytest.fixture
def copy(run, tmp_path) -> Path:
    target = tmp_path / "record"
    shutil.copytree(run.record, target)
    return target


def reseal(record: Path) -> None:
    """Recompute MANIFEST.json, as an attacker would, so the audit's deeper checks must catch the change."""
    manifest = json.loads((record / MANIFEST_FILE).read_text())
    files = sorted(p.relative_to(record).as_posix() for p in record.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    manifest["files"] = [{"path": f, "sha256": hashlib.sha256((record / f).read_bytes()).hexdigest(),
                          "size": (record / f).stat().st_size} for f in files]
    (record / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def entries(record: Path) -> list[bytes]:
    return (record / "entries.jsonl").read_bytes().splitlines()


def write_entries(record: Path, leaves: list[bytes]) -> None:
    (record / "entries.jsonl").write_bytes(b"".join(x + b"\n" for x in leaves))
    reseal(record)


# --- the record as exported ------------------------------------------------------------------

def test_the_record_holds_the_documented_files_and_a_manifest_of_their_hashes(run):
    record = run.record
    names = sorted(p.relative_to(record).as_posix() for p in record.rglob("*") if p.is_file())
    checkpoints = [n for n in names if n.startswith("checkpoints/")]
    assert set(names) - set(checkpoints) == {"MANIFEST.json", "README.md", "election.json", "entries.jsonl",
                                             "keys/keys.json", "tally.txt"}
    assert "checkpoints/8.note" in checkpoints and len(checkpoints) >= 2
    assert (record / "keys/keys.json").read_bytes() == (run.kit.directory / "keys/keys.json").read_bytes()
    leaves = entries(record)
    assert len(leaves) == len(BALLOTS)
    assert [Leaf.from_bytes(x).type for x in leaves] == ["ballot" if c == "online" else "postal" for _, c in BALLOTS]
    manifest = json.loads((record / "MANIFEST.json").read_text())
    assert manifest["version"] == "hsm-signer/record/v1" and manifest["tree_size"] == len(BALLOTS)
    for item in manifest["files"]:
        assert hashlib.sha256((record / item["path"]).read_bytes()).hexdigest() == item["sha256"]
    assert "MANIFEST.json" not in {item["path"] for item in manifest["files"]}
    readme = (record / "README.md").read_text()
    assert "hsm-signer audit" in readme and "entries.jsonl" in readme
    for leaf in leaves:  # nothing secret: the leaves carry no code
        assert set(json.loads(leaf)) == {"version", "election", "type", "ballot_id", "selections"}


def test_a_clean_record_passes_the_audit_with_every_receipt(run):
    lines = []
    result = audit_record(run.record, receipts=receipt_files(run.receipts), report=lines.append)
    assert result.tree_size == len(BALLOTS) and result.receipts == len(BALLOTS)
    assert "tally leader alice 4" in result.tally.extension_lines()
    report = "\n".join(lines)
    for expected in ("OK   manifest:", "OK   checkpoints:", "OK   entries: 8 leaves parse",
                     "OK   the entries hash to the root signed in the final checkpoint",
                     "OK   consistency: every checkpoint is a prefix of the final tree",
                     "OK   tally: signed by test/tally", "OK   recount: all 23 tally lines equal the recount",
                     "OK   receipts: 8 verified"):
        assert expected in report


def test_the_audit_command_reports_pass_and_the_result(run, capsys):
    from hsm_signer.cli import main

    assert main(["audit", str(run.record), "--receipts", str(run.receipts), "--keys", str(run.kit.directory / "keys")]) == 0
    out = capsys.readouterr()
    assert "PASS: election test-election: 8 entries" in out.out
    assert "trusted from the trusted key bundle given by the auditor" in out.out
    assert "ballots: 8 (online 6, postal 2)" in out.out
    assert "reading entries: 8/8 (100%)" in out.err


def test_export_refuses_an_existing_directory_an_untallied_and_an_open_election(run, tokens, tmp_path):
    from hsm_signer.storage import open_storage

    cfg = run.kit.load()
    storage = open_storage(cfg.storage_url)
    try:
        (tmp_path / "exists").mkdir()
        with pytest.raises(ConfigError, match="already exists; a record is only ever written into a new directory"):
            export_record(storage, cfg.key_bundle, ELECTION, tmp_path / "exists")
        with pytest.raises(ElectionError, match="election 'other-election' is open: close the poll and sign the tally"):
            export_record(storage, cfg.key_bundle, "other-election", tmp_path / "other")
        assert not (tmp_path / "other").exists()
    finally:
        storage.close()


# --- tampering, each named ----------------------------------------------------------------------

def test_a_changed_file_fails_the_manifest_check(copy):
    (copy / "election.json").write_text((copy / "election.json").read_text().replace("Alice", "Alicia"))
    with pytest.raises(VerificationError, match=r"election.json does not match MANIFEST.json: SHA-256 [0-9a-f]{64}"):
        audit_record(copy)


def test_an_unlisted_or_missing_file_fails_the_manifest_check(copy):
    (copy / "checkpoints" / "99.note").write_text("x\n")
    with pytest.raises(VerificationError, match="checkpoints/99.note is in the record but not listed in MANIFEST.json"):
        audit_record(copy)
    (copy / "checkpoints" / "99.note").unlink()
    (copy / "tally.txt").unlink()
    with pytest.raises(VerificationError, match="tally.txt is listed in MANIFEST.json but missing from the record"):
        audit_record(copy)


def test_an_incomplete_record_without_a_manifest_is_refused(copy):
    (copy / "MANIFEST.json").unlink()
    with pytest.raises(VerificationError, match="the record has no MANIFEST.json: it is incomplete"):
        audit_record(copy)


def test_an_entry_changed_is_detected_and_located_by_the_signed_checkpoints(copy):
    leaves = entries(copy)
    leaves[5] = leaves[5].replace(b'"leader":["alice"]', b'"leader":["bob"]')
    write_entries(copy, leaves)
    with pytest.raises(VerificationError, match=r"the 8 entries of entries.jsonl hash to root \S+, but checkpoints/8.note "
                       r"signs root \S+: an entry was changed or the entries were reordered; the first 5 entries agree "
                       r"with checkpoints/5.note, but not with checkpoints/6.note: the damage is among entries 5 to 5"):
        audit_record(copy)


def test_an_entry_changed_into_another_elections_ballot_is_named_by_line(copy):
    leaves = entries(copy)
    leaves[2] = leaves[2].replace(b'"election":"test-election"', b'"election":"other-election"')
    write_entries(copy, leaves)
    with pytest.raises(VerificationError, match="entries.jsonl line 3: entry 2 belongs to election 'other-election', "
                                                "not 'test-election'"):
        audit_record(copy)


def test_an_entry_removed_is_detected(copy):
    leaves = entries(copy)
    del leaves[3]
    write_entries(copy, leaves)
    with pytest.raises(VerificationError, match="entries.jsonl has 7 entries, but the final checkpoint checkpoints/8.note "
                                                "covers 8: entries are missing; the first 3 entries agree with "
                                                "checkpoints/3.note, but not with checkpoints/4.note"):
        audit_record(copy)


def test_entries_reordered_are_detected(copy):
    leaves = entries(copy)
    leaves[1], leaves[6] = leaves[6], leaves[1]
    write_entries(copy, leaves)
    with pytest.raises(VerificationError, match="an entry was changed or the entries were reordered; the first 1 entries "
                                                "agree with checkpoints/1.note, but not with checkpoints/2.note"):
        audit_record(copy)


def test_an_entry_added_is_detected(copy):
    extra = Leaf.new(ELECTION, "ballot", {"leader": ["carol"], "board": []}).to_bytes()
    write_entries(copy, entries(copy) + [extra])
    with pytest.raises(VerificationError, match="entries.jsonl has 9 entries, but the final checkpoint checkpoints/8.note "
                                                "covers 8: entries were added"):
        audit_record(copy)


def test_an_entry_copied_twice_is_detected_as_a_repeated_ballot(copy):
    leaves = entries(copy)
    write_entries(copy, leaves[:4] + [leaves[0]] + leaves[4:])
    with pytest.raises(VerificationError, match="entries.jsonl line 5: entry 4 repeats ballot id [0-9a-f]{32} of an "
                                                "earlier entry"):
        audit_record(copy)


def test_a_truncated_entries_file_is_detected(copy):
    data = (copy / "entries.jsonl").read_bytes()
    (copy / "entries.jsonl").write_bytes(data[:-1])
    reseal(copy)
    with pytest.raises(VerificationError, match="entries.jsonl line 8 .entry 7. does not end with a newline"):
        audit_record(copy)


def test_a_checkpoint_altered_fails_its_signature(copy):
    path = copy / "checkpoints" / "4.note"
    root_of_5 = (copy / "checkpoints" / "5.note").read_text().split("\n")[2]
    lines = path.read_text().split("\n")
    lines[2] = root_of_5
    path.write_text("\n".join(lines))
    reseal(copy)
    with pytest.raises(VerificationError, match=r"checkpoints/4.note: signature by test/checkpoint \(key ID [0-9a-f]{8}\) "
                                                "does not verify over the note text"):
        audit_record(copy)


def test_a_checkpoint_renamed_to_another_size_is_detected(copy):
    (copy / "checkpoints" / "4.note").rename(copy / "checkpoints" / "40.note")
    reseal(copy)
    with pytest.raises(VerificationError, match="checkpoints/40.note covers 4 entries, not the 40 its name says"):
        audit_record(copy)


def test_a_validly_signed_forked_checkpoint_is_caught_by_the_consistency_proofs(run, copy):
    (copy / "checkpoints" / "3.note").write_text(run.forged["forked_checkpoint"])
    reseal(copy)
    with pytest.raises(VerificationError, match=r"checkpoints/3.note \(size 3\) is not consistent with the final checkpoint "
                                                "checkpoints/8.note: the log signed two different histories"):
        audit_record(copy)


def test_a_tally_count_edited_in_the_file_fails_the_tally_signature(copy):
    path = copy / "tally.txt"
    path.write_text(path.read_text().replace("tally leader alice 4\n", "tally leader alice 5\n"))
    reseal(copy)
    with pytest.raises(VerificationError, match=r"tally.txt: the tally is not signed by the tally key test/tally \(key ID "
                                                r"[0-9a-f]{8}\): signature by test/tally .* does not verify"):
        audit_record(copy)


def test_a_wrong_count_signed_by_the_real_tally_key_fails_the_recount(run, copy):
    (copy / "tally.txt").write_text(run.forged["wrong_count"])
    reseal(copy)
    with pytest.raises(VerificationError, match="tally.txt line 5 signs 'tally leader alice 5', but the recount of "
                                                "entries.jsonl gives 'tally leader alice 4'"):
        audit_record(copy)


@pytest.mark.parametrize("forgery, message", [
    ("by_checkpoint_key", r"tally.txt: the tally is not signed by the tally key test/tally .*: note has no signature by a "
                          r"trusted key \(trusted: test/tally \([0-9a-f]{8}\); signed by: test/checkpoint \([0-9a-f]{8}\)\)"),
    ("by_software_key", r"tally.txt: the tally is not signed by the tally key test/tally .*: note has no signature by a "
                        r"trusted key \(trusted: test/tally \([0-9a-f]{8}\); signed by: test/tally \([0-9a-f]{8}\)\)"),
])
def test_a_tally_signed_by_the_wrong_key_is_refused(run, copy, forgery, message):
    (copy / "tally.txt").write_text(run.forged[forgery])
    reseal(copy)
    with pytest.raises(VerificationError, match=message):
        audit_record(copy)


def test_a_tally_of_another_tree_is_not_bound_to_the_final_checkpoint(run, copy):
    (copy / "tally.txt").write_text(run.forged["earlier_tree"])
    reseal(copy)
    with pytest.raises(VerificationError, match=r"tally.txt is bound to a tree of 5 entries with root \S+, not the final "
                                                r"tree \(8 entries, root \S+\): the tally was not counted from this log"):
        audit_record(copy)


def test_an_election_definition_changed_after_the_tally_is_detected(copy):
    (copy / "election.json").write_text((copy / "election.json").read_text().replace('"Alice"', '"Alicia"'))
    reseal(copy)
    with pytest.raises(VerificationError, match=r"tally.txt was signed for election definition sha256:[0-9a-f]{64}, but "
                                                r"election.json hashes to sha256:[0-9a-f]{64}: the definition was changed"):
        audit_record(copy)


def test_the_record_names_its_log_and_a_record_claiming_another_deployments_log_is_refused(copy):
    """election.json carries the log's origin; checkpoints of the same election id under another name do not pass."""
    definition = json.loads((copy / "election.json").read_text())
    assert definition["origin"] == f"{TEST_ORIGIN_PREFIX}/{ELECTION}"
    (copy / "election.json").write_text(json.dumps({**definition, "origin": f"other.example/{ELECTION}"}))
    reseal(copy)
    with pytest.raises(VerificationError, match=f"checkpoints/1.note is for log '{TEST_ORIGIN_PREFIX}/{ELECTION}', "
                                                f"not this election's 'other.example/{ELECTION}'"):
        audit_record(copy)


def test_a_record_of_an_election_defined_before_origins_were_configured_still_audits(run, copy):
    """Old records have no origin in election.json and checkpoints of hsm-signer/<election>: they still verify."""
    legacy = run.forged["legacy"]
    (copy / "election.json").write_text(legacy["election"])
    for note in (copy / "checkpoints").iterdir():
        note.write_text(legacy["checkpoints"][int(note.name.removesuffix(".note"))])
    (copy / "tally.txt").write_text(legacy["tally"])
    reseal(copy)
    assert "origin" not in json.loads((copy / "election.json").read_text())
    assert (copy / "tally.txt").read_text().startswith(f"hsm-signer/{ELECTION}\n")
    audit_record(copy)


def test_a_receipt_from_another_election_is_refused(run, copy, tmp_path):
    with pytest.raises(VerificationError, match="receipt other-receipt.json is for election 'other-election', not "
                                                "'test-election' .this record.: it is a receipt from another election"):
        audit_record(copy, receipts=[run.other_receipt])


def test_a_tampered_receipt_does_not_verify(run, copy, tmp_path):
    receipt = json.loads((run.receipts / "receipt-2.json").read_text())
    leaf = base64.b64decode(receipt["leaf"]).replace(b'"leader":["alice"]', b'"leader":["bob"]')
    receipt["leaf"] = base64.b64encode(leaf).decode()
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(receipt))
    with pytest.raises(VerificationError, match="receipt bad.json does not verify: receipt inclusion proof does not match"):
        audit_record(copy, receipts=[path])


def test_a_log_rewritten_and_resigned_with_the_real_keys_is_caught_by_a_voters_receipt(run, copy):
    """What the audit alone cannot see (the key holders rewrote history), a receipt can."""
    resigned = run.forged["resigned"]
    for old in (copy / "checkpoints").iterdir():
        old.unlink()
    for size, note in resigned["checkpoints"].items():
        (copy / "checkpoints" / f"{size}.note").write_text(note)
    (copy / "tally.txt").write_text(resigned["tally"])
    write_entries(copy, resigned["entries"])
    audit_record(copy)  # internally consistent: signatures, proofs and recount all agree
    with pytest.raises(VerificationError, match="receipt receipt-2.json: ballot [0-9a-f]{32} is not entry 2 of "
                                                "entries.jsonl: a ballot with a signed receipt was changed, moved or dropped"):
        audit_record(copy, receipts=receipt_files(run.receipts))


def test_the_trusted_bundle_must_equal_the_records_copy(copy, tmp_path):
    other = KeyBundle.load(copy / "keys")
    stranger = SoftwareSigner.generate()
    from hsm_signer.bundle import KeyEntry
    replaced = tuple(KeyEntry.for_signing_key("tally", k.label, k.id, stranger.public_key_der, k.note_key_name)
                     if k.purpose == "tally" else k for k in other.keys)
    trusted = dataclasses.replace(other, keys=replaced)
    with pytest.raises(VerificationError, match=r"the record's keys/keys.json is not the trusted key bundle \(tally key "
                                                r"[0-9a-f]{64} vs trusted [0-9a-f]{64}\)"):
        audit_record(copy, trusted_bundle=trusted)


def test_the_audit_command_exits_1_naming_the_first_failure(copy, capsys):
    from hsm_signer.cli import main

    leaves = entries(copy)
    leaves[0], leaves[1] = leaves[1], leaves[0]
    write_entries(copy, leaves)
    assert main(["audit", str(copy)]) == 1
    out = capsys.readouterr()
    assert "OK   manifest:" in out.out and "PASS" not in out.out
    assert out.err.strip().splitlines()[-1].startswith(
        "hsm-signer: FAILED: the 8 entries of entries.jsonl hash to root")
    assert "the entries already disagree with the first checkpoint, checkpoints/1.note" in out.err


# --- the offline promise and scale -------------------------------------------------------------

def test_the_audit_imports_neither_flask_nor_pkcs11():
    code = ("import sys, hsm_signer.audit, hsm_signer.tally, hsm_signer.recount, hsm_signer.record; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0].lower() in {'flask', 'pkcs11', 'pykcs11', 'werkzeug'}); "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr


def test_the_scale_benchmark_runs_on_a_small_record(tmp_path):
    bench = Path(__file__).resolve().parent.parent / "bench" / "audit_scale.py"
    result = subprocess.run([sys.executable, str(bench), "--entries", "2000", "--dir", str(tmp_path / "bench")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "audited 2,000 entries" in result.stdout and "entries/s" in result.stdout


def test_a_leaf_with_a_newline_can_never_be_in_a_record():
    with pytest.raises(FormatError):
        Leaf.from_bytes(b'{"ballot_id":"' + b"0" * 32 + b'","election":"x\n"}')


def test_the_record_archive_for_download_unzips_to_a_record_that_passes_the_audit(run, tmp_path):
    import io
    import zipfile

    from hsm_signer.record import archive_record

    class WriteOnly(io.RawIOBase):  # a response body: no seek, no tell
        def __init__(self):
            self.chunks = []

        def writable(self):
            return True

        def write(self, data):
            self.chunks.append(bytes(data))
            return len(data)

    first, second = WriteOnly(), WriteOnly()
    assert archive_record(run.record, first, folder="test-election-record") == 14
    archive_record(run.record, second, folder="test-election-record")
    streamed = b"".join(first.chunks)
    assert streamed == b"".join(second.chunks)  # the same record always gives the same download
    with zipfile.ZipFile(io.BytesIO(streamed)) as archive:
        assert "test-election-record/entries.jsonl" in archive.namelist()
        archive.extractall(tmp_path / "unzipped")
    result = audit_record(tmp_path / "unzipped" / "test-election-record", receipts=receipt_files(run.receipts))
    assert result.tree_size == len(BALLOTS)


def test_an_election_without_ballots_closes_tallies_exports_and_audits(tokens, tmp_path):
    kit = provision(tokens, tmp_path / "state")
    service = Service.open(kit.load()).start()
    try:
        open_election(service, 2)
        assert close_poll(service, ELECTION)[0] == 0
        signed = tally_election(service, ELECTION)
        assert "ballots online 0" in signed.tally.extension_lines()
        export_record(service.storage, kit.load().key_bundle, ELECTION, tmp_path / "record")
    finally:
        service.close()
    assert (tmp_path / "record" / "entries.jsonl").read_bytes() == b""
    result = audit_record(tmp_path / "record")
    assert (result.tree_size, result.checkpoints) == (0, 1)


def test_checkpoints_checked_in_worker_processes_give_the_same_result_and_first_failure(run, copy):
    in_workers = {"workers": 2, "parallel_from": 2, "checkpoint_batch": 3}  # 8 checkpoints: 3 batches, 2 processes
    assert audit_record(run.record, **in_workers).checkpoints == 8
    for size in (3, 7):
        path = copy / "checkpoints" / f"{size}.note"
        path.write_text(path.read_text().replace(f"\n{size}\n", f"\n{size + 100}\n"))
    reseal(copy)
    with pytest.raises(VerificationError, match=r"^checkpoints/3.note: signature by test/checkpoint"):
        audit_record(copy, **in_workers)
