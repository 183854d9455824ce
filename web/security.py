"""Request hardening: security headers, CSRF on HTML forms, rate limits, the session key.

* Headers on every response (pages, API, static files, errors): a strict CSP with no
  inline script or style, nosniff, no referrer, no framing; HSTS only when
  ``server.behind_tls`` says TLS is terminated in front of us.
* CSRF: HTML forms carry a per-session token kept in Flask's signed session cookie
  (SameSite=Strict, HttpOnly, Secure behind TLS); every POST outside ``/api/`` must
  echo it. The session holds nothing else, in particular never a voting code. The JSON
  API reads no cookies and takes only ``application/json`` bodies, so a forged
  cross-site request has no ambient credential to borrow and cannot send JSON without
  a CORS preflight we never grant.
* Rate limits, keyed by client (an IPv4 address or an IPv6 /64, :func:`.attempts.client_key`):
  a default limit on every route (Flask-Limiter), and on every view marked
  :func:`code_attempt` the wrong-code budget of :mod:`.attempts` (per client, escalating
  delay, counted before the check; wrong guesses are what an attacker makes, so correct
  and malformed codes cost nothing and voters behind a shared address keep working).
  No limit is global: an abnormal overall failure rate only alerts the operators.

Limits are app config (``RATELIMIT_*``, ``CODE_FAILURE*``), settable through environment
variables with the ``HSM_SIGNER_WEB_`` prefix. Both are kept per process.
"""

from __future__ import annotations

import functools
import hmac
import math
import secrets
from pathlib import Path
from typing import Callable

from flask import Flask, current_app, g, request, session
from flask_limiter import Limiter
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from hsm_signer.ballots import InvalidCodeError
from hsm_signer.errors import ConfigError

from .attempts import AttemptPolicy, CodeAttempts, client_key
from .errors import WebError

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HSTS = "max-age=63072000; includeSubDomains"
CSRF_FIELD = "csrf_token"
MIN_SECRET_KEY = 32

DEFAULTS = {
    "MAX_CONTENT_LENGTH": 16 * 1024,
    "RATELIMIT_DEFAULT": "600 per minute",
    # The wrong-code budget per client (attempts.AttemptPolicy; docs/WEB.md has the arithmetic).
    "CODE_FAILURES_FREE": AttemptPolicy.free,
    "CODE_FAILURE_DELAY": AttemptPolicy.first_delay,
    "CODE_FAILURE_MAX_DELAY": AttemptPolicy.max_delay,
    "CODE_FAILURES_FORGET": AttemptPolicy.forget,
    "CODE_FAILURES_ALERT_PER_MINUTE": AttemptPolicy.alert_per_minute,
    "RATELIMIT_STORAGE_URI": "memory://",
    # Flask-Limiter's own headers would put a window-reset Retry-After on every response,
    # 503s included; errors.py sets Retry-After on 429s from the breached limit instead.
    "RATELIMIT_HEADERS_ENABLED": False,
    "PROXY_FIX_X_FOR": 0,  # trusted proxy hops in X-Forwarded-For; 0 = trust none
    "SESSION_COOKIE_NAME": "hsm_signer_session",
    "SESSION_COOKIE_SAMESITE": "Strict",
    "SESSION_COOKIE_HTTPONLY": True,
}


def code_attempt(view: Callable) -> Callable:
    """Mark a view that checks a voting code: it gets the failed-attempt limits."""
    view.code_attempt = True  # type: ignore[attr-defined]
    return view


def load_secret_key(path: Path | None) -> bytes:
    """The session-signing key: from ``server.secret_key_file``, else fresh for this process."""
    if path is None:
        return secrets.token_bytes(32)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the session secret key file {path}: {exc.strerror}",
                          "server.secret_key_file") from None
    if len(key) < MIN_SECRET_KEY:
        raise ConfigError(f"{path} holds {len(key)} bytes; use at least {MIN_SECRET_KEY} random bytes "
                          "(e.g. `head -c 48 /dev/urandom | base64 > FILE`)", "server.secret_key_file")
    return key


