"""``GET /board/{id}/record.zip``: one export at a time per election, nothing left behind.

Issue 13: ten concurrent first downloads ran ten exports (11.6 s) and left ten temporary
copies (64 MB for 5,612 entries).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from hsm_signer.lifecycle import close_poll, tally_election
from hsm_signer.web.board import PUBLISHED_DIR

from servicekit import DEMO_ELECTION, open_election

ELECTION = DEMO_ELECTION["id"]
RECORD = f"/board/{ELECTION}/record.zip"


def _tallied(service) -> None:
    codes = open_election(service, 3)
    service.ballots.cast(ELECTION, codes[0], {"leader": ["bob"], "board": ["dan"]})
    service.ballots.cast(ELECTION, codes[1], {"leader": ["alice"], "board": []})
    close_poll(service, ELECTION)
    tally_election(service, ELECTION)


def test_while_an_export_runs_elsewhere_a_download_gets_503_with_retry_after_then_the_archive(client, service):
    _tallied(service)
    published = service.config.base_dir / PUBLISHED_DIR
    published.mkdir()
    # Another process holds the election's export lock: an export in progress there.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()"),
        str(published / f".{ELECTION}.lock")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = client.get(RECORD)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
        assert b"record_busy" in busy.data
        assert not (published / f"{ELECTION}.zip").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    done = client.get(RECORD)
    assert done.status_code == 200 and done.mimetype == "application/zip"


def test_concurrent_first_downloads_run_one_export_and_leave_no_temporary_files(client, service, monkeypatch):
    _tallied(service)
    published = service.config.base_dir / PUBLISHED_DIR
    app = client.application
    start = threading.Barrier(10)
    exports = []
    original = os.replace

    def download(_):
        with app.test_client() as own:
            start.wait(timeout=30)
            response = own.get(RECORD)
            return response.status_code, response.data, response.headers.get("Retry-After")

    # Count the archives moved into place (each export ends in exactly one os.replace).
    def counting_replace(source, target, *args, **kwargs):
        if str(target).endswith(f"{ELECTION}.zip"):
            exports.append(target)
        return original(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", counting_replace)  # a witness: the real rename still runs
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(download, range(10)))
    monkeypatch.undo()
    assert len(exports) == 1
    assert {status for status, _, _ in answers} <= {200, 503}
    bodies = {body for status, body, _ in answers if status == 200}
    assert len(bodies) == 1  # every 200 is the one archive
    assert all(retry == "5" for status, _, retry in answers if status == 503)
    assert sorted(p.name for p in published.iterdir()) == [f".{ELECTION}.lock", f"{ELECTION}.zip"]


def test_a_temporary_export_left_by_a_crash_is_removed_by_the_next_export(client, service):
    _tallied(service)
    published = service.config.base_dir / PUBLISHED_DIR
    # A kill -9 in the middle of an export: a real partial export in a process that dies.
    crashed = subprocess.run([sys.executable, "-c", (
        "import os, sys, tempfile; from pathlib import Path; "
        "work = Path(tempfile.mkdtemp(prefix=f'.{sys.argv[2]}-', dir=sys.argv[1])); "
        "(work / 'entries.jsonl').write_bytes(b'x' * 100000); os.kill(os.getpid(), 9)"),
        str(published.mkdir() or published), ELECTION])
    assert crashed.returncode == -9
    (stale,) = [p for p in published.iterdir() if p.name.startswith(f".{ELECTION}-")]
    assert client.get(RECORD).status_code == 200
    assert not stale.exists()
    assert sorted(p.name for p in published.iterdir()) == [f".{ELECTION}.lock", f"{ELECTION}.zip"]
