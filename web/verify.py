"""``/verify``: where a receipt's QR code leads (the in-browser check comes later).

For now the page says what the link names (election, leaf index, tree size, root) and
links to the API documents that verification uses. The query is validated and only
echoed through the template's escaping. A verification script will be a static file
under ``static/`` (the CSP allows only same-origin scripts, never inline ones).
"""

from __future__ import annotations

import re

from flask import Blueprint, render_template, request

bp = Blueprint("verify", __name__)

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_NUMBER = re.compile(r"[0-9]{1,19}")
_ROOT = re.compile(r"[A-Za-z0-9_-]{43}")


@bp.get("/verify")
def page():
    args = request.args
    wanted = {
        "election": args.get("e", "") if _ID.fullmatch(args.get("e", "")) else None,
        "index": int(args["i"]) if _NUMBER.fullmatch(args.get("i", "")) else None,
        "size": int(args["n"]) if _NUMBER.fullmatch(args.get("n", "")) else None,
        "root": args.get("r", "") if _ROOT.fullmatch(args.get("r", "")) else None,
    }
    complete = all(v is not None for v in wanted.values()) and wanted["index"] < wanted["size"]
    return render_template("verify.html", wanted=wanted, complete=complete)
