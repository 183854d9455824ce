"""Checking a published key bundle directory, ceremony or retirement, with no trust in whoever made it.

A ceremony bundle (``keys.json``) is checked by :mod:`.verify_ceremony`, a retirement bundle
(``retired.json`` instead) by :mod:`.verify_retirement`; both raise :class:`VerificationError`
naming the file, line or key and what is wrong, and return a :class:`~.checks.Report` of what
was checked. This module must never import PKCS#11: auditors run it without an HSM.
"""

from __future__ import annotations

import os
from pathlib import Path

from hsm_signer.errors import FormatError

from .checks import Report, read_bundle_dir
from .verify_ceremony import verify_bundle_files
from .verify_retirement import RETIRED_FILE, verify_retirement_files


def verify_bundle_dir(path: str | os.PathLike, *, original: str | os.PathLike | None = None) -> Report:
    """Verify the bundle in directory ``path`` (a retirement bundle may be checked against ``original``)."""
    files = read_bundle_dir(path)
    if RETIRED_FILE in files:
        original_files = None
        if original is not None:
            original_files = read_bundle_dir(original)
        return verify_retirement_files(files, str(path), original_files, Path(path))
    if original is not None:
        raise FormatError("--original is only for retirement bundles")
    return verify_bundle_files(files, str(path))
