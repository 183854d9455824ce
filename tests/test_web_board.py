"""The bulletin board after the poll: the signed tally, its note, and the whole record to audit."""

from __future__ import annotations

import io
import zipfile

from hsm_signer.audit import audit_record
from hsm_signer.lifecycle import close_poll, tally_election

from servicekit import DEMO_ELECTION, open_election

ELECTION = DEMO_ELECTION["id"]


def test_the_board_publishes_the_signed_tally_and_the_record_once_counted(client, service, tmp_path):
    codes = open_election(service, 4)
    service.ballots.cast(ELECTION, codes[0], {"leader": ["bob"], "board": ["dan"]})
    service.ballots.cast(ELECTION, codes[1], {"leader": ["bob"], "board": []}, channel="postal")
    service.ballots.cast(ELECTION, codes[2], {"leader": ["carol"], "board": ["dan", "erin"]})

    page = client.get(f"/board/{ELECTION}").get_data(as_text=True)
    assert "Signed tally" not in page
    assert client.get(f"/board/{ELECTION}/tally.txt").status_code == 404
    assert client.get(f"/board/{ELECTION}/record.zip").status_code == 404

    close_poll(service, ELECTION)
    signed = tally_election(service, ELECTION)
    page = client.get(f"/board/{ELECTION}").get_data(as_text=True)
    assert "Signed tally" in page and "Ballots in the final log: 3 (online: 2, by post: 1)." in page
    assert "<tr><td>Bob</td><td>1</td><td>1</td><td>2</td></tr>" in page

    note = client.get(f"/board/{ELECTION}/tally.txt")
    assert note.status_code == 200 and note.get_data(as_text=True) == signed.note

    download = client.get(f"/board/{ELECTION}/record.zip")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        archive.extractall(tmp_path / "fetched")
    (record_dir,) = (tmp_path / "fetched").iterdir()
    result = audit_record(record_dir)
    assert result.tree_size == 3
    assert client.get(f"/board/{ELECTION}/record.zip").data == download.data  # made once, served again


def test_during_the_poll_the_board_shows_trackers_and_counts_but_no_vote(client, service, sealing_key):
    codes = open_election(service, 5)
    receipts = [service.ballots.cast(ELECTION, codes[0], {"leader": ["bob"], "board": ["dan"]}).receipt,
                service.ballots.cast(ELECTION, codes[1], {"leader": ["alice"], "board": []}, channel="postal").receipt,
                service.ballots.cast(ELECTION, codes[2], {"leader": ["carol"], "board": ["erin", "frank"]}).receipt]
    page = client.get(f"/board/{ELECTION}").get_data(as_text=True)
    assert "2 unused, 2 used online, 1 used by post" in page
    for receipt in receipts:
        assert receipt.tracker in page
    for option in ("alice", "bob", "carol", "dan", "erin", "frank", "Alice", "Bob", "Carol"):
        assert option not in page, option

    second = receipts[1].tracker
    found = client.get(f"/board/{ELECTION}", query_string={"tracker": second.upper().replace("-", " ")})
    assert found.status_code == 200
    text = found.get_data(as_text=True)
    assert f"the ballot with tracker <code>{second}</code> is entry 1 of the signed log" in text
    assert 'class="found" aria-current="true"><td>1</td>' in text

    missing = client.get(f"/board/{ELECTION}", query_string={"tracker": "0000-0000-0000-0000"}).get_data(as_text=True)
    assert "No ballot with the tracker 0000-0000-0000-0000 is on the board yet." in missing
    assert 'aria-describedby="tracker-hint tracker-error" aria-invalid="true"' in missing
    typo = client.get(f"/board/{ELECTION}", query_string={"tracker": "not-a-tracker"}).get_data(as_text=True)
    assert "A ballot tracker has 16 letters and digits (0 to 9 and a to f) in four groups" in typo
    assert 'value="not-a-tracker"' in typo  # what the voter typed stays in the field
