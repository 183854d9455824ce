"""Opening the box at close: the tally trustees' story, the auditor's, and an interrupted tally.

A sealed election on real SoftHSM tokens (the demo's rehearsal ceremony: the signing token,
and the sealing token whose PIN the tally trustees hold 2-of-3), some ballots that cannot
count; every official step through the ``hsm-signer`` command, each in its own process.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import HSM_SIGNER_COMMAND
from hsm_signer.audit import audit_record
from hsm_signer.errors import VerificationError
from hsm_signer.openings import Opening
from test_record_audit import reseal

KIT = Path(__file__).with_name("sealedkit.py")
ELECTION = "demo-2026"


def make(state: Path, valid: int, spoiled: bool = True) -> dict:
    run = subprocess.run([sys.executable, str(KIT), str(state), str(valid), "spoiled" if spoiled else "clean"],
                         capture_output=True, text=True, timeout=300, cwd=KIT.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def cli(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HSM_SIGNER_CONFIG": str(config)}
    env.pop("SOFTHSM2_CONF", None)  # the config names the demo's own token directory
    return subprocess.run([*HSM_SIGNER_COMMAND, *args], capture_output=True, text=True, timeout=timeout, env=env)


def with_trustees(config: Path, files: list[Path], out: Path) -> Path:
    """A copy of ``config`` whose [tally.sealing.pin] reads these share files, and its own database copy."""
    text = config.read_text()
    start = text.index("[tally.sealing.pin]")
    text = text[:start] + "[tally.sealing.pin]\nsource = \"shares\"\nshare_files = " + json.dumps(
        [str(f) for f in files]) + "\n"
    db = out.with_suffix(".sqlite3")
    source = sqlite3.connect(config.parent / "ballots.sqlite3")
    target = sqlite3.connect(db)
    source.backup(target)
    source.close()
    target.close()
    text = text.replace('url = "sqlite:///ballots.sqlite3"', f'url = "sqlite:///{db}"')
    text = text.replace('state_file = "sequencer-state.json"', f'state_file = "{out.with_suffix(".seq.json")}"')
    shutil.copy(config.parent / "sequencer-state.json", out.with_suffix(".seq.json"))
    text = text.replace('bundle = "', f'bundle = "{config.parent}/').replace(
        'softhsm_conf = "', f'softhsm_conf = "{config.parent}/').replace('secret_key_file = "', f'secret_key_file = "{config.parent}/')
    import re
    text = re.sub(r'share_files = \[("rehearsal-shares[^\]]*)\]',
                  lambda m: "share_files = [" + ", ".join(f'"{config.parent}/{p.strip().strip(chr(34))}"'
                                                          for p in m.group(1).split(",")) + "]", text, count=1)
    out.write_text(text)
    return out


@pytest.fixture(scope="module")
def election(tmp_path_factory):
    state = tmp_path_factory.mktemp("sealed") / "state"
    made = make(state, 40)
    shares = state / "rehearsal-shares" / "demo-ceremony"
    return state, made, sorted(shares.glob("trustee-*.txt")), sorted(shares.glob("share-*.txt"))


@pytest.fixture(scope="module")
def tallied(election, tmp_path_factory):
    """The election tallied with two trustees' shares (Tao and Vic), and its record."""
    state, made, trustees, _ = election
    config = with_trustees(state / "config.toml", [trustees[0], trustees[2]], tmp_path_factory.mktemp("t") / "a.toml")
    run = cli(config, "tally", ELECTION)
    assert run.returncode == 0, run.stderr[-3000:]
    record = config.parent / "record"
    export = cli(config, "record", "export", ELECTION, str(record))
    assert export.returncode == 0, export.stderr[-3000:]
    return config, run, record


def test_two_trustees_open_the_box_and_the_tally_counts_the_valid_and_the_invalid(election, tallied):
    _, made, _, _ = election
    _, run, _ = tallied
    for leader, count in made["leaders"].items():
        assert f"\ntally leader {leader} {count}\n" in run.stdout
    assert "\ninvalid online 6\ninvalid postal 0\nopenings sha256:" in run.stdout
    assert f"ballots online {sum(made['leaders'].values()) + 6}" in run.stdout
    assert "opening sealed ballots: 46/46 (100%)" in run.stderr


def test_any_two_trustees_give_the_same_signed_tally(election, tallied, tmp_path):
    state, _, trustees, _ = election
    config = with_trustees(state / "config.toml", [trustees[1], trustees[2]], tmp_path / "b.toml")
    run = cli(config, "tally", ELECTION)
    assert run.returncode == 0, run.stderr[-3000:]
    # the tally key is Ed25519 in the rehearsal: the same result signs to the same bytes
    assert run.stdout.split("\n\n", 1)[1] == tallied[1].stdout.split("\n\n", 1)[1]


