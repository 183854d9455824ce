"""The JSON API under ``/api/v1`` (DESIGN.md's public contract; OpenAPI in openapi.py).

Views parse the request, call the core and shape the answer. Errors are WebErrors or
core exceptions (see errors.py). Voting codes travel only in POST bodies; this module
never logs them and never puts them in an answer. Nothing here reads a cookie.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from hsm_signer.bundle import KEYS_FILE
from hsm_signer.canonical import loads_strict
from hsm_signer.errors import FormatError
from hsm_signer.log.checkpoint import MAX_SIZE
from hsm_signer.ballots import SealedBallot
from hsm_signer.log.note import b64decode_strict, b64encode
from hsm_signer.log.sealed import SEALED_FORMAT

from .context import election_record, open_election, service, signed_size, signed_tree
from .errors import WebError
from .security import code_attempt

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE = 1000      # entries per page
DEFAULT_PAGE = 100
MAX_SEALED_B64 = 64 * 1024  # base64 characters: far above any election's sealed ballot
MAX_INDEX = MAX_SIZE  # 2**63 - 1: the largest tree size a checkpoint (and SQLite's INTEGER) holds


# --- request parsing -----------------------------------------------------------------

def json_body(required: dict[str, type]) -> dict:
    """The JSON object body with exactly the ``required`` fields of the given types."""
    return exact_fields(json_object(), required)


def json_object() -> dict:
    """The request's body: a JSON object (strictly parsed), or a WebError saying why not."""
    if not request.is_json:
        raise WebError("unsupported_media_type")
    try:
        data = loads_strict(request.get_data(cache=False))
    except FormatError as exc:  # including over-long integers and too deep nesting
        raise WebError("invalid_json", str(exc)) from None
    if not isinstance(data, dict):
        raise WebError("invalid_request", "the body must be a JSON object")
    return data


def exact_fields(data: dict, required: dict[str, type], what: str = "") -> dict:
    """``data`` if it has exactly the ``required`` fields, of the given types."""
    missing = [name for name in required if name not in data]
    unknown = sorted(set(data) - set(required))
    if missing or unknown:
        problem = f"missing field {missing[0]!r}" if missing else f"unknown field {unknown[0][:40]!r}"
        raise WebError("invalid_request", f"{what}{problem}; send exactly {', '.join(required)}")
    for name, kind in required.items():
        if not isinstance(data[name], kind):
            raise WebError("invalid_request", f"field {what}{name!r} must be a JSON {_json_type(kind)}")
    return data


def _json_type(kind: type) -> str:
    return {str: "string", dict: "object", list: "array", int: "integer"}.get(kind, kind.__name__)


def int_arg(name: str, default: int | None = None) -> int:
    """A non-negative integer query parameter, at most :data:`MAX_INDEX` (checked before
    ``int()`` and SQLite see it). Absent means ``default``; present but empty, or given
    twice, is an error (``?size=`` is not "no size")."""
    values = request.args.getlist(name)
    if not values:
        if default is None:
            raise WebError("invalid_parameter", f"query parameter {name!r} is required")
        return default
    if len(values) > 1:
        raise WebError("invalid_parameter", f"query parameter {name!r} is given {len(values)} times; send it once")
    raw = values[0]
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_INDEX)) or int(raw) > MAX_INDEX:
        raise WebError("invalid_parameter", f"query parameter {name!r} must be an integer from 0 to {MAX_INDEX}")
    return int(raw)


# --- elections -------------------------------------------------------------------------

def _summary(record) -> dict:
    e = record.election
    return {"id": e.id, "title": e.title, "state": record.state, "opens_at": e.opens_at, "closes_at": e.closes_at}


@bp.get("/elections")
def elections():
    return jsonify({"elections": [_summary(r) for r in service().storage.list_elections()]})


@bp.get("/elections/<election_id>")
def election(election_id: str):
    record = election_record(election_id)
    size, _ = signed_size(election_id)
    return jsonify({**record.election.to_dict(), "origin": record.election.log_origin, "state": record.state,
                    "signed_tree_size": size, **sealing_parameters(record.election)})


def sealing_parameters(election) -> dict:
    """What a browser needs to seal a ballot itself: the sealing key and the padded size."""
    box = service().ballots
    if box.sealing_key is None:
        return {"sealing_key": None, "padded_size": None}
    return {"sealing_key": b64encode(box.sealing_key), "padded_size": box.padded_size(election),
            "sealed_format": SEALED_FORMAT}


# --- voting ------------------------------------------------------------------------------

@bp.post("/elections/<election_id>/ballots")
@code_attempt
def cast_ballot(election_id: str):
    open_election(election_id)
    body = json_object()
    if "sealed" in body:  # sealed by the voter's browser: the server never sees the vote
        exact_fields(body, {"code": str, "sealed": dict})
        ballot: object = sealed_ballot(body["sealed"])
    else:  # sealed here at once; the clear selections are never stored, logged or returned
        ballot = exact_fields(body, {"code": str, "selections": dict})["selections"]
    result = service().ballots.cast(election_id, body["code"], ballot)
    return jsonify(result.receipt.to_dict()), (201 if result.new else 200)


