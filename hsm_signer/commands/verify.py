"""``hsm-signer verify RECEIPT --keys BUNDLE``: check a receipt with no trust in the server.

Offline: the receipt and the published key bundle are enough. With ``--checkpoint FILE
--proof FILE`` (a later signed checkpoint and a consistency proof, e.g. saved from the
bulletin board) or ``--server URL`` (fetch both from the service), it also checks that
the log has only grown since the receipt was issued. ``--origin`` (or the election as
``--server`` publishes it) pins the log's origin line. After the poll closed, ``--record
DIR`` (the published election record) shows the voter what their own sealed ballot opened
to, checked from the receipt through the signed tally to the published opening. Imports
neither Flask nor pkcs11.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..bundle import KeyBundle
from ..canonical import loads_strict
from ..errors import ConfigError, FormatError, VerificationError
from ..log.checkpoint import Checkpoint
from ..log.note import b64decode_strict, parse_note
from ..log.receipt import Receipt
from ..openings import Opening
from ..verify import summary_line, verify_receipt

MAX_DOWNLOAD = 1 << 20
MAX_FILE = 1 << 20  # receipts, checkpoints and proofs are a few KiB; never read a huge file whole


def register(subparsers) -> None:
    parser = subparsers.add_parser("verify", help="verify a receipt offline against the key bundle")
    parser.add_argument("receipt", help="receipt JSON file")
    parser.add_argument("--keys", required=True, help="key bundle directory (or its keys.json)")
    parser.add_argument("--checkpoint", help="a later signed checkpoint (or signed tally) file")
    parser.add_argument("--proof", help="consistency proof JSON (list of base64 hashes) to --checkpoint")
    parser.add_argument("--server", help="service base URL: fetch its latest checkpoint and a consistency proof")
    parser.add_argument("--origin", help="the election's log origin as published (e.g. vote.example.org/leader-2026); "
                                         "by default any <prefix>/<election> origin the receipt's checkpoint names")
    parser.add_argument("--record", help="after close: the published election record directory; shows what your "
                                         "sealed ballot opened to and checks it was counted")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (fields in docs/AUDIT.md)")
    parser.set_defaults(func=run)


def _read(path: str, what: str) -> bytes:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE:
        raise FormatError(f"{what} {path} is larger than {MAX_FILE} bytes; it cannot be a {what}")
    return data


def _proof(data: object, where: str) -> list[bytes]:
    if isinstance(data, dict):
        data = data.get("proof", data.get("consistency_proof"))
    if not isinstance(data, list) or not all(isinstance(h, str) for h in data):
        raise FormatError(f"{where}: a consistency proof is a JSON list of base64 hashes")
    return [b64decode_strict(h, f"{where}[{i}]") for i, h in enumerate(data)]


def _get_json(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            body = response.read(MAX_DOWNLOAD + 1)
    except urllib.error.HTTPError as exc:
        raise VerificationError(f"the server answered {exc.code} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach {url}: {exc}") from None
    if len(body) > MAX_DOWNLOAD:
        raise FormatError(f"the answer from {url} is larger than {MAX_DOWNLOAD} bytes")
    try:
        return loads_strict(body)
    except FormatError as exc:
        raise FormatError(f"the answer from {url} is not acceptable JSON: {exc}") from None


def _from_server(base: str, receipt: Receipt) -> tuple[str, list[bytes], str | None]:
    api = base.rstrip("/") + f"/api/v1/elections/{urllib.parse.quote(receipt.election)}"
    election = _get_json(api)
    origin = election.get("origin") if isinstance(election, dict) else None
    if origin is not None and not isinstance(origin, str):
        raise FormatError("the server's election answer has an 'origin' that is not a string")
    latest = _get_json(api + "/checkpoint")
    note = latest.get("checkpoint") if isinstance(latest, dict) else None
    if not isinstance(note, str):
        raise FormatError("the server's checkpoint answer has no 'checkpoint' note")
    later_size = Checkpoint.from_text(parse_note(note)[0]).size
    here_size = Checkpoint.from_text(parse_note(receipt.checkpoint)[0]).size
    proof = _get_json(api + f"/proof/consistency?from={here_size}&to={later_size}")
    return note, _proof(proof, "server consistency proof"), origin


def run(args) -> int:
    receipt = Receipt.from_json(_read(args.receipt, "receipt"))
    bundle = KeyBundle.load(args.keys)
    later = proof = None
    origin = args.origin
    if args.server and args.checkpoint:
        raise ConfigError("give --server or --checkpoint, not both")
    if args.checkpoint:
        later = _read(args.checkpoint, "checkpoint").decode("utf-8", "replace")
        if args.proof:
            try:
                proof = _proof(loads_strict(_read(args.proof, "proof")), args.proof)
            except FormatError as exc:
                raise FormatError(f"{args.proof}: {exc}") from None
    elif args.proof:
        raise ConfigError("--proof goes with --checkpoint")
    elif args.server:
        later, proof, served = _from_server(args.server, receipt)
        if origin is not None and served is not None and served != origin:
            raise VerificationError(f"the server publishes election {receipt.election!r} as log {served!r}, not {origin!r}",
                                    "checkpoint.origin")
        origin = origin or served
    try:
        verified = verify_receipt(receipt, bundle, later, proof, origin=origin)
    except VerificationError as exc:
        if args.json:
            print(json.dumps({"result": "fail", "receipt": args.receipt, "error": exc.code, "step": exc.step,
                              "message": str(exc)}, indent=2))
        raise
    opened = _opened(args.record, receipt, bundle) if args.record else None
    if args.json:
        print(json.dumps({"result": "pass", "receipt": args.receipt, "election": verified.election,
                          **({"opening": opened.to_dict()} if opened else {}),
                          "origin": verified.origin, "leaf_index": verified.leaf_index,
                          "tree_size": verified.tree_size, "key_name": verified.key_name,
                          "tracker": verified.tracker, "later_tree_size": verified.later_tree_size,
                          "later_key_name": verified.later_key_name}, indent=2))
        return 0
    print(summary_line(verified))
    if opened is not None:
        print(_opened_text(opened, verified.tracker))
    return 0


def _opened(record: str, receipt: Receipt, bundle: KeyBundle) -> "Opening":
    from ..election import Election
    from ..verify import verify_opened
    root = Path(record)
    try:
        election = Election.from_json((root / "election.json").read_text(encoding="utf-8"))
        tally_note = (root / "tally.txt").read_text(encoding="utf-8")
        entries = (root / "entries.jsonl").read_bytes().split(b"\n")[:-1]
        openings = (root / "openings.jsonl").read_bytes()
    except OSError as exc:
        raise ConfigError(f"{record} is not a complete election record: {exc}") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"{record}: {exc}") from None
    return verify_opened(receipt, bundle, election, tally_note, entries, openings)


def _opened_text(opening: "Opening", tracker: str | None) -> str:
    name = f"ballot {tracker}" if tracker else "your ballot"
    if opening.status != "valid" or opening.selections is None:
        return (f"OPENED: {name} was counted as INVALID (like a spoiled paper ballot): {opening.reason}. "
                "If you cast a valid ballot, report this receipt to the election's officials and observers.")
    chosen = "; ".join(f"{contest}: {', '.join(options) if options else '(blank)'}"
                       for contest, options in opening.selections.items())
    return (f"OPENED: {name} was opened with its published secret and counted as: {chosen}. "
            "Check that this is what you chose.")
