"""The officials' commands end to end on a SoftHSM token: create, codes, open, postal, close, verify."""

from __future__ import annotations

import csv
import json
import stat




DEFINITION = """
id = "club-2026"
title = "Club vote"
[[contests]]
id = "chair"
title = "Chair"
options = [{ id = "ann", title = "Ann" }, { id = "ben", title = "Ben" }]
"""


def test_an_election_run_by_officials_from_the_command_line(officials, tmp_path):
    definition = tmp_path / "club.toml"
    definition.write_text(DEFINITION)
    members = tmp_path / "members.csv"
    members.write_text("member_number,name\nM-001,A\nM-002,B\nM-003,C\nM-004,D\n")

    out, _ = officials("election", "create", str(definition))
    assert "created election 'club-2026'" in out and "its log is test.hsm-signer.invalid/club-2026" in out
    _, err = officials("codes", "issue", "club-2026", "--members", str(members), "--out", str(tmp_path / "codes.csv"))
    assert "hashing codes in the HSM: 4/4 (100%)" in err
    assert stat.S_IMODE((tmp_path / "codes.csv").stat().st_mode) == 0o600
    rows = list(csv.DictReader((tmp_path / "codes.csv").open()))
    assert [r["member_number"] for r in rows] == ["M-001", "M-002", "M-003", "M-004"]
    codes = [r["code"] for r in rows]
    _, err = officials("codes", "issue", "club-2026", "--count", "2", "--out", str(tmp_path / "codes.csv"), expect=2)
    assert "already exists; a codes file is never overwritten" in err

    officials("election", "open", "club-2026")
    _, err = officials("election", "open", "club-2026", expect=2)
    assert "it cannot become open" in err

    # Two postal ballots back from the count, one of them with a typo'd code.
    postal = tmp_path / "postal.csv"
    postal.write_text(f"code,chair\n{codes[0]},ann\n{codes[1][:-1]}X,ben\n")
    out, _ = officials("postal", "record", "club-2026", "--csv", str(postal), "--receipts", str(tmp_path / "receipts"),
                       expect=3)
    assert "2 rows: 1 not recorded (other rows are wrong), 1 invalid" in out
    assert "row 3: invalid: code: this code has a typo" in out and codes[1] not in out
    out, _ = officials("postal", "record", "club-2026", "--csv", str(postal), "--receipts", str(tmp_path / "receipts"),
                       "--record-good-rows", expect=3)
    assert "2 rows: 1 recorded, 1 invalid" in out
    (receipt_file,) = (tmp_path / "receipts").iterdir()

    # The same ballot again is idempotent; the same code with another choice is a duplicate within the batch.
    postal.write_text(f"code,chair\n{codes[0]},ann\n{codes[0]},ben\n")
    out, _ = officials("postal", "record", "club-2026", "--csv", str(postal), "--receipts", str(tmp_path / "again"),
                       "--record-good-rows", expect=3)
    assert "2 rows: 1 already recorded by an earlier run, 1 duplicate within the batch" in out
    assert "row 3: duplicate within the batch: the code of row 2 again, with different choices" in out

    out, _ = officials("verify", str(receipt_file), "--keys", str(officials.kit.directory / "keys"))
    assert out.startswith("OK: election club-2026:") and "leaf 0 of log test.hsm-signer.invalid/club-2026 of 1 entries" in out

    out, _ = officials("election", "close", "club-2026")
    assert "is closed; final checkpoint covers 1 entries" in out
    out, _ = officials("election", "list")
    assert "club-2026\tclosed\t1 entries\tcodes: 3 unused, 0 online, 1 postal" in out


def test_verify_reports_a_tampered_receipt_with_exit_status_1(officials, tmp_path, tokens):
    from hsm_signer.service import Service
    from servicekit import open_election

    service = Service.open(officials.kit.load(), with_sequencer=True).start()
    try:
        code = open_election(service, 1)[0]
        receipt = json.loads(service.ballots.cast("test-election", code, {"leader": ["bob"], "board": []}).receipt.to_json())
    finally:
        service.close()
    receipt["leaf_index"] = 1
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    _, err = officials("verify", str(path), "--keys", str(officials.kit.directory / "keys"), expect=1)
    assert err.startswith("hsm-signer: FAILED: receipt leaf index 1 is not covered by its checkpoint")
    out, _ = officials("verify", str(path), "--keys", str(officials.kit.directory / "keys"), "--json", expect=1)
    failed = json.loads(out)
    assert failed["result"] == "fail" and failed["message"].startswith("receipt leaf index 1 is not covered")


def test_a_large_postal_batch_is_stored_in_groups_with_progress(officials, tmp_path):
    definition = tmp_path / "club.toml"
    definition.write_text(DEFINITION)
    officials("election", "create", str(definition))
    officials("codes", "issue", "club-2026", "--count", "2500", "--out", str(tmp_path / "codes.csv"))
    officials("election", "open", "club-2026")
    codes = [r["code"] for r in csv.DictReader((tmp_path / "codes.csv").open())]
    postal = tmp_path / "postal.csv"
    postal.write_text("code,chair\n" + "".join(f"{code},{'ann' if i % 3 else 'ben'}\n" for i, code in enumerate(codes)))
    out, err = officials("postal", "record", "club-2026", "--csv", str(postal))
    assert "postal ballots: 2500 rows: 2500 recorded" in out
    assert "stored: 1,000/2,500 (40%)" in err and "stored: 2,500/2,500 (100%)" in err
    out, _ = officials("election", "list")
    assert "club-2026\topen\t2500 entries\tcodes: 0 unused, 0 online, 2500 postal" in out


def test_election_create_needs_a_globally_unique_log_name(officials, tmp_path):
    """Without [log] origin_prefix (or origin in the definition), no election is created."""
    config = officials.kit.config_path
    config.write_text(config.read_text().split("\n[log]")[0] + "\n")
    definition = tmp_path / "club.toml"
    definition.write_text(DEFINITION)
    _, err = officials("election", "create", str(definition), expect=2)
    assert "log.origin_prefix: missing; the log of election 'club-2026' needs a globally unique name" in err
    definition.write_text(DEFINITION.replace('title = "Club vote"', 'title = "Club vote"\norigin = "club.example/club-2026"'))
    out, _ = officials("election", "create", str(definition))
    assert "its log is club.example/club-2026" in out


def test_verify_checks_the_published_origin(officials, tmp_path):
    definition = tmp_path / "club.toml"
    definition.write_text(DEFINITION)
    officials("election", "create", str(definition))
    officials("codes", "issue", "club-2026", "--count", "1", "--out", str(tmp_path / "codes.csv"))
    code = next(csv.DictReader((tmp_path / "codes.csv").open()))["code"]
    officials("election", "open", "club-2026")
    (tmp_path / "postal.csv").write_text(f"code,chair\n{code},ann\n")
    officials("postal", "record", "club-2026", "--csv", str(tmp_path / "postal.csv"), "--receipts", str(tmp_path / "r"))
    (receipt,) = (tmp_path / "r").iterdir()
    keys = str(officials.kit.directory / "keys")
    out, _ = officials("verify", str(receipt), "--keys", keys, "--origin", "test.hsm-signer.invalid/club-2026")
    assert out.startswith("OK: election club-2026:")
    _, err = officials("verify", str(receipt), "--keys", keys, "--origin", "other.example/club-2026", expect=1)
    assert "receipt checkpoint is for log 'test.hsm-signer.invalid/club-2026', but election 'club-2026' is log " \
           "'other.example/club-2026'" in err