def test_one_trustee_cannot_open_the_box_and_nothing_is_stored(election, tmp_path):
    state, _, trustees, _ = election
    config = with_trustees(state / "config.toml", [trustees[0]], tmp_path / "c.toml")
    run = cli(config, "tally", ELECTION)
    assert run.returncode != 0
    assert "fewer than 2 shares: got 1 of the 2 needed" in run.stderr
    assert sqlite3.connect(tmp_path / "c.sqlite3").execute("SELECT COUNT(*) FROM openings").fetchone()[0] == 0


def test_the_services_own_pin_cannot_open_the_box(election, tmp_path):
    state, _, _, holders = election
    copies = []
    for holder in holders[:2]:  # the service's share holders' shares, copied elsewhere
        copies.append(tmp_path / holder.name)
        shutil.copy(holder, copies[-1])
    config = with_trustees(state / "config.toml", copies, tmp_path / "d.toml")
    run = cli(config, "tally", ELECTION)
    assert run.returncode != 0 and "wrong PIN for HSM token 'sealing-hsm-signer-demo'" in run.stderr


def test_a_configuration_that_hands_the_trustees_pin_to_the_service_is_refused(election, tmp_path):
    state, _, trustees, _ = election
    text = (state / "config.toml").read_text()
    same_token = tmp_path / "same.toml"
    same_token.write_text(text.replace('token_label = "sealing-hsm-signer-demo"', 'token_label = "hsm-signer-demo"'))
    run = cli(same_token, "serve")
    assert run.returncode == 2 and "tally.sealing.token_label: is the service's own token 'hsm-signer-demo'" in run.stderr
    shared = tmp_path / "shared.toml"
    service_files = text[text.index("[hsm.pin]"):].split("share_files = ", 1)[1].split("\n", 1)[0]
    start = text.index("[tally.sealing.pin]")
    shared.write_text(text[:start] + f'[tally.sealing.pin]\nsource = "shares"\nshare_files = {service_files}\n')
    run = cli(shared, "serve")
    assert run.returncode == 2 and "tally.sealing.pin.share_files:" in run.stderr and "also a share file of [hsm.pin]" in run.stderr
    env_pin = tmp_path / "env.toml"
    env_pin.write_text(text[:start] + '[tally.sealing.pin]\nsource = "env"\n')
    run = cli(env_pin, "serve")
    assert run.returncode == 2 and "only from the tally trustees" in run.stderr


# --- the record and the audit -----------------------------------------------------------------

@pytest.fixture
def record(tallied, tmp_path) -> Path:
    target = tmp_path / "record"
    shutil.copytree(tallied[2], target)
    return target


def lines(record: Path) -> list[bytes]:
    return (record / "openings.jsonl").read_bytes().splitlines(keepends=True)


def write_lines(record: Path, items: list[bytes]) -> None:
    (record / "openings.jsonl").write_bytes(b"".join(items))
    reseal(record)


def first(record: Path, status: str) -> int:
    return next(i for i, line in enumerate(lines(record)) if Opening.from_line(line).status == status)


def edit_opening(record: Path, index: int, **changes) -> None:
    items = lines(record)
    obj = json.loads(items[index])
    obj.update(changes)
    items[index] = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    write_lines(record, items)


