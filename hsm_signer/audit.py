"""The independent audit of a published election record (see :mod:`hsm_signer.record`).

``audit_record`` re-derives everything from the record's files alone, in this order, and
stops at the first failure with a :class:`~hsm_signer.errors.VerificationError` naming the
file, line or entry:

1. every file matches MANIFEST.json, and no file is missing or extra;
2. the key bundle (the record's ``keys/``, or a trusted one given by the auditor, which the
   record's copy must then equal) and the election definition load;
3. every checkpoint is signed by the bundle's checkpoint key, is for this election's log
   and has the size its file name says;
4. every entry parses strictly, belongs to this election, fits its contests, and no ballot
   id appears twice; in a sealed election (leaf v2), every entry has its line in
   ``openings.jsonl`` (same index and ballot id), and re-opening the sealed ballot with the
   published secret gives exactly the published status and selections (or reason);
5. there are exactly as many entries as the final checkpoint covers, and they hash to its
   root (on a mismatch, the signed checkpoints locate the first bad stretch of entries);
6. every checkpoint is consistent with the final one (RFC 9162 consistency proofs computed
   from an in-memory tree of the entries): the log only ever grew;
7. the tally is signed by the bundle's tally key and covers exactly the final tree
   (same size, same root) and this election definition;
8. the recount of the entries (of their openings, when sealed) gives exactly the signed
   tally lines, and a sealed election's tally binds the SHA-256 of ``openings.jsonl``;
9. each given receipt is for this election, verifies, its ballot is the entry at its index,
   and its checkpoint is consistent with the final tree (checked against the signed tally).

It imports neither Flask nor PKCS#11 and never touches a database: an auditor runs it on a
downloaded copy with no trust in the server. The tree is a
:class:`~hsm_signer.log.tree.LevelTree` (32 bytes per node), so a million entries need
about 64 MB and a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .bundle import CHECKPOINT, SEALING, TALLY, KeyBundle
from .election import Election
from .errors import ConfigError, FormatError, HsmSignerError, VerificationError
from .log.checkpoint import Checkpoint, open_checkpoint
from .log.merkle import leaf_hash, verify_consistency
from .log.note import NoteVerifier, b64encode
from .log.leaf import SEALED_LEAF_VERSION
from .log.receipt import Receipt
from .openings import DIGEST_PREFIX, Opening
from .tally import Tally, definition_digest, open_tally
from .log.tree import LevelTree, MerkleTree
from .record import (
    CHECKPOINT_NAME,
    CHECKPOINTS_DIR,
    ELECTION_FILE,
    ENTRIES_FILE,
    FILE_FIELDS,
    KEYS_DIR,
    MANIFEST_FIELDS,
    MANIFEST_FILE,
    RECORD_VERSION,
    OPENINGS_FILE,
    TALLY_FILE,
)
from .recount import Recount, SealedRecount
from .signer import fingerprint
from .verify import verify_receipt

Report = Callable[[str], None]
Progress = Callable[[str, int, int], None]
_PROGRESS_EVERY = 1 << 16
CHECKPOINT_BATCH = 2000
"""Checkpoint files verified per batch (per task, when in worker processes)."""
#: From this many checkpoints on, their signatures are checked in several processes.
PARALLEL_CHECKPOINTS = 20_000
_READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class SignedCheckpoint:
    path: str
    checkpoint: Checkpoint


@dataclass(frozen=True)
class AuditResult:
    """What a passing audit established."""

    election: Election
    tree_size: int
    root_hash: bytes
    checkpoints: int
    tally: Tally
    tally_note: str
    receipts: int
    files: int
    keys_trusted_from: str
    fingerprints: dict[str, str] = field(default_factory=dict)


def _fail(message: str) -> VerificationError:
    return VerificationError(message)


def _sha256_file(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _record_files(root: Path) -> list[str]:
    """Every file of the record as a relative POSIX path, sorted; symbolic links are refused."""
    found: list[str] = []

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as listing:
            for entry in listing:
                relative = prefix + entry.name
                if entry.is_symlink():
                    raise _fail(f"{relative} is a symbolic link; a record holds plain files only")
                if entry.is_dir():
                    walk(entry.path, relative + "/")
                else:
                    found.append(relative)
    walk(str(root), "")
    return sorted(found)


def check_manifest(root: Path) -> int:
    """Check every file against MANIFEST.json; return how many files it lists."""
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise _fail(f"the record has no {MANIFEST_FILE}: it is incomplete (an export that did not finish?)")
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except ValueError as exc:
        raise FormatError(f"{MANIFEST_FILE} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or sorted(manifest) != sorted(MANIFEST_FIELDS):
        raise FormatError(f"{MANIFEST_FILE} must be an object with exactly {', '.join(MANIFEST_FIELDS)}")
    if manifest["version"] != RECORD_VERSION:
        raise FormatError(f"{MANIFEST_FILE}: version must be {RECORD_VERSION!r}, got {manifest['version']!r}")
    if not isinstance(manifest["files"], list):
        raise FormatError(f"{MANIFEST_FILE}: files must be a list")
    listed: dict[str, dict] = {}
    for i, item in enumerate(manifest["files"]):
        where = f"{MANIFEST_FILE} files[{i}]"
        if not isinstance(item, dict) or sorted(item) != sorted(FILE_FIELDS):
            raise FormatError(f"{where} must be an object with exactly {', '.join(FILE_FIELDS)}")
        path = item["path"]
        parts = PurePosixPath(path).parts if isinstance(path, str) else ()
        if not parts or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or path == MANIFEST_FILE:
            raise FormatError(f"{where}.path {path!r} is not a plain relative path inside the record")
        if path in listed:
            raise FormatError(f"{where} lists {path} twice")
        listed[path] = item
    present = [p for p in _record_files(root) if p != MANIFEST_FILE]
    for path in present:
        if path not in listed:
            raise _fail(f"{path} is in the record but not listed in {MANIFEST_FILE}: a file was added")
    present_set = set(present)
    for path, item in listed.items():
        if path not in present_set:
            raise _fail(f"{path} is listed in {MANIFEST_FILE} but missing from the record")
        digest, size = _sha256_file(os.path.join(root, path))
        if digest != item["sha256"] or size != item["size"]:
            raise _fail(f"{path} does not match {MANIFEST_FILE}: SHA-256 {digest} ({size} bytes), "
                        f"manifest says {item['sha256']} ({item['size']} bytes)")
    return len(listed)


def _load_bundle(root: Path, trusted: KeyBundle | None) -> tuple[KeyBundle, str]:
    try:
        in_record = KeyBundle.load(root / KEYS_DIR)
    except FormatError as exc:
        raise FormatError(f"{KEYS_DIR}/: {exc}") from None
    if trusted is None:
        return in_record, f"the record's own {KEYS_DIR}/ (compare its fingerprints with the ceremony's publication)"
    if in_record != trusted:
        ours = {k.purpose: k.fingerprint for k in in_record.keys if k.is_signing_key}
        theirs = {k.purpose: k.fingerprint for k in trusted.keys if k.is_signing_key}
        detail = "; ".join(f"{p} key {ours.get(p)} vs trusted {theirs.get(p)}" for p in sorted(set(ours) | set(theirs))
                           if ours.get(p) != theirs.get(p)) or "same keys, other metadata"
        raise _fail(f"the record's {KEYS_DIR}/keys.json is not the trusted key bundle ({detail})")
    return trusted, "the trusted key bundle given by the auditor (the record's copy is identical)"


def _load_election(root: Path) -> Election:
    try:
        return Election.from_json((root / ELECTION_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError, HsmSignerError) as exc:
        raise FormatError(f"{ELECTION_FILE} is not a valid election definition: {exc}") from None


def _open_checkpoint_file(directory: str, name: str, verifier: NoteVerifier, origin: str) -> SignedCheckpoint:
    path = f"{CHECKPOINTS_DIR}/{name}"
    match = CHECKPOINT_NAME.fullmatch(name)
    if match is None:
        raise _fail(f"{path} is not named <size>.note (decimal tree size, no leading zeros)")
    try:
        with open(os.path.join(directory, name), "rb") as handle:
            note = handle.read()
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from None
    try:
        checkpoint = open_checkpoint(note, [verifier])
    except VerificationError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    if checkpoint.origin != origin:
        raise _fail(f"{path} is for log {checkpoint.origin!r}, not this election's {origin!r}")
    if checkpoint.size != int(match.group(1)):
        raise _fail(f"{path} covers {checkpoint.size} entries, not the {match.group(1)} its name says")
    return SignedCheckpoint(path, checkpoint)


def _open_checkpoint_files(directory: str, names: list[str], verifier: NoteVerifier,
                           origin: str) -> list[SignedCheckpoint]:
    """Worker: verify a batch of checkpoint files (run in a separate process for large records)."""
    return [_open_checkpoint_file(directory, name, verifier, origin) for name in names]


def _load_checkpoints(root: Path, bundle: KeyBundle, election: Election, *, workers: int,
                      progress: Progress | None, parallel_from: int, batch_size: int) -> list[SignedCheckpoint]:
    directory = os.path.join(root, CHECKPOINTS_DIR)
    if not os.path.isdir(directory):
        raise _fail(f"the record has no {CHECKPOINTS_DIR}/ directory")
    verifier = bundle.verifier(CHECKPOINT)
    origin = election.log_origin  # as the record's election.json names it (hsm-signer/<id> in older records)
    with os.scandir(directory) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            raise _fail(f"{CHECKPOINTS_DIR}/{entry.name} is not a checkpoint file")
    names = [entry.name for entry in entries]
    if not names:
        raise _fail(f"{CHECKPOINTS_DIR}/ holds no checkpoint: there is no signed final tree to check against")
    batches = [names[i:i + batch_size] for i in range(0, len(names), batch_size)]
    found: list[SignedCheckpoint] = []
    if workers > 1 and len(names) >= parallel_from:
        # One signature check per checkpoint dominates a log with a checkpoint per ballot;
        # spread the batches over processes and take results back in file order, so the
        # first failure reported is the same as in a serial run.
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold threads
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        try:
            futures = [pool.submit(_open_checkpoint_files, directory, batch, verifier, origin) for batch in batches]
            for future in futures:
                found += future.result()
                if progress:
                    progress("verifying checkpoints", len(found), len(names))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for batch in batches:
            found += _open_checkpoint_files(directory, batch, verifier, origin)
            if progress and len(names) > batch_size:
                progress("verifying checkpoints", len(found), len(names))
    found.sort(key=lambda c: c.checkpoint.size)
    return found


def _is_sealed_record(root: Path) -> bool:
    """Does the record's first entry claim leaf v2 (a sealed election)?"""
    try:
        with open(root / ENTRIES_FILE, "rb") as handle:
            first = handle.readline()
    except OSError:
        return False
    return first.rstrip(b"\n").endswith(b'"version":"' + SEALED_LEAF_VERSION.encode() + b'"}')


