"""The published election record: one directory an auditor can check with no database and no HSM.

Layout (``record export`` writes it; :mod:`hsm_signer.audit` checks it; docs/AUDIT.md and
the record's own README.md describe it)::

    README.md              what each file is and how to audit the record
    MANIFEST.json          SHA-256 and size of every other file
    election.json          the election definition (contests, options, titles, the log's origin)
    keys/                  a copy of the ceremony's key bundle directory (keys.json, transcript, ...)
    entries.jsonl          every log leaf in index order: the exact leaf bytes, then one newline
    checkpoints/<size>.note  every checkpoint the log signed, named by tree size (decimal)
    tally.txt              the signed tally (a checkpoint of the final tree, signed by the tally key)
    openings.jsonl         sealed elections: each entry's opening (HPKE secret, selections or why invalid),
                           one canonical-JSON line per entry in log order; its SHA-256 is in the tally

A leaf is canonical JSON (RFC 8785), which escapes every control character, so a leaf
never contains a raw newline byte and "one leaf per line" is binary-exact: line *i*
without its final ``\\n`` is the byte string hashed as leaf *i*.

Export reads the database and the key bundle only; it needs no HSM. It refuses to write
into an existing directory and writes every file exclusive-create; on failure it removes
the directory it created, so a half-written record never looks finished (the manifest is
written last). This module must never write a voting code, a code hash, a PIN or a
database row that is not public (codes, code links) into the record.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .bundle import KEYS_FILE, KeyBundle
from .election import CLOSED
from .errors import ConfigError, ElectionError, FormatError, VerificationError
from .log.checkpoint import Checkpoint
from .log.note import parse_note
from .tally import definition_digest, open_tally

RECORD_VERSION = "hsm-signer/record/v1"
README_FILE = "README.md"
MANIFEST_FILE = "MANIFEST.json"
ELECTION_FILE = "election.json"
KEYS_DIR = "keys"
ENTRIES_FILE = "entries.jsonl"
CHECKPOINTS_DIR = "checkpoints"
TALLY_FILE = "tally.txt"
OPENINGS_FILE = "openings.jsonl"
CHECKPOINT_NAME = re.compile(r"(0|[1-9][0-9]*)\.note")
MANIFEST_FIELDS = ("version", "election", "tree_size", "files")
FILE_FIELDS = ("path", "sha256", "size")
#: Entries read from storage per query while exporting or tallying (bounded memory on a million entries).
READ_CHUNK = 50_000


def checkpoint_file(size: int) -> str:
    """The record path of the checkpoint of ``size`` leaves: ``checkpoints/<size>.note``."""
    return f"{CHECKPOINTS_DIR}/{size}.note"


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    election: str
    tree_size: int
    checkpoints: int
    files: int


class _Writer:
    """Exclusive-create files under one directory, hashing them as they are written."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, tuple[str, int]] = {}

    def open(self, relative: str) -> "_HashingFile":
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return _HashingFile(self, relative, open(path, "xb"))

    def write(self, relative: str, data: bytes) -> None:
        with self.open(relative) as out:
            out.write(data)


class _HashingFile:
    def __init__(self, writer: _Writer, relative: str, handle):
        self._writer, self._relative, self._handle = writer, relative, handle
        self._hash, self._size = hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._hash.update(data)
        self._size += len(data)

    def __enter__(self) -> "_HashingFile":
        return self

    def __exit__(self, *exc) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._writer.files[self._relative] = (self._hash.hexdigest(), self._size)


