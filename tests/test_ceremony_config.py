"""The ceremony and retirement configs: the committed examples load, and every mistake is named precisely."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from hsm_signer.ceremony.config import (
    EXAMPLES, REHEARSAL_EXAMPLE, load_config, load_rehearsal, parse_config, resolve_module,
)
from hsm_signer.ceremony.retire_config import load_retire_config, parse_retire_config
from hsm_signer import softhsm
from hsm_signer.errors import ConfigError
from hsm_signer.hsm.pins import EnvPin, FilePin, PromptPin, pin_source
from hsm_signer.hsm.shares import SharePin

BASE = tomllib.loads(REHEARSAL_EXAMPLE.read_text())


def parse(data, tmp_path=None):
    return parse_config(data, cwd=tmp_path or Path("/tmp"))


def mutated(change):
    data = copy.deepcopy(BASE)
    change(data)
    return data


def production_like(data):
    data["ceremony"]["rehearsal"] = False
    data["hsm"]["initialise"] = False
    data["hsm"]["module"] = "/usr/lib/vendor/pkcs11.so"
    data["hsm"]["initial_pin"] = {"source": "prompt"}
    data["sealing"]["initialise"] = False
    data["sealing"]["initial_pin"] = {"source": "prompt"}


# --- the committed examples ------------------------------------------------------------

def test_the_rehearsal_example_loads(tmp_path):
    cfg = load_rehearsal(cwd=tmp_path)
    assert cfg.ceremony_id == "rehearsal" and cfg.rehearsal and cfg.hsm.initialise
    assert cfg.hsm.module == softhsm.find_module()
    assert cfg.threshold == 2 and len(cfg.share_holders) == 3 and cfg.witnesses
    assert [k.purpose for k in cfg.keys] == ["checkpoint", "tally", "code-hmac"]
    assert cfg.out_dir == tmp_path.resolve() / "keys" / "rehearsal"
    assert cfg.shares_dir == tmp_path.resolve() / "rehearsal-shares" / "rehearsal"
    assert cfg.source_sha256 and cfg.record()["file_sha256"] == cfg.source_sha256


def test_the_production_example_loads():
    cfg = load_config(EXAMPLES / "production.toml")
    assert not cfg.rehearsal and not cfg.hsm.initialise
    assert cfg.hsm.initial_pin is not None and cfg.hsm.initial_pin.source == "prompt"
    assert isinstance(pin_source(cfg.hsm.initial_pin), PromptPin)
    assert cfg.threshold >= 2 and len(cfg.witnesses) >= 2


def test_overrides_from_code_are_validated_like_the_file(tmp_path):
    cfg = load_rehearsal({"hsm.token_label": "demo-token", "output.dir": str(tmp_path / "b"),
                          "hsm.softhsm_conf": tmp_path / "softhsm2.conf", "ceremony.id": "demo-1"}, cwd=tmp_path)
    assert cfg.hsm.token_label == "demo-token" and cfg.ceremony_id == "demo-1"
    assert cfg.out_dir == tmp_path / "b" and cfg.hsm.softhsm_conf == tmp_path / "softhsm2.conf"
    assert cfg.shares_dir.name == "demo-1"
    assert cfg.record()["overrides"]["hsm.token_label"] == "demo-token"
    with pytest.raises(ConfigError, match=r"ceremony.id: 'Bad Id' is not a valid ceremony id"):
        load_rehearsal({"ceremony.id": "Bad Id"})
    with pytest.raises(ConfigError, match=r"unknown key 'colour'"):
        load_rehearsal({"hsm.colour": "red"})
    with pytest.raises(ConfigError, match=r"override 'hsm.token_label.x': hsm.token_label is not a table"):
        load_rehearsal({"hsm.token_label.x": "y"})
    with pytest.raises(ConfigError, match=r"override 'hsm..x' is not a dotted path"):
        load_rehearsal({"hsm..x": "y"})


def test_a_missing_file_and_invalid_toml_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"ceremony configuration .*nope.toml does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ceremony\nid = 1\n")
    with pytest.raises(ConfigError, match=r"ceremony configuration .*bad.toml is not valid TOML"):
        load_config(bad)


def test_pin_sources_build(tmp_path):
    def with_pin(pin):
        def change(d):
            production_like(d)
            d["hsm"]["initial_pin"] = pin
        return parse(mutated(change), tmp_path)
    assert isinstance(pin_source(with_pin({"source": "env", "variable": "X"}).hsm.initial_pin), EnvPin)
    assert isinstance(pin_source(with_pin({"source": "file", "path": "pin.txt"}).hsm.initial_pin), FilePin)
    cfg = with_pin({"source": "shares", "share_files": ["a.txt", "b.txt"]})
    assert isinstance(pin_source(cfg.hsm.initial_pin), SharePin)
    assert cfg.hsm.initial_pin.share_files == (tmp_path.resolve() / "a.txt", tmp_path.resolve() / "b.txt")
    assert cfg.record()["hsm"]["initial_pin"] == {"source": "shares", "share_files": 2}


# --- every error, with its field path and fix ---------------------------------------------

def _set(path, value):
    def change(d):
        *tables, last = path.split(".")
        target = d
        for t in tables:
            target = target[t] if not t.isdigit() else target[int(t)]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    return change


def _delete(path):
    def change(d):
        *tables, last = path.split(".")
        target = d
        for t in tables:
            target = target[t] if not t.isdigit() else target[int(t)]
        del target[last]
    return change


def _both(*changes):
    def change(d):
        for c in changes:
            c(d)
    return change


def _official(name, *roles):
    return lambda d: d["officials"].append({"name": name, "roles": list(roles)})


ERRORS = {
    "unknown top-level key": (_set("extra", 1), r"^unknown key 'extra'; check the spelling"),
    "unknown ceremony key": (_set("ceremony.idd", "x"), r"^ceremony: unknown key 'idd'"),
    "missing ceremony table": (_delete("ceremony"), r"^ceremony: missing; add a table value"),
    "missing ceremony id": (_delete("ceremony.id"), r"^ceremony.id: missing; add a string value"),
    "ceremony id wrong type": (_set("ceremony.id", 7), r"^ceremony.id: expected a string, got int 7"),
    "ceremony id empty": (_set("ceremony.id", ""), r"^ceremony.id: must not be empty"),
    "ceremony id with capitals": (_set("ceremony.id", "Election"), r"^ceremony.id: 'Election' is not a valid ceremony id; use 1-64 lowercase"),
    "ceremony id with a slash": (_set("ceremony.id", "a/b"), r"^ceremony.id: 'a/b' is not a valid"),
    "rehearsal not a bool": (_set("ceremony.rehearsal", "yes"), r"^ceremony.rehearsal: expected true or false"),
    "missing hsm table": (_delete("hsm"), r"^hsm: missing; add a table value"),
    "missing module": (_delete("hsm.module"), r"^hsm.module: missing"),
    "missing token label": (_delete("hsm.token_label"), r"^hsm.token_label: missing"),
    "unknown hsm key": (_set("hsm.pin", "1234"), r"^hsm: unknown key 'pin'"),
    "initialise outside a rehearsal": (_set("ceremony.rehearsal", False),
                                       r"^hsm.initialise: initialise = true is only for SoftHSM rehearsals .* vendor's tool"),
    "initial pin with initialise": (_set("hsm.initial_pin", {"source": "prompt"}),
                                    r"^hsm.initial_pin: not used when initialise = true"),
    "no initial pin for an existing token": (_set("hsm.initialise", False),
                                             r"^hsm.initial_pin: missing; say how to get the token's current user PIN"),
    "softhsm conf in production": (_both(production_like, _set("hsm.softhsm_conf", "x.conf")),
                                   r"^hsm.softhsm_conf: SoftHSM is for rehearsals only"),
    "sealing key on the signing token": (_set("sealing.token_label", "hsm-signer-rehearsal"),
                                         r"^sealing.token_label: is the signing keys' token .* a token of its own"),
    "sealing initialise outside a rehearsal": (_both(production_like, _delete("sealing.initial_pin"),
                                                     _set("sealing.initialise", True)),
                                               r"^sealing.initialise: initialise = true is only for SoftHSM rehearsals"),
    "no initial pin for the sealing token": (_set("sealing.initialise", False),
                                             r"^sealing.initial_pin: missing; say how to get the sealing token's"),
    "trustee who is a share holder": (_set("officials.5.roles", ["tally-trustee", "share-holder"]),
                                      r"^officials\[5\].roles: a tally trustee cannot also be a share holder"),
    "administrator as trustee": (_set("officials.0.roles", ["administrator", "tally-trustee"]),
                                 r"^officials\[0\].roles: a tally trustee cannot also be a share holder or the administrator"),
    "sealing threshold above the trustees": (_set("sealing.threshold", 4),
                                             r"^sealing.threshold: threshold 4 is more than the 3 tally trustees"),
    "trustees without a sealing table": (_delete("sealing"),
                                         r"^officials\[5\].roles: tally trustees are named but there is no \[sealing\] table"),
    "unknown sealing key": (_set("sealing.pin", "1"), r"^sealing: unknown key 'pin'"),
    "bad pin source": (_both(production_like, _set("hsm.initial_pin", {"source": "sms"})),
                       r"^hsm.initial_pin.source: 'sms' is not one of env, file, prompt, shares"),
    "file pin without path": (_both(production_like, _set("hsm.initial_pin", {"source": "file"})),
                              r"^hsm.initial_pin: source is 'file' but no path is given"),
    "share files without shares": (_both(production_like, _set("hsm.initial_pin", {"source": "env", "share_files": ["a"]})),
                                   r"^hsm.initial_pin: share_files is only used with source = \"shares\""),
    "unknown pin key": (_both(production_like, _set("hsm.initial_pin", {"source": "env", "pin": "1234"})),
                        r"^hsm.initial_pin: unknown key 'pin'"),
    "missing shares table": (_delete("shares"), r"^shares: missing"),
    "threshold of one": (_set("shares.threshold", 1), r"^shares.threshold: must be at least 2, got 1"),
    "threshold above holders": (_set("shares.threshold", 4),
                                r"^shares.threshold: threshold 4 is more than the 3 share holders; lower it or add"),
    "threshold above slip39": (_set("shares.threshold", 17), r"^shares.threshold: must be at most 16"),
    "unknown shares key": (_set("shares.n", 3), r"^shares: unknown key 'n'"),
    "no officials": (_delete("officials"), r"^officials: missing; add a list value"),
    "empty officials": (_set("officials", []), r"^officials: no officials; add \[\[officials\]\]"),
    "official without name": (_delete("officials.1.name"), r"^officials\[1\].name: missing"),
    "official name without letters": (_set("officials.1.name", "--"), r"^officials\[1\].name: '--' has no letter or digit"),
    "official without roles": (_set("officials.1.roles", []), r"^officials\[1\].roles: give at least one role"),
    "unknown role": (_set("officials.4.roles", ["witnes"]),
                     r"^officials\[4\].roles\[0\]: 'witnes' is not one of administrator, share-holder, witness"),
    "role twice": (_set("officials.4.roles", ["witness", "witness"]), r"^officials\[4\].roles: lists a role twice"),
    "unknown official key": (_set("officials.0.email", "a@b"), r"^officials\[0\]: unknown key 'email'"),
    "duplicate names": (_official("sam holder", "witness"),
                        r"^officials\[8\].name: 'sam holder' is too similar to officials\[1\]"),
    "no administrator": (_set("officials.0.roles", ["witness"]),
                         r"^officials: exactly one official must have the role administrator, found 0"),
    "two administrators": (_official("Second Admin", "administrator"), r"found 2"),
    "administrator as witness": (_set("officials.0.roles", ["administrator", "witness"]),
                                 r"^officials\[0\].roles: the administrator cannot also be a witness"),
    "no witness": (_set("officials.4.roles", ["share-holder"]), r"^officials: no witness; give at least one"),
    "one share holder": (_both(_set("officials.2.roles", ["witness"]), _set("officials.3.roles", ["witness"])),
                         r"^officials: need at least 2 share holders, found 1"),
    "too many share holders": (_both(*[_official(f"Holder {i}", "share-holder") for i in range(14)]),
                               r"^officials: at most 16 share holders .* found 17"),
    "no keys": (_delete("keys"), r"^keys: missing"),
    "missing tally key": (lambda d: d["keys"].pop(1), r"^keys: no tally key; add a \[\[keys\]\] table with purpose = \"tally\""),
    "unknown purpose": (_set("keys.0.purpose", "receipts"), r"^keys\[0\].purpose: 'receipts' is not one of checkpoint, tally, code-hmac"),
    "missing purpose": (_delete("keys.0.purpose"), r"^keys\[0\].purpose: missing"),
    "duplicate purpose": (_set("keys.1.purpose", "checkpoint"),
                          r"^keys\[1\].purpose: a checkpoint key is already defined in keys\[0\]"),
    "duplicate label": (_set("keys.1.label", "rehearsal-checkpoint"),
                        r"^keys\[1\].label: label 'rehearsal-checkpoint' is already used by keys\[0\]"),
    "label with a space": (_set("keys.0.label", "my key"), r"^keys\[0\].label: 'my key' is not a valid key label"),
    "missing label": (_delete("keys.0.label"), r"^keys\[0\].label: missing"),
    "bad signing algorithm": (_set("keys.0.algorithm", "rsa-2048"),
                              r"^keys\[0\].algorithm: 'rsa-2048' is not one of ecdsa-p256, ed25519"),
    "bad hmac algorithm": (_set("keys.2.algorithm", "ecdsa-p256"),
                           r"^keys\[2\].algorithm: 'ecdsa-p256' is not one of hmac-sha256"),
    "unknown key field": (_set("keys.0.extractable", True), r"^keys\[0\]: unknown key 'extractable'"),
    "output dir wrong type": (_set("output", {"dir": 3}), r"^output.dir: expected a string, got int 3"),
    "unknown output key": (_set("output", {"directory": "x"}), r"^output: unknown key 'directory'"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_config_error(name):
    change, message = ERRORS[name]
    with pytest.raises(ConfigError, match=message):
        parse(mutated(change))


def test_softhsm_module_when_softhsm_is_missing():
    assert resolve_module("softhsm", find_softhsm=lambda: "/found/libsofthsm2.so") == "/found/libsofthsm2.so"
    assert resolve_module("/opt/hsm/lib.so", find_softhsm=lambda: None) == "/opt/hsm/lib.so"
    with pytest.raises(ConfigError, match=r"^hsm.module: 'softhsm' was asked for but SoftHSM2 is not installed"):
        resolve_module("softhsm", find_softhsm=lambda: None)


def test_keys_default_algorithms():
    data = mutated(_both(_delete("keys.0.algorithm"), _delete("keys.2.algorithm")))
    cfg = parse(data)
    assert cfg.key("checkpoint").algorithm == "ecdsa-p256" and cfg.key("code-hmac").algorithm == "hmac-sha256"


# --- retirement config ----------------------------------------------------------------------

RETIRE = {
    "retirement": {"bundle": "keys/rehearsal", "reason": "done", "rehearsal": True},
    "hsm": {"module": "softhsm", "token_label": "t", "pin": {"source": "shares", "share_files": ["a", "b"]}},
    "officials": [{"name": "Ada", "roles": ["administrator"]}, {"name": "Wyn", "roles": ["witness"]}],
}


def test_the_retirement_config_parses(tmp_path):
    cfg = parse_retire_config(copy.deepcopy(RETIRE), cwd=tmp_path)
    assert cfg.bundle == tmp_path.resolve() / "keys" / "rehearsal" and cfg.labels == ()
    assert isinstance(pin_source(cfg.pin), SharePin) and cfg.witnesses[0].name == "Wyn"


def test_the_retirement_example_loads():
    cfg = load_retire_config(EXAMPLES / "retire.toml")
    assert cfg.reason and cfg.pin.source == "shares" and cfg.labels


RETIRE_ERRORS = {
    "missing reason": (lambda d: d["retirement"].pop("reason"), r"^retirement.reason: missing"),
    "bad label": (lambda d: d["retirement"].update(labels=["a b"]), r"^retirement.labels\[0\]: 'a b' is not a key label"),
    "label twice": (lambda d: d["retirement"].update(labels=["a", "a"]), r"^retirement.labels: names a label twice"),
    "bad id": (lambda d: d["retirement"].update(id="X"), r"^retirement.id: 'X' is not a valid id"),
    "missing pin": (lambda d: d["hsm"].pop("pin"), r"^hsm.pin: missing"),
    "no witness": (lambda d: d["officials"].pop(1), r"^officials: no witness"),
    "no administrator": (lambda d: d["officials"][0].update(roles=["witness"]), r"found 0"),
    "softhsm in production": (lambda d: (d["retirement"].update(rehearsal=False), d["hsm"].update(softhsm_conf="c")),
                              r"^hsm.softhsm_conf: SoftHSM is for rehearsals only"),
    "unknown key": (lambda d: d["retirement"].update(force=True), r"^retirement: unknown key 'force'"),
}


@pytest.mark.parametrize("name", list(RETIRE_ERRORS))
def test_retirement_config_error(name):
    change, message = RETIRE_ERRORS[name]
    data = copy.deepcopy(RETIRE)
    change(data)
    with pytest.raises(ConfigError, match=message):
        parse_retire_config(data)
