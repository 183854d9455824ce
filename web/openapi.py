"""The OpenAPI 3.1 description of the JSON API, served at ``/api/v1/openapi.json``.

Hand-written so that it reads as the contract it is; a test checks that every API route
is described and that every error code it lists is one errors.py knows.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from .api import DEFAULT_PAGE, MAX_INDEX, MAX_PAGE
from .errors import ERRORS

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict:
    """Error responses grouped by status, naming the error codes each can carry."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERRORS[code][0], []).append(code)
    return {str(status): _json(_ref("Error"), "error: " + ", ".join(sorted(names)))
            for status, names in sorted(by_status.items())}


_ELECTION_ID = {"name": "election_id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"}}
_COMMON = ("rate_limited", "internal_error")


def _query(name: str, description: str, required: bool = True) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INDEX}}


def _get(summary: str, ok: dict, *errors: str, parameters: list | None = None, operation_id: str) -> dict:
    return {"get": {"operationId": operation_id, "summary": summary, "parameters": parameters or [],
                    "responses": {"200": ok, **_errors(*errors, *_COMMON)}}}


def _links(**targets: dict) -> dict:
    """OpenAPI links (what a client, or a stateful fuzzer, can ask next with this answer)."""
    return {"links": {name: {"operationId": name, "parameters": parameters} for name, parameters in targets.items()}}


_SAME_ELECTION = {"election_id": "$request.path.election_id"}
_ELECTION_LINKS = _links(**{op: {"election_id": "$response.body#/id"} for op in (
    "getCheckpoint", "getEntries", "getTally", "getInclusionProof", "getConsistencyProof", "castBallot",
    "getCodeStatus")})


