"""The HSM user PIN split m-of-n into SLIP-39 mnemonic shares, and rebuilt from any m of them.

The key ceremony draws a random 128-bit secret, splits it with SLIP-39 (the
``shamir-mnemonic`` package: one group, member threshold m of n) and sets the token's user
PIN to the secret written as 32 lowercase hex digits. Nobody ever sees the PIN; each share
holder sees one mnemonic of 20 words. :class:`SharePin` is the production PIN source of the
service: it takes m shares (typed at a prompt, or read from share files brought on separate
media) and rebuilds the PIN in memory only.

Errors say precisely what is wrong with which share (corrupted, from another split, a
duplicate, not enough of them) and never quote a share word or the PIN: the messages of
``shamir_mnemonic`` quote the first words of a share, so they are never passed on.

This module must never log, print or write a PIN or a share (writing share files is the
ceremony's job, for rehearsals only).
"""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import shamir_mnemonic
from shamir_mnemonic import MnemonicError, Share
from shamir_mnemonic.wordlist import WORD_INDEX_MAP

from ..errors import ConfigError

#: Size of the secret behind the PIN: SLIP-39's minimum and plenty for a PIN.
SECRET_BYTES = 16
#: Length of the PIN the token is given (hex digits of the secret).
PIN_LENGTH = 2 * SECRET_BYTES
#: SLIP-39 allows at most 16 shares in a group.
MAX_SHARES = 16
#: Marker written on every share file a rehearsal produces (and looked for when reading one).
REHEARSAL_MARKER = "REHEARSAL MATERIAL"

# The share carries no passphrase, so key stretching would protect nothing; keep it cheap.
_ITERATION_EXPONENT = 0


class ShareError(ConfigError):
    """Shares that cannot rebuild the PIN: too few, corrupted, mixed or duplicated."""


def pin_of_secret(secret: bytes) -> str:
    """The user PIN for a split secret: its bytes as lowercase hex."""
    if len(secret) != SECRET_BYTES:
        raise ShareError(f"the shares rebuild a {len(secret)}-byte secret; a PIN secret has {SECRET_BYTES} bytes")
    return secret.hex()


@dataclass(frozen=True)
class PinSplit:
    """A fresh PIN and its n shares (share ``i`` is ``shares[i]``; any m rebuild the PIN)."""

    threshold: int
    pin: str = field(repr=False)
    shares: tuple[str, ...] = field(repr=False)

    @property
    def count(self) -> int:
        return len(self.shares)


def split_new_pin(threshold: int, count: int, *, secret: bytes | None = None) -> PinSplit:
    """Draw a random PIN (unless ``secret`` is given, for tests) and split it ``threshold``-of-``count``."""
    if not 2 <= threshold <= count <= MAX_SHARES:
        raise ShareError(
            f"cannot split {threshold}-of-{count}: need 2 <= threshold <= holders <= {MAX_SHARES}"
        )
    secret = secrets.token_bytes(SECRET_BYTES) if secret is None else secret
    groups = shamir_mnemonic.generate_mnemonics(
        1, [(threshold, count)], secret, iteration_exponent=_ITERATION_EXPONENT,
    )
    split = PinSplit(threshold=threshold, pin=pin_of_secret(secret), shares=tuple(groups[0]))
    # Prove the split before anyone relies on it: the first m and the last m shares rebuild it.
    for subset in (split.shares[:threshold], split.shares[-threshold:]):
        if combine_shares([(f"share {i}", s) for i, s in enumerate(subset, 1)]) != split.pin:
            raise ShareError("the SLIP-39 split did not rebuild its own PIN; do not use it")
    return split


def normalise_mnemonic(text: str) -> str:
    """One share as single-spaced lowercase words (as people type or print it)."""
    return " ".join(text.lower().split())


def decode_share(where: str, mnemonic: str) -> Share:
    """Parse one share, naming ``where`` it came from on failure (never quoting its words)."""
    words = normalise_mnemonic(mnemonic).split()
    if not words:
        raise ShareError(f"{where} is empty; it should hold the 20 words of one share")
    for position, word in enumerate(words, 1):
        if word not in WORD_INDEX_MAP:
            raise ShareError(
                f"{where} is corrupted: word {position} is not in the SLIP-39 word list; "
                "check it against the holder's written copy"
            )
    try:
        share = Share.from_mnemonic(" ".join(words))
    except MnemonicError:
        raise ShareError(
            f"{where} is corrupted: its checksum does not match (a word is wrong, missing or "
            "out of order); check it against the holder's written copy"
        ) from None
    if share.group_count != 1 or share.group_threshold != 1:
        raise ShareError(f"{where} is not an hsm-signer PIN share (it belongs to a multi-group SLIP-39 split)")
    return share