def fails(record: Path, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        audit_record(record)


def test_the_record_holds_the_openings_and_passes_the_audit(tallied):
    _, _, record = tallied
    said: list[str] = []
    result = audit_record(record, report=said.append)
    assert result.tally.invalid == 6 and result.tally.openings is not None
    assert any("re-opened with its published secret" in line for line in said)
    assert any(line.strip().startswith("sealing key    rehearsal-sealing sha256:") for line in said), said
    assert sum(1 for line in lines(record) if b'"status":"invalid"' in line) == 6
    assert "openings.jsonl" in (record / "README.md").read_text()


def test_one_changed_byte_in_an_opening_secret_is_caught(record):
    index = first(record, "valid")
    secret = bytearray(Opening.from_line(lines(record)[index]).shared_secret)
    secret[0] ^= 1
    edit_opening(record, index, shared_secret=base64.b64encode(bytes(secret)).decode())
    fails(record, rf"entries.jsonl line {index + 1}: opening {index}: counted as valid, but re-opening entry {index} "
                  r"with its secret gives an invalid ballot \(the sealed ballot does not open")


def test_one_changed_opened_selection_is_caught(record):
    index = first(record, "valid")
    opening = Opening.from_line(lines(record)[index])
    other = next(x for x in ("amara-okafor", "ben-carter", "chloe-davies") if x not in opening.selections["leader"])
    edit_opening(record, index, selections={**opening.selections, "leader": [other]})
    fails(record, rf"opening {index}: the published selections are not what entry {index} opens to")


def test_one_changed_byte_in_a_sealed_leaf_is_caught(record):
    # A ballot counted as valid: the record's invalid ones (random) fail with another reason.
    index = first(record, "valid")
    leaves = (record / "entries.jsonl").read_bytes().splitlines(keepends=True)
    leaf = json.loads(leaves[index])
    sealed = bytearray(base64.b64decode(leaf["sealed"]))
    sealed[-1] ^= 1
    leaf["sealed"] = base64.b64encode(bytes(sealed)).decode()
    leaves[index] = json.dumps(leaf, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    (record / "entries.jsonl").write_bytes(b"".join(leaves))
    reseal(record)
    fails(record, rf"entries.jsonl line {index + 1}: opening {index}: counted as .*re-opening entry {index}|"
                  r"hash to root .* an entry was changed")


def test_a_changed_openings_digest_in_the_tally_is_caught(record):
    tally = (record / "tally.txt").read_text()
    digest = tally.split("openings sha256:", 1)[1][:64]
    changed = ("0" if digest[0] != "0" else "1") + digest[1:]
    (record / "tally.txt").write_text(tally.replace(digest, changed))
    reseal(record)
    fails(record, r"tally.txt: the tally is not signed by the tally key")


def test_openings_changed_consistently_still_differ_from_the_digest_the_tally_signed(record):
    # An invalid ballot re-described with another (re-computed) reason is caught by its own check;
    # here: a line appended after the last entry, then one removed, each named.
    items = lines(record)
    write_lines(record, items + [items[-1]])
    fails(record, r"openings.jsonl has more lines than the 46 entries")
    write_lines(record, items[:-1])
    fails(record, r"openings.jsonl ends after 45 lines, but entries.jsonl has more entries: entry 45 has no opening")


def test_an_opening_moved_to_another_entry_is_caught(record):
    items = lines(record)
    items[1], items[2] = items[2], items[1]
    write_lines(record, items)
    fails(record, r"opening 1: says index 2; openings are in log order")
    items = lines(record)
    moved = json.loads(items[1])  # entry 2's opening, relabelled as entry 1's
    moved["index"] = 1
    items[1] = json.dumps(moved, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    write_lines(record, items)
    fails(record, r"opening 1: is for ballot [0-9a-f]{32}, but entry 1 is ballot [0-9a-f]{32}: an opening was moved")


def test_an_invalid_ballot_counted_as_valid_is_caught(record):
    index = first(record, "invalid")
    items = lines(record)
    obj = json.loads(items[index])
    obj.pop("reason")
    obj.update(status="valid", selections={"executive": [], "leader": ["amara-okafor"]})
    items[index] = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    write_lines(record, items)
    fails(record, rf"opening {index}: counted as valid, but re-opening entry {index} with its secret gives an invalid ballot")


def test_a_valid_ballot_made_invalid_without_a_wrong_secret_is_caught(record):
    index = first(record, "valid")
    obj = json.loads(lines(record)[index])
    obj.pop("selections")
    items = lines(record)
    items[index] = json.dumps({**obj, "status": "invalid", "reason": "spoilt"}, sort_keys=True,
                              separators=(",", ":")).encode() + b"\n"
    write_lines(record, items)
    fails(record, rf"opening {index}: counted as invalid, but entry {index} opens with its secret to a valid ballot")


# --- kill -9 while opening ------------------------------------------------------------------

def test_kill_9_while_opening_then_tally_again_finishes_with_the_identical_result(tmp_path_factory):
    state = tmp_path_factory.mktemp("kill") / "state"
    make(state, 3000, spoiled=False)
    trustees = sorted((state / "rehearsal-shares" / "demo-ceremony").glob("trustee-*.txt"))
    whole = with_trustees(state / "config.toml", trustees[:2], state.parent / "whole.toml")
    killed = with_trustees(state / "config.toml", trustees[:2], state.parent / "killed.toml")

    env = {**os.environ, "HSM_SIGNER_CONFIG": str(killed)}
    env.pop("SOFTHSM2_CONF", None)
    process = subprocess.Popen([*HSM_SIGNER_COMMAND, "tally", ELECTION, "--workers", "2"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = sqlite3.connect(state.parent / "killed.sqlite3", timeout=30)
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and stored < 300 and process.poll() is None:
        time.sleep(0.05)
        stored = db.execute("SELECT COUNT(*) FROM openings").fetchone()[0]
    assert process.poll() is None, "the tally finished before it could be killed; give it more ballots"
    os.killpg(process.pid, signal.SIGKILL)  # the tally and its worker processes, mid-opening
    process.wait(timeout=30)
    stored = db.execute("SELECT COUNT(*) FROM openings").fetchone()[0]
    assert 0 < stored < 3000
    assert db.execute("SELECT COUNT(*) FROM tallies").fetchone()[0] == 0
    db.close()

    again = cli(killed, "tally", ELECTION)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"opening sealed ballots: {stored:,}/3,000" in again.stderr  # it carried on where it stopped
    reference = cli(whole, "tally", ELECTION)
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert again.stdout == reference.stdout
    openings = [sqlite3.connect(state.parent / f"{name}.sqlite3").execute(
        "SELECT line FROM openings ORDER BY idx").fetchall() for name in ("killed", "whole")]
    assert openings[0] == openings[1] and len(openings[0]) == 3000


# --- the voter, after close ---------------------------------------------------------------------

def receipt_from_record(record: Path, index: int, tmp_path: Path) -> Path:
    """The receipt the voter of entry ``index`` got (rebuilt from the record: leaf, proof, a checkpoint)."""
    from hsm_signer.log.merkle import leaf_hash
    from hsm_signer.log.receipt import Receipt
    from hsm_signer.log.tree import InMemoryNodeStore, MerkleTree
    leaves = (record / "entries.jsonl").read_bytes().split(b"\n")[:-1]
    sizes = sorted(int(p.stem) for p in (record / "checkpoints").glob("*.note"))
    size = next(s for s in sizes if s > index)
    tree = MerkleTree(InMemoryNodeStore())
    tree.append([leaf_hash(x) for x in leaves[:size]])
    receipt = Receipt(ELECTION, index, leaves[index], tuple(tree.inclusion_proof(index, size)),
                      (record / "checkpoints" / f"{size}.note").read_text())
    path = tmp_path / f"receipt-{index}.json"
    path.write_text(receipt.to_json())
    return path


def verify_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HSM_SIGNER_COMMAND, "verify", *args], capture_output=True, text=True, timeout=120)


def test_after_close_the_voter_sees_what_their_own_sealed_ballot_opened_to(tallied, record, tmp_path):
    index = first(record, "valid")
    opening = Opening.from_line(lines(record)[index])
    receipt = receipt_from_record(record, index, tmp_path)
    run = verify_cli(str(receipt), "--keys", str(record / "keys"), "--record", str(record))
    assert run.returncode == 0, run.stderr
    assert f"leader: {opening.selections['leader'][0]}" in run.stdout and "Check that this is what you chose" in run.stdout
    spoilt = receipt_from_record(record, first(record, "invalid"), tmp_path)
    run = verify_cli(str(spoilt), "--keys", str(record / "keys"), "--record", str(record), "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["opening"]["status"] == "invalid"
    # a record whose opening of this ballot was changed does not show it: the voter is told
    edit_opening(record, index, selections={**opening.selections, "leader": [
        next(x for x in ("amara-okafor", "ben-carter", "chloe-davies") if x not in opening.selections["leader"])]})
    run = verify_cli(str(receipt), "--keys", str(record / "keys"), "--record", str(record))
    assert run.returncode == 1 and "the record's openings hash to" in run.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_trustees_can_type_their_shares_at_the_tally(election, tallied, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    from hsm_signer.hsm.shares import read_share_file
    state, _, trustees, _ = election
    config = with_trustees(state / "config.toml", [], tmp_path / "typed.toml")
    text = config.read_text()
    config.write_text(text[:text.index("[tally.sealing.pin]")] + '[tally.sealing.pin]\nsource = "prompt"\n')
    env = {**os.environ, "HSM_SIGNER_CONFIG": str(config)}
    env.pop("SOFTHSM2_CONF", None)
    command, *prefix = HSM_SIGNER_COMMAND
    child = pexpect.spawn(command, [*prefix, "tally", ELECTION, "--workers", "1"], env=env, timeout=120)
    for number, trustee in enumerate((trustees[2], trustees[1]), 1):
        child.expect(rf"Share {number}.*not echoed")
        child.sendline(read_share_file(trustee)[0])
    child.expect(pexpect.EOF)
    child.close()
    output = child.before.decode()
    assert child.exitstatus == 0, output[-2000:]
    assert "opening sealed ballots: 46/46 (100%)" in output
    assert tallied[1].stdout.split("\n\n", 1)[1].strip() in output.replace("\r\n", "\n")
    for share in (read_share_file(trustees[2])[0], read_share_file(trustees[1])[0]):
        assert share not in output  # typed shares are not echoed
