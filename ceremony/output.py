"""Writing ceremony outputs without ever overwriting anything.

Every directory is created with ``mkdir`` (which fails if it exists) and every file is
opened with exclusive create (``open(..., "x")``). Share files are written mode 0600 in
their own directory, never inside a published bundle.

This module must never choose what goes into a file (the runner does) and never delete.
"""

from __future__ import annotations

import os
from pathlib import Path

from hsm_signer.errors import ConfigError


def refuse_existing(path: Path, what: str, fix: str) -> None:
    if path.exists() or path.is_symlink():
        raise ConfigError(f"{what} {path} already exists; {fix} (nothing is ever overwritten)")


def make_new_dir(path: Path, mode: int = 0o755) -> Path:
    """Create ``path`` (and missing parents); fail if ``path`` itself exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; nothing is ever overwritten") from None
    return path


def write_new_files(directory: Path, files: dict[str, bytes]) -> list[Path]:
    """Create ``directory`` and write each file in it with exclusive create."""
    make_new_dir(directory)
    written = []
    for name, data in files.items():
        target = directory / name
        with open(target, "xb") as out:
            out.write(data)
        written.append(target)
    return written


def write_secret_file(path: Path, text: str) -> Path:
    """Create ``path`` readable only by its owner (0600), failing if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def next_free_dir(base: Path, suffix: str) -> Path:
    """``<base><suffix>-1``, ``-2``, ... : the first that does not exist yet."""
    number = 1
    while True:
        candidate = base.with_name(f"{base.name}{suffix}-{number}")
        if not (candidate.exists() or candidate.is_symlink()):
            return candidate
        number += 1
