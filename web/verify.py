"""``/verify``: the voter checks a receipt in their own browser (and where the QR code leads).

The checking is done by JavaScript in the page (``static/js/verify-page.js`` over the ES
modules of ``static/js/verify/``, gathered by ``static/js/verify-core.js``), with the browser's WebCrypto, so the voter need not trust
this server: the signature and inclusion checks use only the receipt and the key bundle
(``GET /api/v1/keys``, or a ``keys.json`` the voter opens from disk); the server is asked
only for the latest checkpoint or the signed tally and a consistency proof, which the
page checks too.

The view only validates the QR link's query (``e`` election, ``i`` leaf index, ``n``
tree size, ``r`` root as unpadded base64url) and passes it to the page in ``data-``
attributes through the template's escaping; it never puts anything in a script. Scripts
are static same-origin files (the CSP allows no inline script).
"""

from __future__ import annotations

import re

from flask import Blueprint, render_template, request
from flask_babel import gettext

from .verify_words import WORDS

bp = Blueprint("verify", __name__)

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_NUMBER = re.compile(r"[0-9]{1,19}")
_ROOT = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_SIZE = 2**63 - 1


@bp.get("/verify")
def page():
    args = request.args
    index = int(args["i"]) if _NUMBER.fullmatch(args.get("i", "")) else None
    size = int(args["n"]) if _NUMBER.fullmatch(args.get("n", "")) else None
    wanted = {
        "election": args.get("e", "") if _ID.fullmatch(args.get("e", "")) else None,
        "index": index,
        "size": size,
        "root": args.get("r", "") if _ROOT.fullmatch(args.get("r", "")) else None,
    }
    complete = (all(v is not None for v in wanted.values())
                and index is not None and size is not None and index < size <= _MAX_SIZE)
    # A link that was cut short or mangled is worth saying so, rather than silently ignoring it.
    partial = not complete and any(name in args for name in ("e", "i", "n", "r"))
    words = {text: gettext(text) for text in WORDS}  # for the page's script, in the page's language
    return render_template("verify.html", wanted=wanted, complete=complete, partial=partial, words=words)
