"""The service configuration: one strict TOML file, errors that name the field and the fix."""

from __future__ import annotations

import pytest

from hsm_signer import config
from hsm_signer.errors import ConfigError

GOOD = """
[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "election"
[hsm.pin]
source = "prompt"
[keys]
bundle = "keys/ceremony"
[storage]
url = "sqlite:///db/ballots.sqlite3"
"""


def load(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return config.load(path)


def test_defaults_and_paths_relative_to_the_file(tmp_path):
    cfg = load(tmp_path, GOOD)
    assert cfg.key_bundle == tmp_path / "keys/ceremony"
    assert cfg.storage_url == f"sqlite:///{tmp_path}/db/ballots.sqlite3"
    assert cfg.sequencer.batch_size == 1000 and cfg.sequencer.state_file == tmp_path / "sequencer-state.json"
    assert (cfg.server.host, cfg.server.port, cfg.server.behind_tls) == ("127.0.0.1", 8080, False)
    assert cfg.hsm.pin.source == "prompt"
    assert cfg.origin_prefix is None  # election create then asks for one


def test_the_log_origin_prefix_names_this_deployment(tmp_path):
    cfg = load(tmp_path, GOOD + '[log]\norigin_prefix = "vote.example.org/party"\n')
    assert cfg.origin_prefix == "vote.example.org/party"


def test_the_environment_variable_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "c.toml").write_text(GOOD)
    monkeypatch.setenv("HSM_SIGNER_CONFIG", str(tmp_path / "c.toml"))
    assert config.load().hsm.token_label == "election"
    monkeypatch.delenv("HSM_SIGNER_CONFIG")
    with pytest.raises(ConfigError, match=r"no configuration file: pass --config FILE or set HSM_SIGNER_CONFIG"):
        config.load()


@pytest.mark.parametrize("change, message", [
    (('token_label = "election"', 'token_label = 7'), r"^hsm.token_label: expected a string, got int 7"),
    (('token_label = "election"\n', ''), r"^hsm: set token_label or token_serial"),
    (('[keys]', '[keys]\nbundel = "x"'), r"^keys: unknown key 'bundel'"),
    (('url = "sqlite:///db/ballots.sqlite3"', 'url = "mysql://x"'), r"^storage.url: 'mysql://x' is not a sqlite:/// or postgresql:// URL"),
    (('[storage]', '[sequencer]\nbatch_size = 0\n[storage]'), r"^sequencer.batch_size: must be at least 1, got 0"),
    (('[storage]', '[server]\nport = 70000\n[storage]'), r"^server.port: must be at most 65535, got 70000"),
    (('[keys]\nbundle = "keys/ceremony"\n', ''), r"^keys: missing; add a table value"),
    (('source = "prompt"', 'source = "file"'), r"^hsm.pin: source is 'file' but no path is given"),
    (('[storage]', '[log]\norigin_prefix = "https://vote.example.org"\n[storage]'),
     r"^log.origin_prefix: origin prefix must be a schema-less URL such as vote.example.org"),
    (('[storage]', '[log]\norigin_prefix = "vote example"\n[storage]'), r"^log.origin_prefix: origin prefix must be"),
    (('[storage]', '[log]\norigin_prefix = "hsm-signer"\n[storage]'),
     r"^log.origin_prefix: 'hsm-signer' is the old default every deployment shared"),
    (('[storage]', '[log]\norigin = "vote.example.org"\n[storage]'), r"^log: unknown key 'origin'"),
])
def test_mistakes_name_the_field(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, GOOD.replace(*change))


def test_unreadable_or_invalid_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"configuration file .*nope.toml does not exist"):
        config.load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"is not valid TOML"):
        load(tmp_path, "[hsm\n")
