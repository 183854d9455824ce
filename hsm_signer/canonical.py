"""RFC 8785 (JCS) canonical JSON, restricted to the values hsm-signer signs, and strict parsing.

Canonical form is the one byte string that gets hashed into the log, so it must be
deterministic and shared by every producer and checker. Supported values: ``dict`` with
``str`` keys, ``list``, ``str``, ``int`` (within the IEEE-754 exact range ±(2**53 - 1)),
``bool`` and ``None``. Floats, NaN, lone surrogates and every other type are refused with
:class:`~hsm_signer.errors.FormatError` rather than approximated: this module must never
silently produce a form that another RFC 8785 implementation would not reproduce.

:func:`loads_strict` is the matching reader: UTF-8 only, no duplicate keys, no numbers
with a fraction or exponent, no NaN/Infinity, and bounded before any work that grows
with the input: integers of at most :data:`MAX_INTEGER_DIGITS` digits (Python's ``int()``
refuses more than 4,300 with a ValueError), nesting at most :data:`MAX_DEPTH` deep (the
``json`` module recurses and would raise RecursionError).
"""

from __future__ import annotations

import re

import json
from typing import Any, Sequence

from .errors import FormatError

MAX_SAFE_INTEGER = 2**53 - 1
MAX_INTEGER_DIGITS = 20
"""Longest integer :func:`loads_strict` reads: room for any 64-bit value, far below ``int()``'s limit."""
MAX_DEPTH = 32
"""Deepest nesting of arrays and objects :func:`loads_strict` reads (our formats need fewer than 5)."""

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


#: A string with nothing to escape and no surrogate is its own canonical form (the common
#: case: ids, base64); one regular-expression match instead of a loop over its characters.
_PLAIN_STRING = re.compile('[^"\\\\\x00-\x1f\ud800-\udfff]*')


def _encode_string(s: str, path: str) -> str:
    if _PLAIN_STRING.fullmatch(s):
        return '"' + s + '"'
    out = ['"']
    for ch in s:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":
            raise FormatError(f"{path}: string contains a lone surrogate U+{ord(ch):04X}, which is not valid Unicode", "json.not-canonical")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _utf16_key(s: str) -> bytes:
    # RFC 8785 §3.2.3: properties sort by their UTF-16 code units, not code points.
    return s.encode("utf-16-be", "surrogatepass")


def _encode(value: Any, path: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise FormatError(f"{path}: integer {value} is outside the exact JSON range ±(2**53 - 1)", "json.not-canonical")
        out.append(str(int(value)))
    elif isinstance(value, str):
        out.append(_encode_string(value, path))
    elif isinstance(value, float):
        raise FormatError(f"{path}: floating-point numbers are not allowed in canonical JSON here, got {value!r}", "json.not-canonical")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, f"{path}[{i}]", out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise FormatError(f"{path}: object keys must be strings, got {type(key).__name__} {key!r}", "json.not-canonical")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_encode_string(key, f"{path} key"))
            out.append(":")
            _encode(value[key], f"{path}.{key}", out)
        out.append("}")
    else:
        raise FormatError(f"{path}: {type(value).__name__} cannot be written as canonical JSON", "json.not-canonical")


class _Unusual(Exception):
    """:func:`_encode_common` met something it leaves to :func:`_encode` (which names the path)."""


def _encode_common(value: Any, out: list[str]) -> None:
    """:func:`_encode` for the values every ballot, leaf and note is made of (exact built-in
    str, int, bool, None, list, tuple, dict with ASCII keys), without building a path for
    errors that do not happen; anything else raises :class:`_Unusual`. Same output."""
    kind = type(value)
    if kind is str:
        if not _PLAIN_STRING.fullmatch(value):
            raise _Unusual
        out.append('"' + value + '"')
    elif kind is dict:
        keys = list(value)
        for key in keys:
            if type(key) is not str or not key.isascii() or not _PLAIN_STRING.fullmatch(key):
                raise _Unusual  # ASCII keys: code point order is RFC 8785's UTF-16 order
        out.append("{")
        first = True
        for key in sorted(keys):
            if not first:
                out.append(",")
            first = False
            out.append('"' + key + '":')
            _encode_common(value[key], out)
        out.append("}")
    elif kind is list or kind is tuple:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode_common(item, out)
        out.append("]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int and abs(value) <= MAX_SAFE_INTEGER:
        out.append(str(value))
    else:
        raise _Unusual


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value`` (tuples are written as arrays)."""
    out: list[str] = []
    try:
        _encode_common(value, out)
    except _Unusual:
        out = []
        _encode(value, "$", out)  # escapes, other key orders, and every refusal with its path
    return "".join(out).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"duplicate key {key!r} in JSON object", "json.duplicate-key")
        result[key] = value
    return result


def _no_float(text: str) -> Any:
    raise FormatError(f"number {text} has a fraction or exponent; only integers are allowed", "json.number")


def _no_constant(text: str) -> Any:
    raise FormatError(f"{text} is not valid JSON", "json.syntax")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise FormatError(f"integer of {len(text.lstrip('-'))} digits; at most {MAX_INTEGER_DIGITS} are accepted", "json.number")
    return int(text)


def _nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _check_depth(text: str) -> None:
    # Counting brackets is cheap (C code); only text that could nest too deeply is scanned.
    if text.count("[") + text.count("{") > MAX_DEPTH and _nesting_depth(text) > MAX_DEPTH:
        raise FormatError(f"JSON nests arrays and objects more than {MAX_DEPTH} deep", "json.depth")


def loads_strict(data: bytes | str) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate keys, no floats, no NaN/Infinity, bounded
    integers and nesting (every refusal is a :class:`FormatError`)."""
    if isinstance(data, (bytes, bytearray)):
        if data[:3] == b"\xef\xbb\xbf":
            raise FormatError("JSON starts with a byte-order mark", "json.syntax")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"JSON is not valid UTF-8 (byte {exc.start})", "json.syntax") from None
    if not isinstance(data, str):
        raise FormatError(f"JSON must be text or bytes, got {type(data).__name__}", "json.syntax")
    _check_depth(data)
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_float=_no_float,
                          parse_int=_bounded_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "json.syntax") from None


def exact_object(obj: Any, fields: Sequence[str], what: str) -> dict[str, Any]:
    """``obj`` if it is a JSON object with exactly ``fields``, else FormatError naming ``what``."""
    if not isinstance(obj, dict):
        raise FormatError(f"{what} must be a JSON object, got {type(obj).__name__}", "json.fields")
    missing = [name for name in fields if name not in obj]
    if missing:
        raise FormatError(f"{what} is missing field(s): {', '.join(missing)}", "json.fields")
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise FormatError(f"{what} has unknown field(s): {', '.join(unknown)}", "json.fields")
    return obj