def _bundle_directory(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def export_record(storage, bundle_dir: str | os.PathLike, election_id: str, out_dir: str | os.PathLike, *,
                  progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Write the election record of a closed, tallied election into the new directory ``out_dir``.

    ``storage`` is the service's storage; ``bundle_dir`` the ceremony bundle the service
    uses (``keys.bundle`` of the configuration). Checks before writing anything that the
    stored tally verifies with the bundle's tally key and covers the final checkpoint.
    """
    record = storage.get_election(election_id)
    if record.state != CLOSED:
        raise ElectionError(f"election {election_id!r} is {record.state}: close the poll and sign the tally "
                            "before exporting its record")
    bundle_path = _bundle_directory(Path(bundle_dir))
    bundle = KeyBundle.load(bundle_path)
    note = storage.get_tally(election_id)
    if note is None:
        raise ElectionError(f"election {election_id!r} has no signed tally yet; run `hsm-signer tally {election_id}` first")
    tally, _ = open_tally(note, bundle)
    checkpoints = storage.checkpoints(election_id)
    size = storage.tree_size(election_id)
    if not checkpoints or checkpoints[-1][0] != size or tally.size != size:
        raise VerificationError(
            f"election {election_id!r}: the stored tree has {size} entries, the latest checkpoint covers "
            f"{checkpoints[-1][0] if checkpoints else 'nothing'} and the signed tally {tally.size}; "
            "they must agree before a record is published")
    if tally.definition != definition_digest(record.election):
        raise VerificationError(f"the signed tally of {election_id!r} was made for another election definition "
                                f"({tally.definition}); the stored definition hashes to {definition_digest(record.election)}")
    for checkpoint_size, checkpoint_note in checkpoints:
        parsed = Checkpoint.from_text(parse_note(checkpoint_note)[0])
        if parsed.size != checkpoint_size:
            raise VerificationError(f"the stored checkpoint filed under size {checkpoint_size} says size {parsed.size}")

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.mkdir()
    except FileExistsError:
        raise ConfigError(f"{out} already exists; a record is only ever written into a new directory") from None
    try:
        writer = _Writer(out)
        writer.write(ELECTION_FILE, record.election.to_json().encode("utf-8"))
        _copy_bundle(writer, bundle_path)
        _write_entries(writer, storage, election_id, size, progress)
        for checkpoint_size, checkpoint_note in checkpoints:
            writer.write(checkpoint_file(checkpoint_size), checkpoint_note.encode("utf-8"))
        writer.write(TALLY_FILE, note.encode("utf-8"))
        if tally.openings is not None:
            _write_openings(writer, storage, election_id, size, tally.openings)
        writer.write(README_FILE, record_readme(election_id, record.election.title, size, len(checkpoints),
                                                sealed=tally.openings is not None).encode("utf-8"))
        manifest = {
            "version": RECORD_VERSION,
            "election": election_id,
            "tree_size": size,
            "files": [{"path": path, "sha256": digest, "size": length}
                      for path, (digest, length) in sorted(writer.files.items())],
        }
        writer.write(MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return ExportResult(directory=out, election=election_id, tree_size=size, checkpoints=len(checkpoints),
                        files=len(writer.files))


def _copy_bundle(writer: _Writer, bundle_path: Path) -> None:
    if not (bundle_path / KEYS_FILE).is_file():
        raise FormatError(f"the key bundle directory {bundle_path} has no {KEYS_FILE}")
    for directory, subdirs, names in os.walk(bundle_path):
        subdirs.sort()
        for name in sorted(names):
            source = Path(directory) / name
            relative = source.relative_to(bundle_path).as_posix()
            writer.write(f"{KEYS_DIR}/{relative}", source.read_bytes())


def _write_entries(writer: _Writer, storage, election_id: str, size: int,
                   progress: Callable[[int, int], None] | None) -> None:
    with writer.open(ENTRIES_FILE) as out:
        for start in range(0, size, READ_CHUNK):
            end = min(start + READ_CHUNK, size)
            chunk = storage.entries(election_id, start, end)
            if len(chunk) != end - start:
                raise VerificationError(f"storage returned {len(chunk)} entries for indexes {start}..{end - 1} of "
                                        f"{election_id!r}: the log has a gap")
            for offset, leaf in enumerate(chunk):
                if b"\n" in leaf or not leaf:
                    raise FormatError(f"entry {start + offset} is empty or holds a newline byte, so it is not canonical "
                                      "JSON; the log is corrupt and cannot be published as one leaf per line")
            out.write(b"\n".join(chunk) + b"\n")
            if progress:
                progress(end, size)


def _write_openings(writer: _Writer, storage, election_id: str, size: int, digest: str) -> None:
    hashed = hashlib.sha256()
    with writer.open(OPENINGS_FILE) as out:
        for start in range(0, size, READ_CHUNK):
            end = min(start + READ_CHUNK, size)
            lines = storage.openings(election_id, start, end)
            if len(lines) != end - start:
                raise VerificationError(f"storage returned {len(lines)} openings for indexes {start}..{end - 1} of "
                                        f"{election_id!r}; run `hsm-signer tally {election_id}` to finish opening")
            data = b"".join(lines)
            hashed.update(data)
            out.write(data)
    if "sha256:" + hashed.hexdigest() != digest:
        raise VerificationError(f"the stored openings of {election_id!r} are not the ones the signed tally binds "
                                f"({digest}); the database was altered after the tally")


#: Every archive member gets this timestamp, so the same record always zips to the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def archive_record(record_dir: str | os.PathLike, out: BinaryIO, *, folder: str | None = None) -> int:
    """Write an exported record directory to ``out`` as a ZIP archive (the bulletin board's download).

    Members are the record's files under one top folder (default: the record directory's
    name), sorted, with fixed timestamps and permissions, so the same record always gives
    the same archive. Large files are streamed. ``out`` needs no seeking (a response body
    works). Returns the number of files. The archive adds nothing: unzip it and audit.
    """
    root = Path(record_dir)
    if not (root / MANIFEST_FILE).is_file():
        raise FormatError(f"{root} is not an exported election record (no {MANIFEST_FILE})")
    top = folder or root.name
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name in names:
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(root / name, "rb") as source, archive.open(info, "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1 << 20)
    return len(names)


class RecordBusyError(ElectionError):
    """Another request (or process) is exporting this election's record right now."""

    def __init__(self, election_id: str):
        self.election_id = election_id
        super().__init__(f"the record of election {election_id!r} is being prepared; try again in a few seconds")


def publish_record(storage, bundle_dir: str | os.PathLike, election_id: str,
                   published_dir: str | os.PathLike) -> Path:
    """The ZIP of a tallied election's record in ``published_dir``, exported once and kept.

    What the bulletin board serves. One export at a time per election, across threads and
    processes (an exclusive ``flock`` on ``.<election>.lock``): a request that finds one
    running gets :class:`RecordBusyError` at once rather than a second export. The record
    is exported and zipped in a temporary directory beside the archive, which is then
    renamed into place, so nobody sees half of it; the directory is removed on every path,
    and one left by a crash (``kill -9``) is removed by the next export, which, holding the
    lock, knows no other export of that election runs. Raises like :func:`export_record`
    when the election is not closed and tallied.
    """
    base = Path(published_dir)
    archive = base / f"{election_id}.zip"
    if archive.exists():
        return archive
    base.mkdir(parents=True, exist_ok=True)
    lock = os.open(base / f".{election_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecordBusyError(election_id) from None
        if archive.exists():  # made by the export we would have waited for
            return archive
        for stale in base.glob(f".{glob.escape(election_id)}-*"):  # left by a crashed export
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{election_id}-", dir=base))
        try:
            export_record(storage, bundle_dir, election_id, work / election_id)
            with open(work / "record.zip", "wb") as out:
                archive_record(work / election_id, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(work / "record.zip", archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        os.close(lock)  # releases the lock
    return archive


OPENINGS_ROW = (f"| `{OPENINGS_FILE}` | the opening of every sealed entry, in log order: its HPKE secret and the "
                "selections it decrypts to, or why it is invalid; the signed tally binds its SHA-256 |\n")


def record_readme(election_id: str, title: str, size: int, checkpoints: int, *, sealed: bool = False) -> str:
    """The README.md placed in every record."""
    return f"""# Election record: {title} (`{election_id}`)

This directory is the published record of election `{election_id}`: {size} log entries,
{checkpoints} signed checkpoints and the signed tally. Everything in it is public; it holds
no voting codes and nothing that identifies a voter.

| path | contents |
| --- | --- |
| `{ELECTION_FILE}` | the election definition: contests, options, titles, choice limits, and `origin`, the name of its log in every checkpoint |
| `{KEYS_DIR}/` | a copy of the key ceremony's bundle: `keys.json` (public keys), transcript, signatures |
| `{ENTRIES_FILE}` | every log entry in index order; line *i* (from 0) is the exact canonical-JSON leaf *i*, followed by one newline byte (a canonical leaf never contains a raw newline) |
| `{CHECKPOINTS_DIR}/<size>.note` | every checkpoint the log signed, named by its tree size (signed note, c2sp.org/tlog-checkpoint) |
| `{TALLY_FILE}` | the signed tally: a checkpoint of the final tree with `tally <contest> <option> <count>` lines, signed by the tally key |
| `{MANIFEST_FILE}` | the SHA-256 and size of every other file (integrity of the copy, not a signature) |
{OPENINGS_ROW if sealed else ''}
## Audit it

With hsm-signer installed (no database and no HSM are needed):

```sh
hsm-signer audit path/to/this/record --keys path/to/the/published/ceremony/bundle
hsm-signer audit path/to/this/record --receipts my-receipts/     # also check your receipts
```

The audit checks the manifest, every checkpoint signature, that the entries hash to the
final checkpoint, that every checkpoint is consistent with the final one, the recount
against the signed tally, and the tally signature and its binding to the final tree.
Compare the key fingerprints it prints with the ones the key ceremony published: the
record's own `{KEYS_DIR}/` proves nothing if the whole record was replaced.

Formats: docs/FORMATS.md of hsm-signer; what the audit proves and what it does not:
docs/AUDIT.md.
"""
