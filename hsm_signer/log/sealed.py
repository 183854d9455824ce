"""Sealed ballots: the selections encrypted with HPKE to the election's sealing key.

A sealed ballot is ``enc || ct`` from RFC 9180 base mode (:mod:`.hpke`), sealed to the
sealing key the key ceremony generated inside the HSM. What is bound, and how:

* ``info`` (it enters HPKE's key schedule; cryptography's HPKE API takes no AAD) is the
  RFC 8785 canonical JSON of the format name, the election, the channel and the ballot id,
  so a sealed ballot opened for any other entry fails its tag: it cannot be moved.
* The plaintext is the canonical JSON of the selections (every contest, options sorted),
  right-padded with zero bytes to :func:`padded_size` of the election, so every sealed
  ballot of an election has the same length and the length never tells a vote.

The browser (``web/static/js``) and the server seal the same bytes; this module is the
one definition. It is pure: no I/O, no PKCS#11, no clear selections ever logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Sequence

from ..canonical import canonicalize, loads_strict
from ..errors import FormatError
from . import hpke

SEALED_FORMAT = "hsm-signer/sealed-ballot/v1"
ONLINE, POSTAL = "online", "postal"
CHANNELS = (ONLINE, POSTAL)
#: Padded plaintexts are a multiple of this many bytes (and never empty).
PAD_BLOCK = 64


class _Contest(Protocol):  # read-only: an election's contests are frozen dataclasses
    @property
    def id(self) -> str: ...

    @property
    def max_choices(self) -> int: ...

    @property
    def option_ids(self) -> tuple[str, ...]: ...


class _Election(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def contests(self) -> Sequence[_Contest]: ...


def sealing_info(election_id: str, channel: str, ballot_id: str) -> bytes:
    """HPKE ``info`` for one ballot: binds format, election, channel and ballot id."""
    if channel not in CHANNELS:
        raise FormatError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    return canonicalize({"ballot_id": ballot_id, "channel": channel, "election": election_id,
                         "format": SEALED_FORMAT})


def padded_size(election: _Election) -> int:
    """The plaintext length every sealed ballot of ``election`` has.

    The canonical JSON of the longest valid ballot (each contest choosing its
    ``max_choices`` longest option ids: more or longer options only ever add bytes),
    rounded up to a multiple of :data:`PAD_BLOCK`. Published with the election, so the
    browser pads to the same size.
    """
    longest = {contest.id: sorted(sorted(contest.option_ids, key=len, reverse=True)[:contest.max_choices])
               for contest in election.contests}
    length = len(canonicalize(longest))
    return max(PAD_BLOCK, -(-length // PAD_BLOCK) * PAD_BLOCK)


def sealed_length(size: int) -> int:
    """Bytes of ``enc || ct`` for a padded plaintext of ``size`` bytes."""
    return hpke.N_ENC + size + hpke.N_TAG


def encode_plaintext(selections: Mapping[str, Sequence[str]], size: int) -> bytes:
    """Canonical JSON of the selections (option lists sorted), zero-padded to ``size`` bytes."""
    body = canonicalize({contest: sorted(options) for contest, options in selections.items()})
    if len(body) > size:
        raise FormatError(f"the selections take {len(body)} bytes, more than the election's sealed size {size}")
    return body + bytes(size - len(body))


def decode_plaintext(data: bytes, size: int) -> dict[str, list[str]]:
    """The selections in an opened plaintext; FormatError unless it is exactly what
    :func:`encode_plaintext` makes (right size, zero padding only, canonical JSON object
    of lists of strings). Whether they fit the election's contests is the caller's check."""
    if len(data) != size:
        raise FormatError(f"the opened ballot is {len(data)} bytes; every ballot of this election is {size}")
    body = bytes(data).rstrip(b"\x00")
    if b"\x00" in body:
        raise FormatError("the opened ballot has a zero byte inside its JSON")
    selections: Any = loads_strict(body)
    if not isinstance(selections, dict) or not all(
            isinstance(options, list) and all(isinstance(o, str) for o in options) for options in selections.values()):
        raise FormatError("the opened ballot is not an object of contests to lists of option ids")
    if canonicalize(selections) != body:
        raise FormatError("the opened ballot is not in canonical JSON form")
    if any(options != sorted(set(options)) for options in selections.values()):
        raise FormatError("the opened ballot's option lists are not sorted or repeat an option")
    return selections


def seal_ballot(public_key: bytes, election_id: str, channel: str, ballot_id: str,
                selections: Mapping[str, Sequence[str]], size: int) -> bytes:
    """Seal validated selections for one ballot: ``enc || ct``."""
    return hpke.seal(public_key, sealing_info(election_id, channel, ballot_id), encode_plaintext(selections, size))


def check_sealed(sealed: bytes, size: int) -> bytes:
    """``sealed`` if it has the election's exact length and starts with a valid P-256 point."""
    expected = sealed_length(size)
    if not isinstance(sealed, (bytes, bytearray)) or len(sealed) != expected:
        got = len(sealed) if isinstance(sealed, (bytes, bytearray)) else type(sealed).__name__
        raise FormatError(f"a sealed ballot of this election is {expected} bytes, got {got}")
    hpke.split_sealed(sealed)
    return bytes(sealed)


def open_sealed(shared_secret: bytes, election_id: str, channel: str, ballot_id: str,
                sealed: bytes, size: int) -> dict[str, list[str]]:
    """Open one sealed ballot with its KEM shared secret and decode its selections."""
    plaintext = hpke.open_with_shared_secret(shared_secret, sealing_info(election_id, channel, ballot_id), sealed)
    return decode_plaintext(plaintext, size)
