"""Languages of the voter's pages: English and Welsh (Cymraeg), with Flask-Babel.

The language is the one the voter picked with the switch on every page (``?lang=cy``,
remembered in a ``lang`` cookie that holds nothing else), else the best match of the
browser's ``Accept-Language``, else English. Catalogues are gettext ``.po`` files in
``web/translations``; their compiled ``.mo`` files are committed beside them (a test checks
each ``.mo`` is the compiled ``.po``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, request
from flask_babel import Babel, get_locale

LANGUAGES = {"en": "English", "cy": "Cymraeg"}
DEFAULT = "en"
COOKIE = "lang"
TRANSLATIONS = Path(__file__).parent / "translations"


def _chosen() -> str | None:
    wanted = request.args.get("lang") or request.cookies.get(COOKIE)
    return wanted if wanted in LANGUAGES else None


def select_locale() -> str:
    return _chosen() or request.accept_languages.best_match(list(LANGUAGES), DEFAULT)


def current() -> str:
    return str(get_locale() or DEFAULT)


def _remember(response):
    wanted = request.args.get("lang")
    if wanted in LANGUAGES and request.cookies.get(COOKIE) != wanted:
        response.set_cookie(COOKIE, wanted, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                            secure=request.is_secure)
    if not request.path.startswith("/api/"):
        response.vary.add("Accept-Language")
        response.vary.add("Cookie")
    return response


def switch_url(lang: str) -> str:
    """This page in ``lang``: its path with ``?lang=`` (a GET page; a POST page links to its GET start)."""
    args = {k: v for k, v in request.args.items() if k != "lang"}
    args["lang"] = lang
    return f"{request.path}?{urlencode(args)}" if request.method == "GET" else f"/?lang={lang}"


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories=str(TRANSLATIONS))
    app.after_request(_remember)
    app.add_template_global(current, "current_language")
    app.add_template_global(switch_url)
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
