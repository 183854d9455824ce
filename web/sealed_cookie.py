"""Short-lived state a voter's browser carries between a POST and the GET page it redirects to.

Post/redirect/get (so Back and Reload never resubmit a form) needs the GET page to know
what the POST was given; the server keeps nothing, so that travels in a cookie, sealed:
AES-256-GCM under a key derived (HKDF) from the session secret (``server.secret_key_file``,
shared by every worker like the CSRF session), for one purpose and one binding (e.g. an
election), with an expiry sealed inside and checked against the service clock. The browser
holds only ciphertext: it can neither read nor forge nor move the state elsewhere.
Cookies are ``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind TLS, limited to a path, and
carry the same lifetime as ``Max-Age``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app, request
from werkzeug.wrappers import Response

from .context import service

MAX_COOKIE = 3800  # browsers keep at least 4,096 bytes per cookie, name and attributes included


class TooLargeError(ValueError):
    """The state does not fit in a cookie."""


def _key(purpose: bytes, bind: str) -> bytes:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else bytes(secret)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=purpose, info=bind.encode()).derive(secret)


def _aad(purpose: bytes, bind: str) -> bytes:
    return purpose + b"\x00" + bind.encode()


def load(name: str, purpose: bytes, bind: str) -> dict[str, Any] | None:
    """The state in this request's cookie ``name``: None if absent, expired, not sealed by
    this service for ``purpose``/``bind``, or not a JSON object."""
    value = request.cookies.get(name)
    if not value or len(value) > MAX_COOKIE:
        return None
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        body = json.loads(AESGCM(_key(purpose, bind)).decrypt(sealed[:12], sealed[12:], _aad(purpose, bind)))
    except (binascii.Error, ValueError, InvalidTag):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("x"), int) or body["x"] <= service().clock():
        return None
    return body


def save(response: Response, name: str, purpose: bytes, bind: str, body: dict[str, Any], *, path: str,
         lifetime: int) -> Response:
    """Seal ``body`` (a JSON object; its key ``x`` is the expiry) into cookie ``name`` of ``response``."""
    nonce = os.urandom(12)
    plain = json.dumps({**body, "x": int(service().clock()) + lifetime}, separators=(",", ":")).encode()
    sealed = nonce + AESGCM(_key(purpose, bind)).encrypt(nonce, plain, _aad(purpose, bind))
    value = base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")
    if len(value) > MAX_COOKIE:
        raise TooLargeError(f"the state takes {len(value)} bytes")
    response.set_cookie(name, value, max_age=lifetime, path=path, secure=current_app.config["BEHIND_TLS"],
                        httponly=True, samesite="Strict")
    return response


def forget(response: Response, name: str, *, path: str) -> Response:
    """Remove cookie ``name`` from the browser."""
    response.delete_cookie(name, path=path, secure=current_app.config["BEHIND_TLS"], httponly=True, samesite="Strict")
    return response