_B64_LIST = {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error", "message"], "properties": {
        "error": {"type": "string", "enum": sorted(ERRORS)},
        "message": {"type": "string", "description": "for people; may change"},
        "ballot_id": {"type": "string", "description": "receipt_pending: the stored ballot"},
        "code_status": {"type": "string", "enum": ["online", "postal"], "description": "code_used: how"}}},
    "Receipt": {"type": "object", "description": "receipt v2 of a sealed ballot (leaf v2, with its tracker), or "
                                                "v1 of an election without a sealing key (docs/FORMATS.md)",
                "required": ["version", "election", "leaf_index", "leaf", "inclusion_proof", "checkpoint"],
                "additionalProperties": False, "properties": {
                    "version": {"enum": ["hsm-signer/receipt/v2", "hsm-signer/receipt/v1"]},
                    "election": {"type": "string"},
                    "leaf_index": {"type": "integer", "minimum": 0},
                    "leaf": {"type": "string", "contentEncoding": "base64"},
                    "tracker": {"type": "string", "pattern": "^[0-9a-f]{4}(-[0-9a-f]{4}){3}$",
                                "description": "v2 only: the ballot tracker (grouped 64-bit prefix of the leaf hash)"},
                    "inclusion_proof": _B64_LIST,
                    "checkpoint": {"type": "string", "description": "signed note (c2sp.org/tlog-checkpoint)"}},
                "if": {"properties": {"version": {"const": "hsm-signer/receipt/v2"}}},
                "then": {"required": ["tracker"]}, "else": {"not": {"required": ["tracker"]}}},
    "ElectionSummary": {"type": "object", "properties": {
        "id": {"type": "string"}, "title": {"type": "string"},
        "state": {"type": "string", "enum": ["draft", "open", "closed"]},
        "opens_at": {"type": ["string", "null"]}, "closes_at": {"type": ["string", "null"]}}},
    "Election": {"allOf": [_ref("ElectionSummary"), {"type": "object", "properties": {
        "origin": {"type": "string", "description": "the origin line of the election's checkpoints"},
        "signed_tree_size": {"type": "integer"},
        "sealing_key": {"type": ["string", "null"], "contentEncoding": "base64",
                        "description": "the sealing public key (uncompressed P-256 point) ballots are sealed to "
                                       "with HPKE; null for an election without sealed ballots"},
        "padded_size": {"type": ["integer", "null"], "minimum": 64,
                        "description": "every sealed plaintext is padded with zero bytes to this length"},
        "sealed_format": {"type": "string", "description": "the sealed-ballot format (docs/FORMATS.md)"},
        "contests": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "max_choices": {"type": "integer"},
            "options": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "title": {"type": "string"}}}}}}}}}]},
    "Ballot": {"oneOf": [
        {"type": "object", "required": ["code", "selections"], "additionalProperties": False,
         "description": "sealed by the server at once; the selections are never stored, logged or returned",
         "properties": {
             "code": {"type": "string", "description": "the voting code (only ever in this body)"},
             "selections": {"type": "object", "description": "every contest id -> chosen option ids "
                            "([] for a blank vote)",
                            "additionalProperties": {"type": "array", "items": {"type": "string"}}}}},
        {"type": "object", "required": ["code", "sealed"], "additionalProperties": False,
         "description": "sealed by the client to the election's sealing_key: the server never sees the vote",
         "properties": {
             "code": {"type": "string", "description": "the voting code (only ever in this body)"},
             "sealed": {"type": "object", "required": ["ballot_id", "ciphertext"], "additionalProperties": False,
                        "properties": {
                            "ballot_id": {"type": "string", "pattern": "^[0-9a-f]{32}$",
                                          "description": "fresh random 128-bit id, bound into the sealing"},
                            "ciphertext": {"type": "string", "contentEncoding": "base64",
                                           "pattern": "^[A-Za-z0-9+/]*={0,2}$",
                                           "description": "HPKE enc || ct: exactly 65 + padded_size + 16 bytes"}}}}}]},
    "CodeQuery": {"type": "object", "required": ["code"], "additionalProperties": False,
                  "properties": {"code": {"type": "string"}}},
    "CodeStatus": {"type": "object", "required": ["status"], "additionalProperties": False,
                   "description": "all a code tells: never its ballot, receipt or selections", "properties": {
                       "status": {"type": "string", "enum": ["unused", "online", "postal"]}}},
    "Checkpoint": {"type": "object", "properties": {"size": {"type": "integer"}, "checkpoint": {"type": "string"}}},
    "Tally": {"type": "object", "properties": {"tally": {"type": "string", "description": "signed note"}}},
    "Openings": {"type": "object", "properties": {
        "start": {"type": "integer"}, "end": {"type": "integer"},
        "count": {"type": "integer", "description": "openings published (one per log entry)"},
        "openings": {"type": "array", "description": "openings.jsonl lines (docs/FORMATS.md): index, ballot_id, "
                     "shared_secret (base64 HPKE secret that opens the entry), status, selections or reason",
                     "items": {"type": "object"}}}},
    "InclusionProof": {"type": "object", "properties": {
        "index": {"type": "integer"}, "size": {"type": "integer"}, "proof": _B64_LIST}},
    "ConsistencyProof": {"type": "object", "properties": {
        "from": {"type": "integer"}, "to": {"type": "integer"}, "proof": _B64_LIST}},
    "Entries": {"type": "object", "properties": {
        "start": {"type": "integer"}, "end": {"type": "integer"}, "signed_tree_size": {"type": "integer"},
        "entries": {**_B64_LIST, "description": "exact leaf bytes (canonical JSON), indexes start..end-1"}}},
    "Health": {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "hsm": {"type": "object", "properties": {"status": {"type": "string"}}},
        "sequencer": {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["in-process", "external"]}, "status": {"type": "string"}}}}},
}


#: Answered by the HTTP server (gunicorn) before the application sees the request, so
#: as its own short text page, not as JSON: documented on every operation all the same,
#: because a client can get them from any of them.
SERVER_LIMITS = {
    "414": {"description": "the request line (path and query) is longer than the server reads (4,094 bytes)"},
    "431": {"description": "the request's header fields are larger than the server reads"},
}


def document() -> dict:
    doc = _document()
    for operations in doc["paths"].values():
        for operation in operations.values():
            operation["responses"].update(SERVER_LIMITS)
    return doc


