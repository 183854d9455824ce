"""A whole election on SoftHSM, as officials, voters and an auditor live it.

Officials create the election, issue codes and open the poll; voters cast online and keep
their receipts; officials record the returned postal ballots, close the poll, sign the
tally and export the record; an auditor with no database and no HSM audits it with the
voters' receipts, checks each receipt against the signed tally, and checks the tally's
signature with the openssl recipe from docs/AUDIT.md.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hsm_signer.bundle import KeyBundle
from hsm_signer.log.checkpoint import Checkpoint
from hsm_signer.log.merkle import leaf_hash
from hsm_signer.log.note import b64encode, parse_note
from hsm_signer.log.receipt import Receipt
from hsm_signer.log.tree import LevelTree
from hsm_signer.service import Service
from hsm_signer.verify import verify_receipt

# HSM-facing: .ci/run runs the whole election again through p11-kit-proxy (docs/HSM.md).
pytestmark = pytest.mark.hsm

AUDIT_MD = Path(__file__).resolve().parent.parent / "docs" / "AUDIT.md"
DEFINITION = """
id = "leader-2026"
title = "Leadership election 2026"

[[contests]]
id = "leader"
title = "Leader"
options = [{ id = "sunak", title = "Candidate S" }, { id = "truss", title = "Candidate T" }]

