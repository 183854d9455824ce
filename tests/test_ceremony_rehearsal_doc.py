"""ceremony/CEREMONY.md section 7, followed command by command in a fresh folder, completes;
and the rehearsal refuses at its check step, before anything changes, without a SoftHSM
configuration to make its token in."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import HSM_SIGNER_COMMAND, require

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "ceremony" / "CEREMONY.md").read_text(encoding="utf-8")


def _section_7_commands() -> list[str]:
    section = DOC[DOC.index("## 7. Rehearsal with SoftHSM"):DOC.index("## 8.")]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line for line in block.splitlines() if line.strip()]


def _checkout_like(tmp_path: Path) -> Path:
    """A folder laid out as the checkout the document speaks from (its example configs)."""
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "ceremony" / "examples", work / "ceremony" / "examples")
    (work / "keys").mkdir()
    return work


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    # `hsm-signer` is the console script under test, never whatever PATH finds.
    prologue = f"set -euo pipefail\nhsm-signer() {{ {shlex.join(HSM_SIGNER_COMMAND)} \"$@\"; }}\n"
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    return subprocess.run(["bash", "-c", prologue + script], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=300)


@pytest.fixture
def softhsm_installed():
    from hsm_signer import softhsm
    require(softhsm.find_module() is not None and shutil.which("softhsm2-util") is not None,
            "SoftHSM2 is not installed (apt-get install softhsm2)")


def test_the_documented_rehearsal_completes_command_by_command(tmp_path, softhsm_installed):
    commands = _section_7_commands()
    assert any("ceremony run ceremony/examples/rehearsal.toml --non-interactive" in c for c in commands)
    work = _checkout_like(tmp_path)
    result = _bash("\n".join(commands), work)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"Ceremony rehearsal complete\. Bundle: \S*keys/rehearsal\n", result.stdout)
    grouped = re.search(r"Transcript head \(witnesses: write it down[^\n]*\n  ([0-9a-f ]+)\n  ([0-9a-f ]+)\n",
                        result.stdout)
    assert grouped, result.stdout[-2000:]
    # The one head witnesses write down at the close is the one verify prints for them.
    assert f"  {grouped[1]}\n  {grouped[2]}\nVERIFIED: every check passed for ceremony rehearsal" in result.stdout
    assert (work / "keys" / "rehearsal" / "keys.json").is_file()
    assert sorted(p.name for p in (work / "rehearsal-shares" / "rehearsal").iterdir())[:1] == ["share-kim-holder.txt"]


def test_what_a_rehearsal_leaves_in_a_checkout_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "rehearsal/softhsm2.conf", "keys/rehearsal/keys.json",
                              "keys/rehearsal.aborted-1/transcript.jsonl", "rehearsal-shares/rehearsal/share-a.txt"],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert ignored.stdout.split() == ["rehearsal/softhsm2.conf", "keys/rehearsal/keys.json",
                                      "keys/rehearsal.aborted-1/transcript.jsonl",
                                      "rehearsal-shares/rehearsal/share-a.txt"]


@pytest.mark.parametrize("prepare, problem", [
    ("", r"the SoftHSM configuration \S+/rehearsal/softhsm2.conf does not exist"),
    ("mkdir -p rehearsal && printf 'directories.tokendir = %s\\n' \"$PWD/rehearsal/none\" > rehearsal/softhsm2.conf",
     r"the token directory \S+/rehearsal/none named in \S+ does not exist"),
])
def test_a_rehearsal_without_its_softhsm_configuration_stops_before_anything_changes(tmp_path, softhsm_installed,
                                                                                    prepare, problem):
    work = _checkout_like(tmp_path)
    result = _bash(f"{prepare}\nexport SOFTHSM2_CONF=$PWD/rehearsal/softhsm2.conf\n"
                   "hsm-signer ceremony run ceremony/examples/rehearsal.toml --non-interactive", work)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(problem + r"; create it as ceremony/CEREMONY.md section 7 shows \(nothing was changed\)",
                     result.stderr), result.stderr
    assert "Step 5" not in result.stdout  # no share was drawn or shown
    assert sorted(p.name for p in (work / "keys").iterdir()) == []
    assert not (work / "rehearsal-shares").exists()
