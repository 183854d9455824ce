"""``hsm-signer ceremony run|verify|retire`` as officials and auditors use them: real processes,
exit statuses, and an interactive ceremony driven through its terminal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import io

import pytest

from hsm_signer.ceremony.config import REHEARSAL_EXAMPLE
from hsm_signer.ceremony.io import CLEAR_SCREEN, CeremonyAbortedError, TerminalIO
from hsm_signer.commands.ceremony import parse_overrides
from hsm_signer.errors import ConfigError

from harness import HSM_SIGNER_COMMAND
from test_ceremony_run import _labels  # one label counter for every ceremony token of this process

def cli(*args: str, cwd: Path, conf: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(HSM_SIGNER_COMMAND + list(args), cwd=cwd, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
                          input=stdin, capture_output=True, text=True, timeout=120)


def new_label() -> str:
    return f"cli-{os.getpid()}-{next(_labels)}"


def token_labels(label: str) -> list[str]:
    """``--set`` arguments for a new signing token ``label`` and its own sealing token."""
    return ["--set", f"hsm.token_label={label}", "--set", f"sealing.token_label=sealing-{label}"]


@pytest.fixture(scope="module")
def bundle(softhsm_conf, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli")
    label = new_label()
    run = cli("ceremony", "run", str(REHEARSAL_EXAMPLE), "--non-interactive", *token_labels(label),
              cwd=workdir, conf=softhsm_conf)
    assert run.returncode == 0, run.stderr
    return workdir, label, run


def test_a_non_interactive_rehearsal_from_the_command_line(bundle):
    workdir, label, run = bundle
    assert "Ceremony rehearsal complete" in run.stdout and "=== Step 1: Open the ceremony ===" in run.stdout
    assert (workdir / "keys" / "rehearsal" / "keys.json").is_file()
    assert len(list((workdir / "rehearsal-shares" / "rehearsal").iterdir())) == 6  # 3 holders, 3 trustees
    shares = [p.read_text().splitlines()[-1] for p in (workdir / "rehearsal-shares" / "rehearsal").iterdir()]
    assert not any(s in run.stdout + run.stderr for s in shares)
    assert "REHEARSAL share files" in run.stdout


def test_verify_passes_then_fails_with_status_1_on_a_changed_byte(bundle, softhsm_conf, tmp_path):
    workdir, _, _ = bundle
    ok = cli("ceremony", "verify", "keys/rehearsal", cwd=workdir, conf=softhsm_conf)
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("VERIFIED: every check passed for ceremony rehearsal")
    copy = tmp_path / "copy"
    shutil.copytree(workdir / "keys" / "rehearsal", copy)
    data = bytearray((copy / "keys.json").read_bytes())
    data[200] ^= 0x01
    (copy / "keys.json").write_bytes(bytes(data))
    bad = cli("ceremony", "verify", str(copy), cwd=workdir, conf=softhsm_conf)
    assert bad.returncode == 1
    assert bad.stderr.startswith("hsm-signer: FAILED: keys.json")


def test_rerunning_refuses_with_status_2_and_changes_nothing(bundle, softhsm_conf):
    workdir, label, _ = bundle
    before = sorted(str(p) for p in workdir.rglob("*"))
    again = cli("ceremony", "run", str(REHEARSAL_EXAMPLE), "--non-interactive", *token_labels(label),
                cwd=workdir, conf=softhsm_conf)
    assert again.returncode == 2
    assert re.search(r"hsm-signer: error: output directory .*keys/rehearsal already exists", again.stderr)
    assert sorted(str(p) for p in workdir.rglob("*")) == before


def test_retire_from_the_command_line(bundle, softhsm_conf):
    workdir, label, _ = bundle
    shares = sorted((workdir / "rehearsal-shares" / "rehearsal").iterdir())
    config = workdir / "retire.toml"
    config.write_text(f'''
[retirement]
bundle = "keys/rehearsal"
reason = "end of the rehearsal"
rehearsal = true
[hsm]
module = "softhsm"
token_label = "{label}"
[hsm.pin]
source = "shares"
share_files = ["{shares[0]}", "{shares[2]}"]
[[officials]]
name = "Ada Administrator"
roles = ["administrator"]
[[officials]]
name = "Wyn Witness"
roles = ["witness"]
''')
    run = cli("ceremony", "retire", "retire.toml", "--non-interactive", cwd=workdir, conf=softhsm_conf)
    assert run.returncode == 0, run.stderr
    assert "Retirement rehearsal-retire-1 complete" in run.stdout
    verify = cli("ceremony", "verify", "keys/rehearsal-retire-1", cwd=workdir, conf=softhsm_conf)
    assert verify.returncode == 0, verify.stderr
    assert "retirement bundle rehearsal-retire-1" in verify.stdout
    assert "original ceremony bundle rehearsal verifies" in verify.stdout


def test_command_line_mistakes_exit_with_status_2(softhsm_conf, tmp_path):
    missing = cli("ceremony", "run", "nope.toml", cwd=tmp_path, conf=softhsm_conf)
    assert missing.returncode == 2 and "ceremony configuration nope.toml does not exist" in missing.stderr
    bad_set = cli("ceremony", "run", str(REHEARSAL_EXAMPLE), "--set", "oops", cwd=tmp_path, conf=softhsm_conf)
    assert bad_set.returncode == 2 and "--set 'oops': write PATH=VALUE" in bad_set.stderr
    bad_value = cli("ceremony", "run", str(REHEARSAL_EXAMPLE), "--set", "shares.threshold=9", cwd=tmp_path, conf=softhsm_conf)
    assert bad_value.returncode == 2 and "shares.threshold: threshold 9 is more than the 3 share holders" in bad_value.stderr
    production = cli("ceremony", "run", str(REHEARSAL_EXAMPLE.with_name("production.toml")), "--non-interactive",
                     cwd=tmp_path, conf=softhsm_conf)
    assert production.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_overrides_are_read_as_toml_values_or_strings():
    assert parse_overrides(["a.b=3", "c=true", "d=plain text", "e=\"quoted\"", "f=[1, 2]"]) == {
        "a.b": 3, "c": True, "d": "plain text", "e": "quoted", "f": [1, 2]}
    with pytest.raises(ConfigError, match=r"--set '=x'"):
        parse_overrides(["=x"])


# --- the interactive ceremony through a terminal --------------------------------------------

def test_the_terminal_shows_a_share_between_cleared_screens_and_checks_names():
    out = io.StringIO()
    terminal = TerminalIO(stdin=io.StringIO("\n\nbob\nAlice  Smith\n\nabort\n"), stdout=out)
    terminal.show_share("Alice Smith", "Share 1 of 3 for Alice Smith:", "alpha beta gamma")
    text = out.getvalue()
    assert text.startswith(CLEAR_SCREEN) and text.rstrip("\n").endswith(CLEAR_SCREEN)
    before, after = text.split("SHARE: alpha beta gamma")
    assert "Only Alice Smith may look at the screen now" in before and "alpha" not in after
    terminal.acknowledge("Alice Smith", "ok?")
    assert "That is not 'Alice Smith'; try again" in out.getvalue()
    terminal.confirm("go?")
    with pytest.raises(CeremonyAbortedError, match=r"aborted at the administrator's request"):
        terminal.confirm("go?")
    with pytest.raises(CeremonyAbortedError, match=r"input ended before the ceremony finished"):
        terminal.confirm("go?")


def test_the_terminal_reads_shares_through_its_secret_reader():
    typed = []
    terminal = TerminalIO(stdin=io.StringIO(), stdout=io.StringIO(),
                          secret_reader=lambda prompt: typed.append(prompt) or "w1 w2")
    assert terminal.read_share("Kim: ") == "w1 w2" and typed == ["Kim: "]
    with pytest.raises(CeremonyAbortedError):
        TerminalIO(stdin=io.StringIO(), stdout=io.StringIO(), secret_reader=lambda p: "ABORT").read_share("x")


PROMPTS = [
    r"\[Enter to continue, 'abort' to stop\] ",
    r"\n  ([^\n]+), type your name to acknowledge: ",
    r"Only [^\n]+ may look at the screen now\. [^\n]+, press Enter when you are alone at it\. ",
    r"SHARE: ([a-z ]+)\r?\n",
    r"press Enter to clear the screen\. ",
    r"([A-Za-z ]+): type your share \(not shown\), or press Enter to skip: ",
    "EOF",
]


def drive(child, pexpect, skip_holder: str = "Sam Holder") -> dict[str, str]:
    """Answer every prompt as the officials would; return the shares each holder saw."""
    shares: dict[str, str] = {}
    prompts = [pexpect.EOF if p == "EOF" else p for p in PROMPTS]
    while True:
        which = child.expect(prompts, timeout=60)
        if which in (0, 2, 4):
            child.sendline("")
        elif which == 1:
            child.sendline(child.match.group(1).decode().strip())
        elif which == 3:
            words = child.match.group(1).decode().strip()
            holder = re.findall(rb"Share \d of \d for ([A-Za-z ]+) \(", child.before)[-1].decode()
            shares[holder] = words
        elif which == 5:
            holder = child.match.group(1).decode().strip().splitlines()[-1].strip()
            child.sendline("" if holder == skip_holder else shares[holder])
        else:
            return shares


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("terminal", ["pty", "pipes"])
def test_an_interactive_ceremony_driven_through_its_terminal(softhsm_conf, tmp_path, terminal):
    pexpect = pytest.importorskip("pexpect")
    popen_spawn = pytest.importorskip("pexpect.popen_spawn")
    args = ["ceremony", "run", str(REHEARSAL_EXAMPLE), *token_labels(new_label())]
    env = {**os.environ, "SOFTHSM2_CONF": str(softhsm_conf)}
    command, *prefix = HSM_SIGNER_COMMAND
    if terminal == "pty":
        child = pexpect.spawn(command, prefix + args, cwd=str(tmp_path), env=env, timeout=60)
    else:
        child = popen_spawn.PopenSpawn(HSM_SIGNER_COMMAND + args, cwd=str(tmp_path), env=env, timeout=60)
    shares = drive(child, pexpect)
    status = child.wait() if terminal == "pipes" else (child.close() or child.exitstatus)
    assert status == 0
    assert sorted(shares) == ["Kim Holder", "Lee Holder", "Sam Holder", "Tao Trustee", "Uma Trustee", "Vic Trustee"]
    assert len(set(shares.values())) == 6
    assert not (tmp_path / "rehearsal-shares").exists()
    verify = cli("ceremony", "verify", "keys/rehearsal", cwd=tmp_path, conf=softhsm_conf)
    assert verify.returncode == 0, verify.stderr
    assert "witnesses Wyn Witness attested the transcript head" in verify.stdout
    transcript = (tmp_path / "keys" / "rehearsal" / "transcript.jsonl").read_text()
    assert not any(share in transcript for share in shares.values())


def test_typing_abort_stops_the_ceremony(softhsm_conf, tmp_path):
    run = cli("ceremony", "run", str(REHEARSAL_EXAMPLE), *token_labels(new_label()),
              cwd=tmp_path, conf=softhsm_conf, stdin="abort\n")
    assert run.returncode == 2 and "aborted at the administrator's request" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_input_ending_early_stops_the_ceremony(softhsm_conf, tmp_path):
    run = cli("ceremony", "run", str(REHEARSAL_EXAMPLE), *token_labels(new_label()),
              cwd=tmp_path, conf=softhsm_conf, stdin="\n")
    assert run.returncode == 2 and "input ended before the ceremony finished" in run.stderr
