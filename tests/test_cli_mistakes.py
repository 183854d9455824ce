"""Every documented official's mistake gives one line saying what to do and its documented
exit status, never a traceback: the real console script, in its own process."""

from __future__ import annotations

import subprocess

import pytest

from harness import HSM_SIGNER_COMMAND
from test_cli_officials import DEFINITION  # the same one-contest club election



@pytest.fixture
def cli(officials, tmp_path):
    """The real ``hsm-signer`` on the officials' service directory, with a draft election."""
    (tmp_path / "club.toml").write_text(DEFINITION)
    officials("election", "create", str(tmp_path / "club.toml"))

    def run(*argv, config=True):
        command = [*HSM_SIGNER_COMMAND, *(["--config", str(officials.kit.config_path)] if config else []), *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)
    return run


# (arguments, exit status, what stderr says); {tmp} is the test's own folder.
MISTAKES = [
    (["codes", "issue", "club-2026", "--count", "2", "--out", "/nonexistent-folder/codes.csv"], 2,
     "--out /nonexistent-folder/codes.csv: the folder /nonexistent-folder does not exist or is not writable; "
     "no code was issued"),
    (["codes", "issue", "no-such-election", "--count", "2", "--out", "{tmp}/codes.csv"], 2,
     "no election 'no-such-election'; create it with `hsm-signer election create`"),
    (["codes", "issue", "club-2026", "--members", "{tmp}/missing.csv", "--out", "{tmp}/codes.csv"], 2,
     "cannot read members CSV {tmp}/missing.csv: No such file or directory"),
    (["election", "create", "{tmp}/missing.toml"], 2, "election definition {tmp}/missing.toml does not exist"),
    (["election", "open", "no-such-election"], 2, "no election 'no-such-election'"),
    (["election", "close", "club-2026"], 2, "election 'club-2026' is draft; it cannot become closed"),
    (["tally", "club-2026"], 2, "election 'club-2026' is draft: close the poll first"),
    (["postal", "record", "club-2026", "--csv", "{tmp}/missing.csv"], 2,
     "cannot read the postal CSV {tmp}/missing.csv: No such file or directory"),
    (["postal", "record", "club-2026", "--csv", "{tmp}/postal.csv"], 2,
     "the poll for election 'club-2026' is draft: postal ballots are recorded while it is open"),
    (["postal", "record", "club-2026", "--csv", "{tmp}/postal.csv", "--report", "/nonexistent-folder/r.json"], 2,
     "--report /nonexistent-folder/r.json: the folder /nonexistent-folder does not exist"),
    (["record", "export", "club-2026", "{tmp}/record"], 2,
     "election 'club-2026' is draft: close the poll and sign the tally before exporting its record"),
    (["audit", "{tmp}/no-record"], 2, "{tmp}/no-record is not a directory; give the path of an exported election "
                                      "record"),
    (["verify", "{tmp}/missing.json", "--keys", "{tmp}"], 2, "cannot read receipt {tmp}/missing.json: "
                                                            "No such file or directory"),
    (["postal", "record", "club-2026", "--csv", "{tmp}"], 2, "cannot read the postal CSV {tmp}: Is a directory"),
    (["ceremony", "verify", "{tmp}/no-bundle"], 2, "{tmp}/no-bundle is not a directory; give the bundle directory"),
    (["postal", "record", "club-2026", "--csv", "{tmp}/latin1.csv", "--dry-run"], 2,
     "the postal CSV {tmp}/latin1.csv is not UTF-8 text; save it as CSV UTF-8"),
    (["election", "create", "{tmp}/typo.toml"], 2,
     "unknown key 'closes'; check the spelling against the election definition format in docs/ELECTIONS.md"),
    (["election", "create", "{tmp}/broken.toml"], 2, "election definition {tmp}/broken.toml is not valid TOML"),
    (["election", "create", "{tmp}"], 2, "cannot read election definition {tmp}"),
]


@pytest.mark.parametrize("argv, status, message", MISTAKES, ids=[" ".join(m[0][:2]) + f"-{i}"
                                                                  for i, m in enumerate(MISTAKES)])
def test_an_officials_mistake_is_one_line_and_its_exit_status(cli, tmp_path, argv, status, message):
    (tmp_path / "postal.csv").write_text("code,chair\n")
    (tmp_path / "latin1.csv").write_bytes("code,chair\nX,Zoë\n".encode("latin-1"))
    (tmp_path / "typo.toml").write_text(DEFINITION.replace('title = "Club vote"', 'title = "Club vote"\ncloses = 1'))
    (tmp_path / "broken.toml").write_text("id = \n")
    result = cli(*[a.format(tmp=tmp_path) for a in argv])
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, result.stderr
    assert message.format(tmp=tmp_path) in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hsm-signer: error: ")


def test_a_closed_poll_takes_no_postal_batch_and_no_codes(cli, officials, tmp_path):
    officials("election", "open", "club-2026")
    officials("election", "close", "club-2026")
    (tmp_path / "postal.csv").write_text("code,chair\n")
    for argv, message in [(["postal", "record", "club-2026", "--csv", str(tmp_path / "postal.csv")],
                           "the poll for election 'club-2026' is closed: postal ballots are recorded while it is open"),
                          (["codes", "issue", "club-2026", "--count", "1", "--out", str(tmp_path / "c.csv")],
                           "election 'club-2026' is closed; no more codes can be issued"),
                          (["election", "open", "club-2026"], "election 'club-2026' is closed; it cannot become open")]:
        result = cli(*argv)
        assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr, result.stderr


def test_a_missing_configuration_is_named(cli, tmp_path):
    result = cli("--config", str(tmp_path / "nope.toml"), "election", "list", config=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nope.toml" in result.stderr