def combine_shares(shares: Sequence[tuple[str, str]]) -> str:
    """Rebuild the PIN from ``(where, mnemonic)`` pairs, at least m of one split.

    Raises :class:`ShareError` naming the offending share for a corrupted share, shares of
    different splits, the same share twice, or fewer than the threshold.
    """
    if not shares:
        raise ShareError("no shares given; share holders must provide their shares")
    decoded = [(where, decode_share(where, mnemonic)) for where, mnemonic in shares]
    first_where, first = decoded[0]
    seen: dict[int, str] = {}
    for where, share in decoded:
        if share.common_parameters() != first.common_parameters() or share.member_threshold != first.member_threshold:
            raise ShareError(
                f"{where} belongs to a different PIN split than {first_where} "
                "(the first words differ); use shares of the same ceremony"
            )
        if share.index in seen:
            raise ShareError(f"{where} is the same share as {seen[share.index]}; each holder's share counts once")
        seen[share.index] = where
    threshold = first.member_threshold
    if len(decoded) < threshold:
        raise ShareError(
            f"fewer than {threshold} shares: got {len(decoded)} of the {threshold} needed to rebuild the PIN; "
            "ask another share holder"
        )
    try:
        secret = shamir_mnemonic.combine_mnemonics([s.mnemonic() for _, s in decoded[:threshold]])
    except MnemonicError:
        raise ShareError("the shares are individually valid but do not combine; they are not from one split") from None
    return pin_of_secret(secret)


# --- share files --------------------------------------------------------------------

def read_share_file(path: Path) -> tuple[str, bool]:
    """The mnemonic in a share file and whether it is marked as rehearsal material.

    Lines starting with ``#`` are comments; the rest is the share's words.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ShareError(f"cannot read share file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ShareError(f"share file {path} is corrupted: it is not UTF-8 text") from None
    words = " ".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return normalise_mnemonic(words), REHEARSAL_MARKER in text


def share_file_text(mnemonic: str, *, holder: str, index: int, threshold: int, count: int,
                    ceremony_id: str, rehearsal: bool, sealing: bool = False) -> str:
    """The text of a share file: a header that says what it is, then the words.

    ``sealing`` marks a tally trustee's share of the sealing token's PIN.
    """
    what = "SEALING token PIN share" if sealing else "HSM user PIN share"
    role = "tally trustee" if sealing else "share holder"
    header = [
        f"# {REHEARSAL_MARKER}: NOT FOR A REAL ELECTION" if rehearsal else "# hsm-signer PIN share",
        f"# hsm-signer {what} {index} of {count} (any {threshold} rebuild the PIN)",
        f"# ceremony {ceremony_id}, {role} {holder}",
        "# Keep this file secret. Never send it by e-mail or chat.",
    ]
    return "\n".join(header) + "\n" + normalise_mnemonic(mnemonic) + "\n"


# --- the PIN source -------------------------------------------------------------------

@dataclass(frozen=True)
class SharePin:
    """Production PIN source: rebuild the PIN from m SLIP-39 shares, in memory only.

    With ``share_files`` the shares are read from those files (each holder brings theirs,
    e.g. on removable media); without, each holder types their share at a prompt that does
    not echo. An empty answer ends the input (and fails if fewer than m were given).
    """

    share_files: tuple[Path, ...] = ()
    prompt: Callable[[str], str] | None = None
    production_grade: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "share_files", tuple(Path(p) for p in self.share_files))
        if any(_marked_rehearsal(p) for p in self.share_files):
            object.__setattr__(self, "production_grade", False)

    def get_pin(self) -> str:
        if self.share_files:
            pairs = [(f"share file {p}", read_share_file(p)[0]) for p in self.share_files]
            return combine_shares(pairs)
        return combine_shares(list(self._prompted()))

    def _prompted(self) -> Iterable[tuple[str, str]]:
        read = self.prompt or getpass.getpass
        threshold: int | None = None
        number = 0
        while threshold is None or number < threshold:
            number += 1
            needed = f" of {threshold}" if threshold else ""
            text = read(f"Share {number}{needed} (20 words, not echoed; empty line to stop): ")
            if not text.strip():
                return
            where = f"share {number}"
            threshold = decode_share(where, text).member_threshold
            yield where, text

    def describe(self) -> str:
        if self.share_files:
            kind = "REHEARSAL share files (INSECURE)" if not self.production_grade else "share files"
            return f"m-of-n SLIP-39 PIN shares from {len(self.share_files)} {kind}"
        return "m-of-n SLIP-39 PIN shares typed by the share holders"


def _marked_rehearsal(path: Path) -> bool:
    try:
        return REHEARSAL_MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False  # reported precisely when get_pin() reads it
