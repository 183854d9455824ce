"""Run every shared vector through the Python implementation and describe each outcome.

An outcome is a small JSON-able dict: ``{"valid": True, ...what was established}`` or
``{"valid": False, "kind": "format" | "verification" | "root-mismatch", "code": ..., "step": ...}``
(``code`` is the error's stable :attr:`VerificationError.code`; ``step`` the receipt check's step).
``tests/js/run-vectors.js`` produces the same dicts from the browser implementation, so
the test can compare the two implementations vector by vector (and both with the
expectation written in the vector file).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from hsm_signer.bundle import TALLY, KeyBundle
from hsm_signer.canonical import canonicalize, loads_strict
from hsm_signer.errors import FormatError, RootMismatchError, VerificationError
from hsm_signer.log.checkpoint import Checkpoint
from hsm_signer.log.merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion
from hsm_signer.log.note import NoteVerifier, open_note
from hsm_signer.log.receipt import Receipt
from hsm_signer.verify import verify_receipt

from merkle_reference import root_from_leaf_hashes

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
H = bytes.fromhex
B64 = base64.b64decode


def kind_of(exc: VerificationError) -> str:
    if isinstance(exc, FormatError):
        return "format"
    if isinstance(exc, RootMismatchError):
        return "root-mismatch"
    return "verification"


def failed(exc: VerificationError, step: str | None = None) -> dict:
    out = {"valid": False, "kind": kind_of(exc), "code": exc.code, "message": str(exc)}
    if step is not None:
        out["step"] = step
    return out


def vector_files() -> list[str]:
    """Every vector file both implementations run, as paths relative to tests/vectors."""
    files = [
        *sorted(VECTORS.glob("rfc6962/inclusion/*/*.json")),
        *sorted(VECTORS.glob("rfc6962/consistency/*/*.json")),
        *sorted(VECTORS.glob("upstream/transparency-dev-merkle/*/*/*.json")),
        VECTORS / "rfc6962" / "tree.json",
        *sorted(VECTORS.glob("signed-note/*.json")),
        *sorted(VECTORS.glob("jcs/*.json")),
        *sorted(VECTORS.glob("browser-*.json")),
    ]
    return [p.relative_to(VECTORS).as_posix() for p in files]


# --- per-format runners: each returns {case id: outcome} ----------------------------------

def _run(check) -> dict:
    try:
        result = check()
    except VerificationError as exc:
        return failed(exc)
    return {"valid": True, **(result or {})}


def merkle_vector(rel: str, v: dict) -> dict:
    if "leafIdx" in v or "wantErr" in v:  # upstream transparency-dev format, base64
        proof = [B64(p) for p in v["proof"]]
        if "leafIdx" in v:
            return {rel: _run(lambda: verify_inclusion(B64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, B64(v["root"])))}
        return {rel: _run(lambda: verify_consistency(v["size1"], v["size2"], proof, B64(v["root1"]), B64(v["root2"])))}
    proof = [H(p) for p in v["proof"]]
    if "leaf_index" in v:
        return {rel: _run(lambda: verify_inclusion(H(v["leaf_hash"]), v["leaf_index"], v["tree_size"], proof, H(v["root"])))}
    return {rel: _run(lambda: verify_consistency(v["size1"], v["size2"], proof, H(v["root1"]), H(v["root2"])))}


def tree_vector(rel: str, v: dict) -> dict:
    hashes = [leaf_hash(H(x)) for x in v["leaves"]]
    out = {f"{rel}#leaf-hashes": {"valid": True, "hashes": [h.hex() for h in hashes]}}
    for level in range(1, len(v["node_hashes"])):
        below = v["node_hashes"][level - 1]
        out[f"{rel}#level-{level}"] = {
            "valid": True, "hashes": [node_hash(H(below[2 * i]), H(below[2 * i + 1])).hex() for i in range(len(below) // 2)]}
    for size in range(len(v["roots"])):
        out[f"{rel}#root-{size}"] = {"valid": True, "root": root_from_leaf_hashes(hashes[:size]).hex()}
    return out


def _verifier(vkey: str) -> dict:
    v = NoteVerifier.from_string(vkey)
    return {"key_name": v.name, "key_id": v.key_id.hex(), "type": v.signature_type}


def _open(note, vkeys: list[str]) -> dict:
    text, names = open_note(note, [NoteVerifier.from_string(k) for k in vkeys])
    return {"text": text, "signed_by": names}


def go_note_vector(rel: str, v: dict) -> dict:
    out = {f"{rel}#verifier-key": _run(lambda: _verifier(v["verifier_key"])),
           f"{rel}#second-verifier-key": _run(lambda: _verifier(v["second_verifier_key"])),
           f"{rel}#note": _run(lambda: _open(v["note"], [v["verifier_key"]])),
           f"{rel}#two-signatures-one-trusted": _run(lambda: _open(v["note"] + v["second_signature_line"], [v["verifier_key"]])),
           f"{rel}#two-signatures-both-trusted": _run(
               lambda: _open(v["note"] + v["second_signature_line"], [v["verifier_key"], v["second_verifier_key"]])),
           f"{rel}#two-signatures-none-trusted": _run(lambda: _open(v["note"] + v["second_signature_line"], [])),
           f"{rel}#invalid-utf8": _run(lambda: _open(H(v["invalid_utf8_note_hex_prefix"]) + v["note"].encode(), [v["verifier_key"]]))}
    for name, vkey in v["bad_verifier_keys"].items():
        out[f"{rel}#bad-verifier-key/{name}"] = _run(lambda vkey=vkey: _verifier(vkey))
    for name, note in v["malformed_notes"].items():
        out[f"{rel}#malformed-note/{name}"] = _run(lambda note=note: _open(note, [v["verifier_key"]]))
    return out


def ecdsa_note_vector(rel: str, v: dict) -> dict:
    def checkpoint():
        opened = _open(v["note"], [v["verifier_key"]])
        cp = Checkpoint.from_text(opened["text"])
        return {**opened, "origin": cp.origin, "size": str(cp.size), "root": base64.b64encode(cp.root_hash).decode()}

    out = {f"{rel}#verifier-key": _run(lambda: _verifier(v["verifier_key"])), f"{rel}#note": _run(checkpoint)}
    for name, vkey in v["bad_verifier_keys"].items():
        out[f"{rel}#bad-verifier-key/{name}"] = _run(lambda vkey=vkey: _verifier(vkey))
    for name, note in v["bad_notes"].items():
        out[f"{rel}#bad-note/{name}"] = _run(lambda note=note: _open(note, [v["verifier_key"]]))
    return out


def jcs_vector(rel: str, v: dict) -> dict:
    return {rel: _run(lambda: {"canonical": canonicalize(loads_strict(v["input"].encode("utf-8"))).decode("utf-8")})}


def browser_notes(rel: str, v: dict) -> dict:
    out = {}
    for case in v["notes"]:
        note = case["note"].encode("utf-8") if case.get("as_bytes") else case["note"]
        out[f"{rel}#note/{case['name']}"] = _run(lambda note=note, keys=case["verifier_keys"]: _open(note, keys))
    for case in v["verifier_keys"]:
        out[f"{rel}#verifier-key/{case['name']}"] = _run(lambda vkey=case["vkey"]: _verifier(vkey))
    return out


def browser_checkpoints(rel: str, v: dict) -> dict:
    def parse(text: str) -> dict:
        cp = Checkpoint.from_text(text)
        return {"origin": cp.origin, "size": str(cp.size), "root": base64.b64encode(cp.root_hash).decode(),
                "extensions": list(cp.extensions)}

    return {f"{rel}#{case['name']}": _run(lambda text=case["text"]: parse(text)) for case in v["checkpoints"]}


def receipt_outcome(case: dict, bundles: dict) -> dict:
    try:
        bundle = KeyBundle.from_json(bundles[case["bundle"]])
    except FormatError as exc:
        return failed(exc, "keys")
    try:
        receipt = Receipt.from_json(case["receipt"])
    except FormatError as exc:
        return failed(exc, "receipt")
    proof = case.get("consistency_proof")
    try:
        result = verify_receipt(receipt, bundle, case.get("later_checkpoint"),
                                None if proof is None else [B64(p) for p in proof], origin=case.get("expected_origin"))
    except VerificationError as exc:
        assert exc.step is not None, f"verify_receipt raised without naming its step: {exc}"
        return failed(exc, exc.step)
    out = {"valid": True, "leaf_index": result.leaf_index, "tree_size": result.tree_size, "ballot_id": result.ballot_id,
           "origin": result.origin}
    if result.later_tree_size is not None:
        out["later_tree_size"] = result.later_tree_size
        if any(k.purpose == TALLY for k in bundle.keys) and result.later_key_name == bundle.key(TALLY).note_key_name:
            text, _ = open_note(case["later_checkpoint"], [bundle.verifier(TALLY)])
            out["tally"] = [line for line in Checkpoint.from_text(text).extensions if line.startswith("tally ")]
    return out


def browser_receipts(rel: str, v: dict) -> dict:
    return {f"{rel}#{case['name']}": receipt_outcome(case, v["bundles"]) for case in v["receipts"]}


def outcomes(rel: str) -> dict:
    """{case id: outcome} for one vector file (path relative to tests/vectors)."""
    v = json.loads((VECTORS / rel).read_text(encoding="utf-8"))
    if rel.startswith(("rfc6962/inclusion/", "rfc6962/consistency/", "upstream/")):
        return merkle_vector(rel, v)
    if rel == "rfc6962/tree.json":
        return tree_vector(rel, v)
    if rel == "signed-note/go-sumdb-note.json":
        return go_note_vector(rel, v)
    if rel == "signed-note/transparency-dev-formats-ecdsa.json":
        return ecdsa_note_vector(rel, v)
    if rel.startswith("jcs/"):
        return jcs_vector(rel, v)
    if rel == "browser-notes.json":
        return browser_notes(rel, v)
    if rel == "browser-checkpoints.json":
        return browser_checkpoints(rel, v)
    if rel == "browser-receipts.json":
        return browser_receipts(rel, v)
    raise AssertionError(f"no runner for vector file {rel}")


def expectations(rel: str) -> dict:
    """{case id: expected outcome subset} written in the vector file itself (where it says)."""
    v = json.loads((VECTORS / rel).read_text(encoding="utf-8"))
    if rel.startswith("rfc6962/") and rel != "rfc6962/tree.json":
        return {rel: {"valid": v["valid"]}}
    if rel.startswith("upstream/"):
        return {rel: {"valid": not v["wantErr"]}}
    if rel == "rfc6962/tree.json":
        out = {f"{rel}#leaf-hashes": {"valid": True, "hashes": v["node_hashes"][0]}}
        for level in range(1, len(v["node_hashes"])):
            out[f"{rel}#level-{level}"] = {"valid": True, "hashes": v["node_hashes"][level]}
        for size, root in enumerate(v["roots"]):
            out[f"{rel}#root-{size}"] = {"valid": True, "root": root}
        return out
    if rel == "signed-note/go-sumdb-note.json":
        out = {f"{rel}#verifier-key": {"valid": True, "key_name": "PeterNeumann", "key_id": "c74f20a3", "type": 1},
               f"{rel}#second-verifier-key": {"valid": True, "key_name": "EnochRoot", "key_id": "af0cfe78", "type": 1},
               f"{rel}#note": {"valid": True, "text": v["text"], "signed_by": ["PeterNeumann"]},
               f"{rel}#two-signatures-one-trusted": {"valid": True, "signed_by": ["PeterNeumann"]},
               f"{rel}#two-signatures-both-trusted": {"valid": True, "signed_by": ["PeterNeumann", "EnochRoot"]},
               f"{rel}#two-signatures-none-trusted": {"valid": False, "kind": "verification"},
               f"{rel}#invalid-utf8": {"valid": False, "kind": "format"}}
        out.update({f"{rel}#bad-verifier-key/{n}": {"valid": False, "kind": "format"} for n in v["bad_verifier_keys"]})
        out.update({f"{rel}#malformed-note/{n}": {"valid": False, "kind": "format"} for n in v["malformed_notes"]})
        return out
    if rel == "signed-note/transparency-dev-formats-ecdsa.json":
        cp = v["checkpoint"]
        out = {f"{rel}#verifier-key": {"valid": True, "key_name": "rekor.sigstore.dev", "key_id": "c0d23d6a", "type": 2},
               f"{rel}#note": {"valid": True, "origin": cp["origin"], "size": str(cp["size"]), "root": cp["root_hash_base64"]}}
        out.update({f"{rel}#bad-verifier-key/{n}": {"valid": False, "kind": "format"} for n in v["bad_verifier_keys"]})
        out.update({f"{rel}#bad-note/{n}": {"valid": False} for n in v["bad_notes"]})
        return out
    if rel.startswith("jcs/"):
        return {rel: {"valid": False, "kind": "format"} if v.get("rejected") else {"valid": True, "canonical": v["output"]}}
    fields = ("valid", "kind", "code", "step", "text", "signed_by", "key_name", "key_id", "type", "origin", "size", "root",
              "extensions", "leaf_index", "tree_size", "ballot_id", "later_tree_size", "tally")

    def pick(case: dict) -> dict:
        return {k: case[k] for k in fields if k in case}

    if rel == "browser-notes.json":
        out = {f"{rel}#note/{c['name']}": pick(c) for c in v["notes"]}
        out.update({f"{rel}#verifier-key/{c['name']}": pick(c) for c in v["verifier_keys"]})
        return out
    if rel == "browser-checkpoints.json":
        return {f"{rel}#{c['name']}": {k: w for k, w in pick(c).items() if k != "text"} for c in v["checkpoints"]}
    if rel == "browser-receipts.json":
        return {f"{rel}#{c['name']}": pick(c) for c in v["receipts"]}
    raise AssertionError(f"no expectations for vector file {rel}")