def _document() -> dict:
    eid = [_ELECTION_ID]
    return {
        "openapi": "3.1.0",
        "info": {"title": "hsm-signer", "version": "1",
                 "description": "Hardware-backed ballot signing: cast ballots with a voting code and get "
                                "HSM-signed receipts; read the public log. Errors are "
                                "{\"error\": <stable code>, \"message\": <text>}; see docs/WEB.md."},
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/elections": _get("List elections", {**_json({"type": "object", "properties": {
                "elections": {"type": "array", "items": _ref("ElectionSummary")}}}, "elections"),
                **_links(getElection={"election_id": "$response.body#/elections/0/id"})},
                operation_id="listElections"),
            "/elections/{election_id}": _get("One election with its contests",
                                             {**_json(_ref("Election"), "the election"), **_ELECTION_LINKS},
                                             "election_not_found", parameters=eid, operation_id="getElection"),
            "/elections/{election_id}/ballots": {"post": {
                "operationId": "castBallot",
                "summary": "Cast a ballot with a voting code; returns its signed receipt",
                "parameters": eid,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Ballot")}}},
                "responses": {
                    "201": {**_json(_ref("Receipt"), "stored and signed: the receipt"), **_links(
                        getInclusionProof={**_SAME_ELECTION, "index": "$response.body#/leaf_index"})},
                    "200": _json(_ref("Receipt"), "the same ballot was already cast with this code: its receipt"),
                    **_errors("invalid_json", "invalid_request", "invalid_code", "election_not_found", "code_used",
                              "poll_not_open", "payload_too_large", "unsupported_media_type", "invalid_ballot",
                              "hsm_unavailable", "receipt_pending", *_COMMON)}}},
            "/elections/{election_id}/code-status": {"post": {
                "operationId": "getCodeStatus",
                "summary": "Whether a voting code is unused, used online or used by post",
                "parameters": eid,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CodeQuery")}}},
                "responses": {"200": _json(_ref("CodeStatus"), "the code's status"),
                              **_errors("invalid_json", "invalid_request", "invalid_code", "election_not_found",
                                        "payload_too_large", "unsupported_media_type", "hsm_unavailable",
                                        *_COMMON)}}},
            "/elections/{election_id}/checkpoint": _get(
                "The latest signed checkpoint, or the one of a given size",
                {**_json(_ref("Checkpoint"), "checkpoint"), **_links(
                    getConsistencyProof={**_SAME_ELECTION, "to": "$response.body#/size"},
                    getEntries={**_SAME_ELECTION, "end": "$response.body#/size"})},
                "election_not_found", "checkpoint_not_found", "invalid_parameter", operation_id="getCheckpoint",
                parameters=eid + [_query("size", "the tree size of an earlier checkpoint", False)]),
            "/elections/{election_id}/proof/inclusion": _get(
                "Inclusion proof of a leaf in a signed tree", _json(_ref("InclusionProof"), "proof"),
                "election_not_found", "invalid_parameter", operation_id="getInclusionProof",
                parameters=eid + [_query("index", "leaf index (below size)"),
                                  _query("size", "tree size, at most the latest signed (default: latest signed)",
                                         False)]),
            "/elections/{election_id}/proof/consistency": _get(
                "Consistency proof between two signed tree sizes", _json(_ref("ConsistencyProof"), "proof"),
                "election_not_found", "invalid_parameter", operation_id="getConsistencyProof",
                parameters=eid + [_query("from", "earlier tree size (at most to)"),
                                  _query("to", "later tree size, at most the latest signed (default: latest signed)",
                                         False)]),
            "/elections/{election_id}/entries": _get(
                f"Log entries start..end-1 (at most {MAX_PAGE}; default {DEFAULT_PAGE}), signed ones only",
                _json(_ref("Entries"), "entries"), "election_not_found", "invalid_parameter", operation_id="getEntries",
                parameters=eid + [_query("start", "first index", False),
                                  _query("end", f"one past the last (start <= end <= start + {MAX_PAGE})", False)]),
            "/elections/{election_id}/openings": _get(
                f"Openings of sealed ballots start..end-1 (at most {MAX_PAGE}), published with the signed tally",
                _json(_ref("Openings"), "openings"), "election_not_found", "openings_not_found", "invalid_parameter",
                parameters=eid + [_query("start", "first index", False), _query("end", "one past the last", False)],
                operation_id="getOpenings"),
            "/elections/{election_id}/tally": _get("The signed tally", _json(_ref("Tally"), "tally"),
                                                   "election_not_found", "tally_not_found", parameters=eid,
                                                   operation_id="getTally"),
            "/keys": _get("The ceremony's key bundle (keys.json)",
                          _json({"type": "object"}, "keys.json, byte for byte"), operation_id="getKeys"),
            "/health": {"get": {"operationId": "getHealth", "summary": "HSM and sequencer health",
                                "responses": {"200": _json(_ref("Health"), "healthy"),
                                              "503": _json(_ref("Health"), "the HSM or the signer is unavailable"),
                                              **_errors("rate_limited")}}},
            "/openapi.json": _get("This document", _json({"type": "object"}, "OpenAPI 3.1"),
                                  operation_id="getOpenApi"),
        },
        "components": {"schemas": SCHEMAS},
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(document())