# --- headers ---------------------------------------------------------------------------

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""On every response; also on the error pages gunicorn writes itself (commands/gunicorn_worker.py)."""


def _headers(response):
    headers = response.headers
    headers.update(SECURITY_HEADERS)
    if current_app.config["BEHIND_TLS"]:
        headers["Strict-Transport-Security"] = HSTS
    if "Cache-Control" not in headers:
        # Pages of the voting flow carry the code in hidden fields: keep them out of caches.
        headers["Cache-Control"] = "no-store"
    return response


# --- request bodies -----------------------------------------------------------------------

def _bounded_body():
    """413 for a chunked body over ``MAX_CONTENT_LENGTH`` too (Werkzeug stops reading one at
    the limit and hands the view a truncated body; a declared Content-Length it refuses itself)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and limit and request.environ.get("wsgi.input_terminated"):
        if len(request.get_data(cache=True)) >= limit:
            raise RequestEntityTooLarge()
    return None


# --- CSRF ------------------------------------------------------------------------------

def csrf_token() -> str:
    """This session's form token (created on first use); templates put it in every form."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def _check_csrf():
    if request.method in ("GET", "HEAD", "OPTIONS") or request.path.startswith("/api/"):
        return None
    if request.routing_exception is not None:
        return None  # no such route, or not with this method: 404 / 405 with Allow, not csrf_failed
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise WebError("csrf_failed")
    return None


# --- rate limits -------------------------------------------------------------------------

def client_address() -> str:
    """The rate-limit key of this request's client (IPv4 address or IPv6 /64)."""
    return client_key(request.remote_addr)


def _guarded(view: Callable) -> Callable:
    """``view`` behind the wrong-code budget: count first, check the code, settle."""
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        attempts: CodeAttempts = current_app.extensions["hsm_signer_code_attempts"]
        key = client_address()
        # The whole body first: a client still sending it (slowly, or never) holds no attempt,
        # so it cannot crowd out the code checks of others behind its address.
        request.get_data(cache=True)
        wait = attempts.reserve(key)
        if wait > 0:
            raise WebError("rate_limited", headers={"Retry-After": str(max(1, math.ceil(wait)))})
        failed = False
        try:
            response = view(*args, **kwargs)
            failed = bool(g.get("code_attempt_failed"))  # HTML views render the error themselves
            return response
        except InvalidCodeError as exc:
            failed = not exc.malformed
            raise
        finally:
            attempts.settle(key, failed)
    return guarded


def _policy(config) -> AttemptPolicy:
    try:
        return AttemptPolicy(free=int(config["CODE_FAILURES_FREE"]), first_delay=float(config["CODE_FAILURE_DELAY"]),
                             max_delay=float(config["CODE_FAILURE_MAX_DELAY"]),
                             forget=float(config["CODE_FAILURES_FORGET"]),
                             alert_per_minute=int(config["CODE_FAILURES_ALERT_PER_MINUTE"]))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"HSM_SIGNER_WEB_CODE_FAILURE*: {exc}; use numbers") from None


def _init_limits(app: Flask) -> Limiter:
    limiter = Limiter(client_address, app=app, default_limits=[app.config["RATELIMIT_DEFAULT"]])
    app.extensions["hsm_signer_code_attempts"] = CodeAttempts(_policy(app.config))
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, "code_attempt", False):
            app.view_functions[endpoint] = _guarded(view)
    if "static" in app.view_functions:
        limiter.exempt(app.view_functions["static"])
    return limiter


def init_app(app: Flask) -> None:
    """Install headers, CSRF and limits; call after every blueprint is registered
    (settings: :data:`DEFAULTS`, loaded by the app factory before any override)."""
    if app.config["PROXY_FIX_X_FOR"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]))  # type: ignore[method-assign]
    app.before_request(_bounded_body)
    app.before_request(_check_csrf)
    app.after_request(_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.extensions["hsm_signer_limiter"] = _init_limits(app)

