"""Error answers: one stable ``error`` code and a human message, never a stack trace.

Every failure a client can cause or meet has a row in :data:`ERRORS` (the table
docs/WEB.md and the OpenAPI document repeat). Views raise :class:`WebError`, or let a
core exception through; :func:`from_exception` turns core exceptions into WebErrors.
Under ``/api/`` the answer is JSON ``{"error": ..., "message": ...}``; elsewhere the same
code and message are rendered as an HTML page.

Messages come from this table or from the core's own voter-facing messages, which never
contain a voting code or a PIN; HSM errors are replaced by a generic message because
theirs name tokens and modules.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, current_app, g, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from hsm_signer.ballots import CodeUsedError, InvalidCodeError, ReceiptPendingError
from hsm_signer.election import BallotError
from hsm_signer.errors import HsmError, HsmUnavailableError, PollNotOpenError, UnknownElectionError
from hsm_signer.intake import IntakeClosedError
from hsm_signer.record import RecordBusyError

log = logging.getLogger(__name__)

#: error code -> (HTTP status, default message)
ERRORS: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "the request body is not valid JSON"),
    "invalid_request": (400, "the request is not well formed"),
    "invalid_parameter": (400, "a query parameter is missing or out of range"),
    "csrf_failed": (400, "the form expired or did not come from this site; reload the page and try again"),
    "draft_expired": (400, "your voting session has ended (it lasts 30 minutes); please enter your code again"),
    "invalid_code": (403, InvalidCodeError().args[0]),
    "not_found": (404, "there is nothing at this address"),
    "election_not_found": (404, "there is no such election"),
    "checkpoint_not_found": (404, "no signed checkpoint of that size exists yet"),
    "receipt_not_found": (404, "there is no ballot with this id in this election"),
    "tally_not_found": (404, "the tally has not been signed yet"),
    "openings_not_found": (404, "the openings of the sealed ballots are published with the signed tally, after the close"),
    "method_not_allowed": (405, "this method is not allowed here"),
    "code_used": (409, "this voting code has already been used"),
    "poll_not_open": (409, "the poll for this election is not open"),
    "payload_too_large": (413, "the request body is too large"),
    "unsupported_media_type": (415, "send the request body as application/json"),
    "invalid_ballot": (422, "the selections do not fit the ballot"),
    "rate_limited": (429, "too many requests; wait a little and try again"),
    "internal_error": (500, "something went wrong on our side; please try again later"),
    "hsm_unavailable": (503, "the signing hardware is unavailable; nothing was recorded, please try again shortly"),
    "receipt_pending": (503, ReceiptPendingError("").args[0]),
    "unhealthy": (503, "the service cannot take ballots right now"),
    "record_busy": (503, "the election record is being prepared; try again in a few seconds"),
}


class WebError(Exception):
    """An answer with a stable error code; ``extra`` fields join the JSON body."""

    def __init__(self, code: str, message: str | None = None, *, headers: dict | None = None, **extra):
        self.code = code
        self.status = ERRORS[code][0]
        self.message = message or ERRORS[code][1]
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.message)


def restored(code: str, message: str) -> WebError:
    """A refusal carried from a POST to the page its redirect shows (``code``, ``message``:
    from a sealed cookie, so this service's own; an unknown code is a plain bad request)."""
    if code not in ERRORS:
        return WebError("invalid_request")
    return WebError(code, message, headers={"Retry-After": retry_after()} if code == "hsm_unavailable" else None)


def retry_after() -> str:
    """Seconds a client should wait before retrying after an HSM outage."""
    service = current_app.extensions["hsm_signer"].service
    return str(max(1, math.ceil(service.config.hsm.down_retry_interval)))


def _rate_limit_retry_after() -> str:
    """Seconds until the limit this request broke lets the client in again."""
    current = current_app.extensions["hsm_signer_limiter"].current_limit
    if current is None:
        return "60"
    return str(max(1, math.ceil(current.reset_at - time.time())))


def expected_error(exc: Exception) -> WebError:
    """The WebError for a core exception a view caught on purpose; anything else is re-raised (a 500)."""
    error = from_exception(exc)
    if error is None:
        raise exc
    return error


def from_exception(exc: Exception) -> WebError | None:
    """The WebError for a core exception, or None if it is not one the web layer expects.

    A wrong (well-formed) code is also marked on ``g``: the wrong-code budget counts it.
    """
    if isinstance(exc, WebError):
        return exc
    if isinstance(exc, InvalidCodeError):
        if not exc.malformed:  # a malformed code cost no HSM call: it costs no budget either
            g.code_attempt_failed = True  # counted by the wrong-code budget (security.py)
        return WebError("invalid_code", str(exc))
    if isinstance(exc, CodeUsedError):
        return WebError("code_used", str(exc), code_status=exc.status)
    if isinstance(exc, BallotError):
        return WebError("invalid_ballot", str(exc))
    if isinstance(exc, ReceiptPendingError):
        return WebError("receipt_pending", headers={"Retry-After": "2"}, ballot_id=exc.ballot_id)
    if isinstance(exc, HsmUnavailableError):
        return WebError("hsm_unavailable", headers={"Retry-After": retry_after()})
    if isinstance(exc, HsmError):
        log.error("HSM error: %s", exc)
        return WebError("hsm_unavailable", headers={"Retry-After": retry_after()})
    if isinstance(exc, IntakeClosedError):  # shutting down: nothing was stored
        return WebError("unhealthy", str(exc), headers={"Retry-After": "5"})
    if isinstance(exc, PollNotOpenError):  # e.g. closed between our state check and the cast
        return WebError("poll_not_open", str(exc))
    if isinstance(exc, RecordBusyError):  # one export at a time: come back for the finished archive
        return WebError("record_busy", headers={"Retry-After": "5"})
    if isinstance(exc, UnknownElectionError):
        return WebError("election_not_found")
    return None


_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type", 429: "rate_limited"}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def render(error: WebError):
    """The response for ``error``: JSON under /api/, an HTML page elsewhere."""
    if wants_json():
        response = jsonify({"error": error.code, "message": gettext(error.message), **error.extra})
    else:
        response = current_app.make_response(
            render_template("error.html", error=error, ballot_id=error.extra.get("ballot_id")))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _http_error(exc: HTTPException):
    code = _HTTP_CODES.get(exc.code or 500)
    if code is None:
        return render(WebError("internal_error")) if (exc.code or 500) >= 500 else _generic(exc)
    error = WebError(code)
    if exc.code == 429:
        error.headers["Retry-After"] = _rate_limit_retry_after()
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        error.headers["Allow"] = ", ".join(exc.valid_methods)
    return render(error)


def _generic(exc: HTTPException):
    """An HTTP error without its own row: keep the status, use a plain message."""
    response = render(WebError("invalid_request", exc.name))
    response.status_code = exc.code or 400
    return response


def _any_error(exc: Exception):
    error = from_exception(exc)
    if error is None:
        # A bug: the log gets the traceback, the client never does.
        log.exception("unhandled error on %s %s", request.method, request.path)
        error = WebError("internal_error")
    return render(error)


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _any_error)
