"""The ballot tracker: a short name for one log entry that a voter can find on the board.

``tracker_of(leaf)`` is the first 8 bytes (64 bits) of the entry's RFC 9162 leaf hash,
SHA-256(0x00 || leaf), as 16 lowercase hex digits in four groups of four:
``3f9a-12bc-77de-0a41``. It names the *sealed* entry, never its content, so it is safe to
show on a receipt, a page or a board. 64 bits keep two trackers of one election apart
(a collision among 10 million entries has odds of about 1 in 370,000); the receipt's full
leaf and inclusion proof remain the proof, the tracker is only for finding.

Pure, no I/O: the browser (``web/static/js``) computes the same string.
"""

from __future__ import annotations

import re

from ..errors import FormatError
from .merkle import leaf_hash

TRACKER_BYTES = 8
GROUP = 4
TRACKER_PATTERN = re.compile(r"[0-9a-f]{4}(?:-[0-9a-f]{4}){3}")
_LOOSE = re.compile(r"[\s-]+")


def tracker_of(leaf: bytes) -> str:
    """The tracker of the log entry whose exact bytes are ``leaf``."""
    digits = leaf_hash(bytes(leaf))[:TRACKER_BYTES].hex()
    return "-".join(digits[i:i + GROUP] for i in range(0, len(digits), GROUP))


def normalise_tracker(text: str) -> str:
    """A tracker as typed (any case, spaces or dashes anywhere) in its canonical form.

    Raises :class:`FormatError` if it is not 16 hex digits.
    """
    if not isinstance(text, str):
        raise FormatError(f"a ballot tracker must be a string, got {type(text).__name__}", "tracker.syntax")
    digits = _LOOSE.sub("", text).lower()
    if not re.fullmatch(r"[0-9a-f]{16}", digits):
        raise FormatError("a ballot tracker is 16 hex digits such as 3f9a-12bc-77de-0a41", "tracker.syntax")
    return "-".join(digits[i:i + GROUP] for i in range(0, 16, GROUP))