[[contests]]
id = "board"
title = "Board"
max_choices = 2
options = [{ id = "ann", title = "Ann" }, { id = "ben", title = "Ben" }, { id = "cat", title = "Cat" }]
"""
ONLINE = [
    {"leader": ["truss"], "board": ["ann", "ben"]},
    {"leader": ["sunak"], "board": ["cat"]},
    {"leader": ["truss"], "board": []},
    {"leader": [], "board": ["ann"]},
    {"leader": ["truss"], "board": ["ben", "cat"]},
]


def openssl_recipe() -> str:
    match = re.search(r"<!-- recipe:tally-openssl -->\n```sh\n(.*?)^```$", AUDIT_MD.read_text(encoding="utf-8"), re.S | re.M)
    assert match, "docs/AUDIT.md has no tally openssl recipe"
    return match.group(1)


def test_an_election_from_codes_to_an_independent_audit(officials, tmp_path):
    (tmp_path / "election.toml").write_text(DEFINITION)
    officials("election", "create", str(tmp_path / "election.toml"))
    officials("codes", "issue", "leader-2026", "--count", "9", "--out", str(tmp_path / "codes.csv"))
    codes = [row["code"] for row in csv.DictReader((tmp_path / "codes.csv").open())]
    officials("election", "open", "leader-2026")

    # Voters cast online (the web layer calls the same ballot box) and keep their receipts.
    receipts = tmp_path / "receipts"
    receipts.mkdir()
    service = Service.open(officials.kit.load(), with_sequencer=True).start()
    try:
        for i, selections in enumerate(ONLINE):
            receipt = service.ballots.cast("leader-2026", codes[i], selections).receipt
            (receipts / f"online-{i}.json").write_text(receipt.to_json(), encoding="utf-8")
        observed_during_poll = service.storage.latest_checkpoint("leader-2026")[1]
    finally:
        service.close()

    # Returned postal forms: two new voters, and one member who already voted online.
    postal = tmp_path / "postal.csv"
    postal.write_text(f"code,leader,board\n{codes[5]},sunak,ann cat\n{codes[6]},truss,\n{codes[0]},sunak,\n")
    out, _ = officials("postal", "record", "leader-2026", "--csv", str(postal), "--receipts", str(receipts))
    assert "3 rows: 2 recorded, 1 duplicate of an online vote" in out
    assert "row 4: duplicate of an online vote: the code was already used online" in out

    _, err = officials("tally", "leader-2026", expect=2)
    assert "is open: close the poll first" in err
    out, _ = officials("election", "close", "leader-2026")
    assert "final checkpoint covers 7 entries" in out

    out, _ = officials("tally", "leader-2026")
    assert "ballots: 7 (online 5, postal 2)" in out
    assert re.search(r"truss\s+4\s+\(online 3, postal 1\)", out)
    assert re.search(r"sunak\s+2\s+\(online 1, postal 1\)", out)
    assert re.search(r"blank\s+1\n", out)

    record = tmp_path / "published" / "record"
    out, err = officials("record", "export", "leader-2026", str(record))
    assert "wrote the record of 'leader-2026'" in out and "the record passes the audit" in out
    assert "OK   recount:" in err
    _, err = officials("record", "export", "leader-2026", str(record), expect=2)
    assert "already exists" in err

    # The auditor: only the record, the ceremony's bundle and the voters' receipts.
    bundle_dir = officials.kit.directory / "keys"
    assert len(list(receipts.glob("*.json"))) == 7
    out, _ = officials("audit", str(record), "--keys", str(bundle_dir), "--receipts", str(receipts))
    assert "PASS: election leader-2026: 7 entries" in out and "7 receipts" in out
    # -q stands alone: the fingerprints to compare are in the note itself, not "above".
    out, err = officials("audit", str(record), "-q")
    assert out.startswith("PASS: election leader-2026: 7 entries") and "above" not in err
    assert re.search(r"the keys were taken from the record itself \(checkpoint key sha256:[0-9a-f]+, "
                     r"tally key sha256:[0-9a-f]+\); compare these fingerprints", err)
    audited = json.loads(officials("audit", str(record), "--json", "--keys", str(bundle_dir))[0])
    assert (audited["result"], audited["election"], audited["entries"], audited["keys_from"]) == \
        ("pass", "leader-2026", 7, "--keys")
    listed = json.loads(officials("election", "list", "--json")[0])
    assert [(e["id"], e["state"], e["entries"], e["codes"]["postal"]) for e in listed] == [("leader-2026", "closed", 7, 2)]

    # Every receipt verifies against the signed tally: consistency from its checkpoint to the final tree.
    bundle = KeyBundle.load(bundle_dir)
    tally_note = (record / "tally.txt").read_text(encoding="utf-8")
    leaves = (record / "entries.jsonl").read_bytes().splitlines()
    tree = LevelTree(b"".join(leaf_hash(x) for x in leaves)).tree()
    for path in sorted(receipts.glob("*.json")):
        receipt = Receipt.from_json(path.read_bytes())
        size = Checkpoint.from_text(parse_note(receipt.checkpoint)[0]).size
        result = verify_receipt(receipt, bundle, tally_note, tree.consistency_proof(size, len(leaves)))
        assert (result.later_tree_size, result.later_key_name) == (7, "test/tally")
        assert leaves[receipt.leaf_index] == receipt.leaf

    # ... and the voter's own command line does the same for one receipt.
    first = Receipt.from_json((receipts / "online-0.json").read_bytes())
    first_size = Checkpoint.from_text(parse_note(first.checkpoint)[0]).size
    (tmp_path / "proof.json").write_text(json.dumps([b64encode(h) for h in tree.consistency_proof(first_size, 7)]))
    out, _ = officials("verify", str(receipts / "online-0.json"), "--keys", str(bundle_dir),
                       "--checkpoint", str(record / "tally.txt"), "--proof", str(tmp_path / "proof.json"))
    assert "the log of 7 entries signed by test/tally contains it" in out
    verified = json.loads(officials("verify", str(receipts / "online-0.json"), "--keys", str(bundle_dir), "--json")[0])
    assert (verified["result"], verified["election"], verified["leaf_index"]) == ("pass", "leader-2026", first.leaf_index)

    # A checkpoint an observer saved during the poll is a prefix of the final tree.
    observed = Checkpoint.from_text(parse_note(observed_during_poll)[0])
    assert tree.root(observed.size) == observed.root_hash


needs_tools = pytest.mark.skipif(not all(shutil.which(t) for t in ("openssl", "jq", "sed", "base64", "bash")),
                                 reason="needs openssl, jq, sed, base64, bash")


@needs_tools
def test_the_signed_tally_verifies_with_the_documented_openssl_recipe(officials, tmp_path):
    (tmp_path / "election.toml").write_text(DEFINITION)
    officials("election", "create", str(tmp_path / "election.toml"))
    officials("codes", "issue", "leader-2026", "--count", "2", "--out", str(tmp_path / "codes.csv"))
    codes = [row["code"] for row in csv.DictReader((tmp_path / "codes.csv").open())]
    officials("election", "open", "leader-2026")
    (tmp_path / "postal.csv").write_text(f"code,leader,board\n{codes[0]},sunak,ann\n")
    officials("postal", "record", "leader-2026", "--csv", str(tmp_path / "postal.csv"))
    officials("election", "close", "leader-2026")
    officials("tally", "leader-2026")
    record = tmp_path / "record"
    officials("record", "export", "leader-2026", str(record), "--no-audit")

    recipe = openssl_recipe()
    assert "openssl dgst -sha256 -verify key.pem -signature sig.der note.txt" in recipe
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = recipe.replace("RECORD=path/to/record", f"RECORD='{record}'")
    result = subprocess.run(["bash", "-euc", script], cwd=scratch, capture_output=True, text=True)
    assert (result.returncode, result.stdout.strip()) == (0, "Verified OK"), result.stderr
    text = (scratch / "note.txt").read_text(encoding="utf-8")
    assert text.startswith("test.hsm-signer.invalid/leader-2026\n1\n") and "\ntally leader sunak 1\n" in text

    (scratch / "note.txt").write_text(text.replace("tally leader sunak 1", "tally leader sunak 2"), encoding="utf-8")
    bad = subprocess.run(["openssl", "dgst", "-sha256", "-verify", "key.pem", "-signature", "sig.der", "note.txt"],
                         cwd=scratch, capture_output=True, text=True)
    assert bad.returncode != 0 and "Verification failure" in bad.stdout + bad.stderr