def _read_entries(root: Path, election: Election, expected: int,
                  progress: Progress | None) -> tuple[Recount, LevelTree, str | None]:
    sealed = _is_sealed_record(root)
    recount: Recount = SealedRecount(election, reopen=True) if sealed else Recount(election)
    openings_hash = hashlib.sha256()
    openings = _opening_lines(root) if sealed else None
    levels, hashes = LevelTree(), bytearray()
    path = root / ENTRIES_FILE
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise _fail(f"cannot read {ENTRIES_FILE}: {exc.strerror}") from None
    with handle:
        for line in handle:
            index = recount.size
            if not line.endswith(b"\n"):
                raise _fail(f"{ENTRIES_FILE} line {index + 1} (entry {index}) does not end with a newline: "
                            "the file is truncated")
            leaf = line[:-1]
            try:
                if openings is None:
                    recount.add(leaf)
                else:
                    opening_line = next(openings, None)
                    if opening_line is None:
                        raise _fail(f"{OPENINGS_FILE} ends after {index} lines, but {ENTRIES_FILE} has more entries: "
                                    f"entry {index} has no opening")
                    openings_hash.update(opening_line)
                    opening = Opening.from_line(opening_line, f"{OPENINGS_FILE} line {index + 1}")
                    assert isinstance(recount, SealedRecount)
                    recount.add_sealed(leaf, opening)
            except VerificationError as exc:
                raise type(exc)(f"{ENTRIES_FILE} line {index + 1}: {exc}", exc.code) from None
            hashes += leaf_hash(leaf)
            if not recount.size % _PROGRESS_EVERY:
                levels.extend(hashes)
                hashes.clear()
                if progress:
                    progress("reading entries", recount.size, expected)
    levels.extend(hashes)
    if progress:
        progress("reading entries", recount.size, expected)
    if openings is not None and next(openings, None) is not None:
        raise _fail(f"{OPENINGS_FILE} has more lines than the {recount.size} entries of {ENTRIES_FILE}: "
                    "an opening was added")
    return recount, levels, (DIGEST_PREFIX + openings_hash.hexdigest()) if openings is not None else None


