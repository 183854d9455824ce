"""PIN sources: each hands over the PIN once, describes itself without it, and says what is wrong."""

from __future__ import annotations

import os

import pytest

from hsm_signer.config import PinSpec, read_pin_spec
from hsm_signer.errors import ConfigError
from hsm_signer.hsm.pins import EnvPin, FilePin, PromptPin, pin_source
from hsm_signer.strict import Table

PIN = "s3cret-pin-4711"


def test_environment_variable_source(monkeypatch):
    monkeypatch.setenv("TEST_HSM_PIN", PIN + "\n")
    source = EnvPin("TEST_HSM_PIN")
    assert source.get_pin() == PIN
    assert "TEST_HSM_PIN" in source.describe() and "INSECURE" in source.describe()
    assert PIN not in source.describe() and not source.production_grade
    monkeypatch.delenv("TEST_HSM_PIN")
    with pytest.raises(ConfigError, match="environment variable TEST_HSM_PIN is not set"):
        source.get_pin()
    monkeypatch.setenv("TEST_HSM_PIN", "")
    with pytest.raises(ConfigError, match="the PIN from environment variable TEST_HSM_PIN is empty"):
        source.get_pin()


def test_file_source_must_be_private_to_its_owner(tmp_path):
    path = tmp_path / "pin.txt"
    path.write_text(PIN + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"readable by other users; run: chmod 600"):
        FilePin(path).get_pin()
    os.chmod(path, 0o600)
    assert FilePin(path).get_pin() == PIN
    with pytest.raises(ConfigError, match=r"cannot read PIN file .*missing.txt"):
        FilePin(tmp_path / "missing.txt").get_pin()


def test_prompt_source_reads_without_echo_and_is_production_grade():
    asked = []
    source = PromptPin(reader=lambda prompt: asked.append(prompt) or PIN)
    assert source.get_pin() == PIN and asked == ["HSM user PIN: "]
    assert source.production_grade and PIN not in repr(source)


def test_pin_specs_from_config_tables(tmp_path):
    spec = read_pin_spec(Table({"source": "file", "path": "pin.txt"}, "hsm.pin"), tmp_path)
    assert spec == PinSpec(source="file", path=tmp_path / "pin.txt")
    assert isinstance(pin_source(spec), FilePin) and spec.record() == {"source": "file", "path": str(tmp_path / "pin.txt")}
    with pytest.raises(ConfigError, match=r"^hsm.pin: source is 'file' but no path is given"):
        read_pin_spec(Table({"source": "file"}, "hsm.pin"), tmp_path)
    with pytest.raises(ConfigError, match=r"^hsm.pin.source: 'sms' is not one of env, file, prompt, shares"):
        read_pin_spec(Table({"source": "sms"}, "hsm.pin"), tmp_path)
    with pytest.raises(ConfigError, match=r"^hsm.pin: share_files is only used with source = \"shares\""):
        read_pin_spec(Table({"source": "env", "share_files": ["a"]}, "hsm.pin"), tmp_path)
    with pytest.raises(ConfigError, match=r"^hsm.pin: unknown key 'pin'"):
        read_pin_spec(Table({"source": "env", "pin": PIN}, "hsm.pin"), tmp_path)