def sealed_ballot(sealed: dict) -> SealedBallot:
    """``{"ballot_id", "ciphertext"}`` (base64 of ``enc || ct``) as a SealedBallot; the ballot
    box checks the id's form and the exact length and point."""
    exact_fields(sealed, {"ballot_id": str, "ciphertext": str}, "sealed.")
    text = sealed["ciphertext"]
    if len(text) > MAX_SEALED_B64:
        raise WebError("invalid_request", f"sealed.ciphertext is longer than any sealed ballot "
                                          f"({len(text)} characters; at most {MAX_SEALED_B64})")
    try:
        return SealedBallot(sealed["ballot_id"], b64decode_strict(text, "sealed.ciphertext"))
    except FormatError as exc:  # a well-formed request whose sealed ballot is not one
        raise WebError("invalid_ballot", str(exc)) from None


@bp.post("/elections/<election_id>/code-status")
@code_attempt
def code_status(election_id: str):
    election_record(election_id)
    body = json_body({"code": str})
    # Only unused / online / postal: a code never leads to its ballot, receipt or vote.
    return jsonify({"status": service().ballots.code_status(election_id, body["code"]).status})


# --- the log -----------------------------------------------------------------------------

@bp.get("/elections/<election_id>/checkpoint")
def checkpoint(election_id: str):
    election_record(election_id)
    if "size" in request.args:
        size = int_arg("size")
        note = service().storage.checkpoint_at(election_id, size)
        if note is None:
            raise WebError("checkpoint_not_found")
    else:
        size, note = signed_size(election_id)
        if note is None:
            raise WebError("checkpoint_not_found", "no checkpoint has been signed for this election yet")
    return jsonify({"size": size, "checkpoint": note})


def _size_arg(name: str, signed: int) -> int:
    size = int_arg(name, signed)
    if size > signed:
        raise WebError("invalid_parameter", f"{name} {size} is beyond the latest signed checkpoint (size {signed})")
    return size


@bp.get("/elections/<election_id>/proof/inclusion")
def inclusion_proof(election_id: str):
    election_record(election_id)
    tree = signed_tree(election_id)
    index = int_arg("index")
    size = _size_arg("size", tree.size)
    if index >= size:
        raise WebError("invalid_parameter", f"index {index} is not below size {size}")
    proof = tree.inclusion_proof(index, size)
    return jsonify({"index": index, "size": size, "proof": [b64encode(h) for h in proof]})


@bp.get("/elections/<election_id>/proof/consistency")
def consistency_proof(election_id: str):
    election_record(election_id)
    tree = signed_tree(election_id)
    first = int_arg("from")
    second = _size_arg("to", tree.size)
    if first > second:
        raise WebError("invalid_parameter", f"from {first} is larger than to {second}")
    proof = tree.consistency_proof(first, second)
    return jsonify({"from": first, "to": second, "proof": [b64encode(h) for h in proof]})


@bp.get("/elections/<election_id>/entries")
def entries(election_id: str):
    election_record(election_id)
    signed, _ = signed_size(election_id)
    start = int_arg("start", 0)
    wanted = int_arg("end", start + DEFAULT_PAGE)
    if not start <= wanted <= start + MAX_PAGE:
        raise WebError("invalid_parameter", f"ask for 0 to {MAX_PAGE} entries at a time (start <= end)")
    end = min(wanted, signed)
    leaves = service().storage.entries(election_id, start, end) if start < end else []
    return jsonify({"start": start, "end": max(start, end), "signed_tree_size": signed,
                    "entries": [b64encode(leaf) for leaf in leaves]})


@bp.get("/elections/<election_id>/openings")
def openings(election_id: str):
    """The openings of entries start..end-1 (each entry's HPKE secret and what it opened to),
    published only once the signed tally (which binds their digest) is."""
    election_record(election_id)
    store = service().storage
    if store.get_tally(election_id) is None:
        raise WebError("openings_not_found")
    published = store.openings_count(election_id)
    start = int_arg("start", 0)
    wanted = int_arg("end", start + DEFAULT_PAGE)
    if not start <= wanted <= start + MAX_PAGE:
        raise WebError("invalid_parameter", f"ask for 0 to {MAX_PAGE} openings at a time (start <= end)")
    end = min(wanted, published)
    lines = store.openings(election_id, start, end) if start < end else []
    return jsonify({"start": start, "end": max(start, end), "count": published,
                    "openings": [loads_strict(line.rstrip(b"\n")) for line in lines]})


@bp.get("/elections/<election_id>/tally")
def tally(election_id: str):
    election_record(election_id)
    note = service().storage.get_tally(election_id)
    if note is None:
        raise WebError("tally_not_found")
    return jsonify({"tally": note})


# --- keys and health ----------------------------------------------------------------------

@bp.get("/keys")
def keys():
    svc = service()
    path = Path(svc.config.key_bundle)
    path = path / KEYS_FILE if path.is_dir() else path
    try:
        body = path.read_bytes()  # the published file, byte for byte
    except OSError:
        body = svc.bundle.to_json().encode()
    return Response(body, mimetype="application/json")


@bp.get("/health")
def health():
    svc = service()
    hsm = svc.hsm.health()
    signer = svc.signer_status()
    status = {True: "ok", False: "unavailable", None: "unknown"}[signer["healthy"]]
    seq = {"mode": signer["mode"], "status": status}
    ok = hsm["status"] == "ok" and seq["status"] != "unavailable"
    body = {"status": "ok" if ok else "unavailable", "hsm": {"status": hsm["status"]}, "sequencer": seq}
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    if not ok:
        response.headers["Retry-After"] = "5"
    return response
