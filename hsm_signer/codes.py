"""Voting codes: generation, typo checking and the keyed hash that is all we store.

A code is 16 symbols of Crockford's base32 (80 bits from :mod:`secrets`) plus one check
symbol (Damm's algorithm over GF(32), which catches every single-symbol typo and every
swap of two neighbouring symbols), printed in groups: ``7KQ2-M9XD-4HTC-R2PA-W``. Reading is lenient
the way people type: case, spaces and dashes are ignored and O/I/L read as 0/1/1.

The database only ever sees ``HMAC-SHA256(code key, election id || 0x00 || code)``
computed by the HSM, so a leaked database does not let anyone test codes offline.
This module must never log a code.
"""

from __future__ import annotations

import secrets
from typing import Callable, Iterator

from .errors import ElectionError
from .signer import Mac

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
DATA_SYMBOLS = 16  # 16 x 5 bits = 80 bits
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_VALUE.update({"O": 0, "I": 1, "L": 1})


class MalformedCodeError(ElectionError):
    """The text cannot be a voting code (wrong length, symbol or check symbol).

    ``kind`` says which, so a voter can be told "a typo" rather than "unknown code":
    ``"length"``, ``"symbol"`` or ``"typo"`` (the check symbol does not match). Telling
    these apart reveals nothing: anyone can compute them from the text alone.
    """

    def __init__(self, message: str, kind: str = "length") -> None:
        self.kind = kind
        super().__init__(message)


def _times_x(value: int) -> int:
    """Multiply by x in GF(32) = GF(2)[x] / (x^5 + x^2 + 1)."""
    value <<= 1
    return value ^ 0b100101 if value & 0b100000 else value


def _damm(symbols: str) -> int:
    """Damm's algorithm over the quasigroup a * b = x·a + b of GF(32).

    The quasigroup is weakly totally anti-symmetric (x·a + b = x·b + a only when a = b,
    since x ≠ 1), so every single substitution and every swap of two neighbouring
    symbols, the check symbol included, changes the result.
    """
    interim = 0
    for char in symbols:
        interim = _times_x(interim) ^ _VALUE[char]
    return interim


def _check_symbol(data: str) -> str:
    return ALPHABET[_times_x(_damm(data))]


def new_code() -> str:
    """A fresh code in canonical (ungrouped) form: 16 data symbols + check symbol."""
    data = "".join(secrets.choice(ALPHABET) for _ in range(DATA_SYMBOLS))
    return data + _check_symbol(data)


def display(code: str) -> str:
    """Grouped for printing: XXXX-XXXX-XXXX-XXXX-C."""
    return "-".join([code[i:i + 4] for i in range(0, DATA_SYMBOLS, 4)] + [code[DATA_SYMBOLS:]])


def normalise(text: str) -> str:
    """The canonical form of a typed code, or MalformedCodeError (never echoing the input)."""
    if not isinstance(text, str) or len(text) > 64:
        raise MalformedCodeError("a voting code has 17 letters and digits")
    cleaned = text.upper().replace("-", "").replace(" ", "")
    if len(cleaned) != DATA_SYMBOLS + 1:
        raise MalformedCodeError("a voting code has 17 letters and digits; check you typed all of it")
    if any(c not in _VALUE for c in cleaned):
        raise MalformedCodeError("a voting code uses only digits and the letters A-Z except U", "symbol")
    canonical = "".join(ALPHABET[_VALUE[c]] for c in cleaned)
    if _damm(canonical) != 0:
        raise MalformedCodeError("this code has a typo (its check symbol does not match); please check it", "typo")
    return canonical


def code_message(election_id: str, code: str) -> bytes:
    return election_id.encode() + b"\x00" + code.encode()


def code_hash(mac: Mac, election_id: str, typed: str) -> bytes:
    """The stored form of a typed code (normalised first)."""
    return mac.mac(code_message(election_id, normalise(typed)))


def issue(mac: Mac, election_id: str, count: int, *, batch: int = 2000,
          progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield ``count`` fresh ``(code, hash)`` pairs, hashing in batches through the HSM."""
    done = 0
    while done < count:
        codes = [new_code() for _ in range(min(batch, count - done))]
        messages = [code_message(election_id, c) for c in codes]
        many = getattr(mac, "mac_many", None)
        hashes = many(messages) if many else [mac.mac(m) for m in messages]
        yield from zip(codes, hashes)
        done += len(codes)
        if progress:
            progress(done, count)