def _opening_lines(root: Path) -> Iterator[bytes]:
    try:
        handle = open(root / OPENINGS_FILE, "rb")
    except OSError as exc:
        raise _fail(f"the entries are sealed ballots (leaf v2), so the record must have {OPENINGS_FILE}: "
                    f"{exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                raise _fail(f"{OPENINGS_FILE} line {number} does not end with a newline: the file is truncated")
            yield line


def _locate(tree: MerkleTree, checkpoints: list[SignedCheckpoint], entries: int) -> str:
    """Which signed checkpoints the entries still agree with, to say where the damage starts."""
    last_good = None
    for signed in checkpoints:
        size = signed.checkpoint.size
        if size > entries or tree.root(size) != signed.checkpoint.root_hash:
            if last_good is None:
                return f"; the entries already disagree with the first checkpoint, {signed.path} (size {size})"
            return (f"; the first {last_good.checkpoint.size} entries agree with {last_good.path}, but not with "
                    f"{signed.path}: the damage is among entries {last_good.checkpoint.size} to {size - 1}")
        last_good = signed
    return ""


def _check_receipt(path: Path, entries_name: str, election: Election, bundle: KeyBundle, tree: MerkleTree,
                   final: Checkpoint, tally_note: str) -> None:
    where = f"receipt {path.name}"
    try:
        receipt = Receipt.from_json(path.read_bytes())
    except OSError as exc:
        raise _fail(f"cannot read {where}: {exc.strerror}") from None
    except VerificationError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    if receipt.election != election.id:
        raise _fail(f"{where} is for election {receipt.election!r}, not {election.id!r} (this record): "
                    "it is a receipt from another election")
    try:
        verified = verify_receipt(receipt, bundle, origin=election.log_origin)
    except VerificationError as exc:
        raise type(exc)(f"{where} does not verify: {exc}") from None
    if verified.tree_size > final.size:
        raise _fail(f"{where} is signed for a log of {verified.tree_size} entries, more than the {final.size} of the "
                    f"final tree: the log lost entries after this receipt was issued")
    if tree.leaf_hash(receipt.leaf_index) != leaf_hash(receipt.leaf):
        raise _fail(f"{where}: ballot {verified.ballot_id} is not entry {receipt.leaf_index} of {entries_name}: "
                    "a ballot with a signed receipt was changed, moved or dropped")
    proof = tree.consistency_proof(verified.tree_size, final.size)
    try:
        verify_receipt(receipt, bundle, tally_note, proof, origin=election.log_origin)
    except VerificationError as exc:
        raise type(exc)(f"{where} is not consistent with the signed tally: {exc}") from None


def audit_record(record_dir: str | os.PathLike, *, receipts: Iterable[str | os.PathLike] = (),
                 trusted_bundle: KeyBundle | None = None, report: Report | None = None,
                 progress: Progress | None = None, workers: int | None = None,
                 parallel_from: int = PARALLEL_CHECKPOINTS, checkpoint_batch: int = CHECKPOINT_BATCH) -> AuditResult:
    """Audit the record in ``record_dir``; raise VerificationError at the first failure.

    ``report`` receives one line per passed check; ``progress(stage, done, total)`` is
    called while reading large files. ``receipts`` are receipt JSON files to check too.
    ``workers`` processes check checkpoint signatures when there are very many
    (default: one per CPU; 1 keeps everything in this process) from ``parallel_from``
    checkpoints on, ``checkpoint_batch`` files per task.
    """
    root = Path(record_dir)
    say = report or (lambda line: None)
    if not root.is_dir():
        raise _fail(f"{root} is not a directory; give the path of an exported election record")

    files = check_manifest(root)
    say(f"OK   manifest: {files} files match {MANIFEST_FILE} (no file missing, extra or changed)")

    bundle, trusted_from = _load_bundle(root, trusted_bundle)
    checkpoint_key, tally_key = bundle.key(CHECKPOINT), bundle.key(TALLY)
    election = _load_election(root)
    say(f"OK   keys: ceremony {bundle.ceremony_id}, trusted from {trusted_from}")
    say(f"       checkpoint key {checkpoint_key.note_key_name} sha256:{checkpoint_key.fingerprint}")
    say(f"       tally key      {tally_key.note_key_name} sha256:{tally_key.fingerprint}")
    if bundle.has_sealing_key:
        say(f"       sealing key    {bundle.key(SEALING).label} sha256:{bundle.key(SEALING).fingerprint}")
    say(f"OK   election: {election.id} ({election.title}), {len(election.contests)} contest(s), "
        f"definition {definition_digest(election)}")

    checkpoints = _load_checkpoints(root, bundle, election, workers=workers or os.cpu_count() or 1,
                                    parallel_from=parallel_from, batch_size=checkpoint_batch,
                                    progress=progress)
    final_signed = checkpoints[-1]
    final = final_signed.checkpoint
    say(f"OK   checkpoints: {len(checkpoints):,} signed by {checkpoint_key.note_key_name}, sizes "
        f"{checkpoints[0].checkpoint.size} to {final.size}; final: {final_signed.path}")

    recount, levels, openings_digest = _read_entries(root, election, final.size, progress)
    if openings_digest is None:
        say(f"OK   entries: {recount.size:,} leaves parse, belong to {election.id}, fit its contests, unique ballot ids")
    else:
        say(f"OK   entries: {recount.size:,} sealed ballots parse, belong to {election.id}, unique ballot ids; "
            f"every one re-opened with its published secret to exactly its published opening ({OPENINGS_FILE})")

    tree = levels.tree()
    if recount.size != final.size:
        kind = "entries are missing" if recount.size < final.size else "entries were added"
        raise _fail(f"{ENTRIES_FILE} has {recount.size} entries, but the final checkpoint {final_signed.path} covers "
                    f"{final.size}: {kind}{_locate(tree, checkpoints, recount.size)}")
    root_hash = tree.root()
    if root_hash != final.root_hash:
        raise _fail(f"the {recount.size} entries of {ENTRIES_FILE} hash to root {b64encode(root_hash)}, but "
                    f"{final_signed.path} signs root {b64encode(final.root_hash)}: an entry was changed or the "
                    f"entries were reordered{_locate(tree, checkpoints, recount.size)}")
    say(f"OK   the entries hash to the root signed in the final checkpoint ({final.size:,} entries, "
        f"root {b64encode(final.root_hash)})")

    for done, signed in enumerate(checkpoints, 1):
        cp = signed.checkpoint
        proof = tree.consistency_proof(cp.size, final.size)
        try:
            verify_consistency(cp.size, final.size, proof, cp.root_hash, final.root_hash)
        except VerificationError as exc:
            raise type(exc)(f"{signed.path} (size {cp.size}) is not consistent with the final checkpoint "
                            f"{final_signed.path}: the log signed two different histories: {exc}") from None
        if progress and not done % 4096:
            progress("checking consistency", done, len(checkpoints))
    say(f"OK   consistency: every checkpoint is a prefix of the final tree ({len(checkpoints):,} proofs verified)")

    tally_path = root / TALLY_FILE
    try:
        tally_note = tally_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {TALLY_FILE}: {exc}") from None
    try:
        signed_tally, key_name = open_tally(tally_note, bundle)
    except VerificationError as exc:
        raise type(exc)(f"{TALLY_FILE}: {exc}") from None
    if signed_tally.election != election.id:
        raise _fail(f"{TALLY_FILE} is the tally of election {signed_tally.election!r}, not {election.id!r}")
    if signed_tally.origin != election.log_origin:
        raise _fail(f"{TALLY_FILE} is the tally of log {signed_tally.origin!r}, not this election's {election.log_origin!r}")
    if (signed_tally.size, signed_tally.root_hash) != (final.size, final.root_hash):
        raise _fail(f"{TALLY_FILE} is bound to a tree of {signed_tally.size} entries with root "
                    f"{b64encode(signed_tally.root_hash)}, not the final tree ({final.size} entries, root "
                    f"{b64encode(final.root_hash)}): the tally was not counted from this log")
    if signed_tally.definition != definition_digest(election):
        raise _fail(f"{TALLY_FILE} was signed for election definition {signed_tally.definition}, but "
                    f"{ELECTION_FILE} hashes to {definition_digest(election)}: the definition was changed")
    say(f"OK   tally: signed by {key_name}, bound to the final tree ({final.size:,} entries, same root) and definition")

    if openings_digest is not None and signed_tally.openings != openings_digest:
        raise _fail(f"{TALLY_FILE} binds openings {signed_tally.openings}, but {OPENINGS_FILE} hashes to "
                    f"{openings_digest}: the openings were changed after the tally was signed")
    if openings_digest is None and signed_tally.openings is not None:
        raise _fail(f"{TALLY_FILE} binds openings {signed_tally.openings}, but the entries are not sealed ballots")
    if openings_digest is not None:
        say(f"OK   openings: {OPENINGS_FILE} is the file the signed tally binds ({openings_digest})")
    recounted = recount.tally(root_hash, openings_digest)
    signed_lines, recounted_lines = signed_tally.extension_lines(), recounted.extension_lines()
    for number, (signed_line, counted_line) in enumerate(zip(signed_lines, recounted_lines), 4):
        if signed_line != counted_line:
            raise _fail(f"{TALLY_FILE} line {number} signs {signed_line!r}, but the recount of {ENTRIES_FILE} gives "
                        f"{counted_line!r}")
    if signed_lines != recounted_lines:
        raise _fail(f"{TALLY_FILE} has {len(signed_lines)} count lines, but the recount against {ELECTION_FILE} "
                    f"gives {len(recounted_lines)}: the contests or options differ")
    say(f"OK   recount: all {len(signed_lines)} tally lines equal the recount of the entries")

    receipt_paths = [Path(p) for p in receipts]
    for path in receipt_paths:
        _check_receipt(path, ENTRIES_FILE, election, bundle, tree, final, tally_note)
    if receipt_paths:
        say(f"OK   receipts: {len(receipt_paths)} verified, each ballot is in the final tree and its checkpoint "
            "is consistent with the signed tally")

    return AuditResult(
        election=election, tree_size=final.size, root_hash=final.root_hash, checkpoints=len(checkpoints),
        tally=signed_tally, tally_note=tally_note, receipts=len(receipt_paths), files=files,
        keys_trusted_from=trusted_from,
        fingerprints={CHECKPOINT: fingerprint(checkpoint_key.public_key_der), TALLY: fingerprint(tally_key.public_key_der)},
    )


def receipt_files(directory: str | os.PathLike) -> list[Path]:
    """The receipt files (``*.json``) of a directory, sorted by name."""
    path = Path(directory)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory of receipts")
    return sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
