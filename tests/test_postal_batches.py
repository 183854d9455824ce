"""Postal batches that never lose track: the whole CSV checked first, an accurate report,
--dry-run, --record-good-rows, and a batch killed half-way finished by running it again."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time

import pytest

from harness import HSM_SIGNER_COMMAND

DEFINITION = """
id = "club-2026"
title = "Club vote"
[[contests]]
id = "chair"
title = "Chair"
options = [{ id = "ann", title = "Ann Archer" }, { id = "ben", title = "Ben Bowe" }]
[[contests]]
id = "board"
title = "Board"
max_choices = 2
options = [{ id = "cat", title = "Cat" }, { id = "dev", title = "Dev" }, { id = "eve", title = "Eve" }]
"""


def _election(officials, tmp_path, count: int, *, open_poll: bool = True) -> list[str]:
    (tmp_path / "club.toml").write_text(DEFINITION)
    officials("election", "create", str(tmp_path / "club.toml"))
    officials("codes", "issue", "club-2026", "--count", str(count), "--out", str(tmp_path / "codes.csv"))
    if open_poll:
        officials("election", "open", "club-2026")
    return [r["code"] for r in csv.DictReader((tmp_path / "codes.csv").open())]


def _state(officials):
    from hsm_signer.storage import open_storage
    storage = open_storage(officials.kit.load().storage_url)
    try:
        return storage.count_codes("club-2026"), storage.tree_size("club-2026") + len(storage.pending("club-2026", 10**6))
    finally:
        storage.close()


def test_a_batch_with_wrong_rows_records_nothing_and_reports_every_row(officials, tmp_path):
    codes = _election(officials, tmp_path, 8)
    batch = tmp_path / "postal.csv"
    batch.write_text(
        "code,chair,board\n"
        f"{codes[0]},ann,cat dev\n"          # 2: good
        f"{codes[1]},ben\n"                  # 3: short row
        f"{codes[2]},Ann Archer,\n"          # 4: a candidate's name instead of the id
        f"{codes[3]},zed,\n"                 # 5: an unknown option
        f"{codes[0]},ann,cat dev\n"          # 6: row 2 entered twice
        f"{codes[4]},ann,cat,extra\n"        # 7: long row
        f"{codes[5]},ANN,\n"                 # 8: right option, wrong case
        f"{codes[6]},ben,\"cat,eve\"\n")     # 9: good, options separated by a comma
    report = tmp_path / "report.json"
    out, err = officials("postal", "record", "club-2026", "--csv", str(batch), "--report", str(report),
                         "--receipts", str(tmp_path / "receipts"), expect=3)
    assert "8 rows: 2 not recorded (other rows are wrong), 1 duplicate within the batch, 5 invalid" in out
    assert "row 3: invalid: the row is short: 2 cell(s) where the header has 3 (code,chair,board)" in out
    assert "row 4: invalid: contest 'chair': 'Ann' is not an option id; did you mean 'ann'?" in out
    assert "row 5: invalid: contest 'chair': 'zed' is not an option; the options are ann, ben" in out
    assert "row 6: duplicate within the batch: the code of row 2 again, with the same choices" in out
    assert "row 7: invalid: the row is long: 4 cell(s)" in out
    assert "row 8: invalid: contest 'chair': 'ANN' is not an option id; did you mean 'ann'?" in out
    assert "nothing was recorded" in err and not any(code in out + err for code in codes)
    assert _state(officials) == ({"unused": 8, "online": 0, "postal": 0}, 0)
    assert not (tmp_path / "receipts").exists() or not list((tmp_path / "receipts").iterdir())
    written = json.loads(report.read_text())
    assert [(r["row"], r["outcome"]) for r in written["rows"]] == [
        (2, "not_recorded"), (3, "invalid"), (4, "invalid"), (5, "invalid"), (6, "duplicate_in_batch"),
        (7, "invalid"), (8, "invalid"), (9, "not_recorded")]
    assert written["counts"]["invalid"] == 5 and written["dry_run"] is False

    # The official decides to record the good rows now: exactly those, and a receipt each.
    out, _ = officials("postal", "record", "club-2026", "--csv", str(batch), "--report", str(report),
                       "--receipts", str(tmp_path / "receipts"), "--record-good-rows", expect=3)
    assert "8 rows: 2 recorded, 1 duplicate within the batch, 5 invalid" in out
    assert _state(officials) == ({"unused": 6, "online": 0, "postal": 2}, 2)
    assert len(list((tmp_path / "receipts").iterdir())) == 2
    written = json.loads(report.read_text())
    recorded = [r for r in written["rows"] if r["outcome"] == "recorded"]
    assert [r["row"] for r in recorded] == [2, 9] and sorted(r["leaf_index"] for r in recorded) == [0, 1]


def test_a_row_entered_twice_with_receipts_records_one_ballot_and_one_receipt(officials, tmp_path):
    """Regression: this crashed with FileExistsError after storing, and counted 6 for 5 ballots."""
    codes = _election(officials, tmp_path, 5)
    rows = [f"{code},ann," for code in codes] + [f"{codes[2]},ann,"]
    (tmp_path / "postal.csv").write_text("code,chair,board\n" + "\n".join(rows) + "\n")
    out, _ = officials("postal", "record", "club-2026", "--csv", str(tmp_path / "postal.csv"), "--record-good-rows",
                       "--receipts", str(tmp_path / "receipts"), "--report", str(tmp_path / "report.json"), expect=3)
    assert "6 rows: 5 recorded, 1 duplicate within the batch" in out
    assert "row 7: duplicate within the batch: the code of row 4 again" in out
    assert len(list((tmp_path / "receipts").iterdir())) == 5
    assert json.loads((tmp_path / "report.json").read_text())["counts"]["recorded"] == 5
    assert _state(officials) == ({"unused": 0, "online": 0, "postal": 5}, 5)


def test_dry_run_changes_nothing(officials, tmp_path):
    codes = _election(officials, tmp_path, 3, open_poll=False)
    (tmp_path / "postal.csv").write_text(f"code,chair,board\n{codes[0]},ann,\n{codes[1]},ben,eve\n")
    # A draft poll takes no ballot, but a batch can be checked before it opens.
    _, err = officials("postal", "record", "club-2026", "--csv", str(tmp_path / "postal.csv"), expect=2)
    assert "the poll for election 'club-2026' is draft" in err and "--dry-run checks a batch in any state" in err
    out, _ = officials("postal", "record", "club-2026", "--csv", str(tmp_path / "postal.csv"), "--dry-run",
                       "--receipts", str(tmp_path / "receipts"))
    assert "postal ballots (dry run: nothing recorded): 2 rows: 2 would be recorded" in out
    officials("election", "open", "club-2026")
    out, _ = officials("postal", "record", "club-2026", "--csv", str(tmp_path / "postal.csv"), "--dry-run")
    assert "2 would be recorded" in out
    assert _state(officials) == ({"unused": 3, "online": 0, "postal": 0}, 0)
    assert not (tmp_path / "receipts").exists()


def test_a_postal_ballot_after_an_online_vote_is_reported_as_its_duplicate(officials, tmp_path):
    from hsm_signer.service import Service
    codes = _election(officials, tmp_path, 2)
    service = Service.open(officials.kit.load(), with_sequencer=True).start()
    try:
        service.ballots.cast("club-2026", codes[0], {"chair": ["ben"], "board": []})
    finally:
        service.close()
    (tmp_path / "postal.csv").write_text(f"code,chair,board\n{codes[0]},ann,\n{codes[1]},ann,\n")
    out, _ = officials("postal", "record", "club-2026", "--csv", str(tmp_path / "postal.csv"),
                       "--report", str(tmp_path / "report.json"))
    assert "2 rows: 1 recorded, 1 duplicate of an online vote" in out
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    assert [(r["row"], r["outcome"]) for r in rows] == [(2, "duplicate_online"), (3, "recorded")]


def test_choice_separates_options_as_a_csv_cell_does(officials, tmp_path):
    codes = _election(officials, tmp_path, 3)
    out, _ = officials("postal", "record", "club-2026", "--code", codes[0], "--choice", "chair=ann",
                       "--choice", "board=cat,dev")
    assert "1 row: 1 recorded" in out
    officials("postal", "record", "club-2026", "--code", codes[1], "--choice", "board=cat dev")
    out, _ = officials("postal", "record", "club-2026", "--code", codes[2], "--choice", "board=Cat", expect=3)
    assert "contest 'board': 'Cat' is not an option id; did you mean 'cat'?" in out
    _, err = officials("postal", "record", "club-2026", "--code", codes[2], "--choice", "chiar=ann", expect=2)
    assert "there is no contest 'chiar'; the contests are chair, board" in err
    assert _state(officials)[0] == {"unused": 1, "online": 0, "postal": 2}


def test_a_wrong_header_names_the_columns_it_needs(officials, tmp_path):
    codes = _election(officials, tmp_path, 1)
    (tmp_path / "postal.csv").write_text(f"code,chair,bored\n{codes[0]},ann,\n")
    _, err = officials("postal", "record", "club-2026", "--csv", str(tmp_path / "postal.csv"), expect=2)
    assert "unknown column(s) 'bored' and missing column(s) board; the header must be code,chair,board" in err
    _, err = officials("postal", "record", "club-2026", "--csv", str(tmp_path / "missing.csv"), expect=2)
    assert "cannot read the postal CSV" in err and "No such file or directory" in err


def test_a_batch_killed_half_way_is_finished_by_running_it_again(officials, tmp_path):
    """kill -9 of the real command in the middle of a batch, then the same command again:
    every row recorded exactly once, and the second report accounts for every row."""
    rows = 3000
    codes = _election(officials, tmp_path, rows)
    batch = tmp_path / "postal.csv"
    batch.write_text("code,chair,board\n" + "".join(f"{code},{'ann' if i % 3 else 'ben'},cat\n"
                                                   for i, code in enumerate(codes)))
    command = [*HSM_SIGNER_COMMAND, "--config", str(officials.kit.config_path), "postal", "record", "club-2026",
               "--csv", str(batch), "--receipts", str(tmp_path / "receipts"), "--report", str(tmp_path / "report.json")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        for line in process.stderr:  # bounded by the deadline and the process's own end
            if "stored: 1,000/3,000" in line or time.monotonic() > deadline:
                break
        assert process.poll() is None, "the batch ended before it could be killed; make it larger"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()
    counts, stored = _state(officials)
    assert 1000 <= counts["postal"] < rows and stored == counts["postal"]
    assert not (tmp_path / "report.json").exists()

    out, _ = officials("postal", "record", "club-2026", "--csv", str(batch), "--receipts", str(tmp_path / "receipts"),
                       "--report", str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["recorded"] == rows - counts["postal"]
    assert report["counts"]["already_recorded"] == counts["postal"]
    assert sorted(r["row"] for r in report["rows"]) == list(range(2, rows + 2))
    assert sorted(r["leaf_index"] for r in report["rows"]) == list(range(rows))
    assert _state(officials) == ({"unused": 0, "online": 0, "postal": rows}, rows)
    assert len(list((tmp_path / "receipts").iterdir())) == rows


@pytest.mark.parametrize("cell, expected", [
    ("ann", ["ann"]), ("cat dev", ["cat", "dev"]), ("cat,dev", ["cat", "dev"]), (" cat ,  dev ", ["cat", "dev"]),
    ("", []),
])
def test_options_are_separated_by_commas_or_spaces(cell, expected):
    from hsm_signer.postal import split_options
    assert split_options(cell) == expected
