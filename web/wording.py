"""Plain words for voters: messages as sentences and times in the election's time zone.

Core messages are lower-case clauses (they are also API ``message`` fields and log
lines); :func:`sentence` makes a page's sentence of one. :func:`when` shows a stored UTC
time (``2026-09-02T17:00:00Z``) the way a voter reads a date, in the time zone the
election definition names (UTC without one), with the zone's abbreviation; :func:`number`
a count with the page language's digit grouping (``160,000``).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from babel.dates import format_date
from babel.numbers import format_decimal
from flask import Flask
from flask_babel import get_locale

from hsm_signer.election import Election


def sentence(message: str) -> str:
    """``message`` with a capital first letter and a full stop."""
    text = str(message).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def when(stored: str | None, election: Election) -> str:
    """``Wednesday 2 September 2026 at 6:00pm (BST)``, in the election's time zone; in
    Welsh ``Dydd Mercher 2 Medi 2026, 18:00 (BST)``."""
    if not stored:
        return ""
    zone = zoneinfo.ZoneInfo(election.timezone or "UTC")
    moment = dt.datetime.fromisoformat(stored.replace("Z", "+00:00")).astimezone(zone)
    language = str(get_locale() or "en")
    if language != "en":
        day = format_date(moment.date(), "EEEE d MMMM y", locale=language)
        return f"{day}, {moment:%H:%M} ({moment.tzname()})"
    hour = moment.hour % 12 or 12
    clock = f"{hour}:{moment.minute:02d}{'am' if moment.hour < 12 else 'pm'}"
    return f"{moment:%A} {moment.day} {moment:%B %Y} at {clock} ({moment.tzname()})"


def number(count: int) -> str:
    """``160,000``: a count grouped the way the page's language writes it."""
    return format_decimal(count, locale=str(get_locale() or "en"))


def init_app(app: Flask) -> None:
    app.add_template_filter(sentence)
    app.add_template_filter(number)
    app.add_template_global(when)
