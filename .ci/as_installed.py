"""Run a static checker on the package as it installs: one ``hsm_signer`` with web/ and ceremony/ inside.

The repository keeps ``web/`` and ``ceremony/`` as folders of their own and setuptools installs
them as ``hsm_signer.web`` and ``hsm_signer.ceremony`` (``[tool.setuptools.package-dir]`` in
pyproject.toml). import-linter and mypy find modules by walking folders, so on the repository
they would see three unrelated packages. This script lays out a tree of symbolic links shaped
like the installed package in a temporary directory and runs the checker there with the
repository's pyproject.toml; paths in the checker's output are mapped back to the repository.

    python .ci/as_installed.py lint-imports     # the layer contracts ([tool.importlinter])
    python .ci/as_installed.py mypy             # the type check ([tool.mypy])

Exit status: the checker's.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "hsm_signer"


def lay_out(root: Path) -> dict[str, str]:
    """Link the package into ``root`` as it installs; returns {tree prefix: repository prefix}."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    package = root / PACKAGE
    package.mkdir()
    for child in (REPO / PACKAGE).iterdir():
        if child.name != "__pycache__":
            (package / child.name).symlink_to(child)
    prefixes = {}
    for dotted, folder in mapping.items():
        parts = dotted.split(".")
        if parts[0] != PACKAGE or len(parts) != 2:
            raise SystemExit(f"as_installed.py: cannot lay out package-dir entry {dotted!r}")
        (package / parts[1]).symlink_to(REPO / folder)
        prefixes[f"{PACKAGE}/{parts[1]}/"] = f"{folder}/"
    prefixes[f"{PACKAGE}/"] = f"{PACKAGE}/"
    return prefixes


def command(tool: str, args: list[str]) -> list[str]:
    config = str(REPO / "pyproject.toml")
    if tool == "lint-imports":
        return [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())", config, "--no-cache", *args]
    if tool == "mypy":
        return [sys.executable, "-m", "mypy", "--config-file", config,
                "--cache-dir", str(REPO / ".mypy_cache"), *(args or ["-p", PACKAGE])]
    raise SystemExit(f"as_installed.py: unknown checker {tool!r}; use lint-imports or mypy")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hsm-signer-tree-") as tmp:
        root = Path(tmp)
        prefixes = lay_out(root)
        done = subprocess.run(command(argv[0], argv[1:]), cwd=root, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    for line in done.stdout.splitlines():
        for tree, repo in prefixes.items():
            if line.startswith(tree):
                line = repo + line[len(tree):]
                break
        print(line)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
