"""``hsm-signer health``: make every configured key do its job through the configured module.

A self-check officials run before opening the poll: the token answers, the PIN source
works, and each key of the published bundle performs its operation once — the signing
keys sign a fresh message that verifies with the *published* public key, the code key
MACs — so a key the module cannot use (an Ed25519 tally key
behind the p11-kit client, which offers no CKM_EDDSA) is found before the poll opens,
not at the tally. Nothing on the token changes. Exit status 0 only when all passed.
"""

from __future__ import annotations

import json

from .. import config as config_mod
from ..bundle import KeyBundle


def register(subparsers) -> None:
    parser = subparsers.add_parser("health", help="check the HSM token: every configured key does its job once")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def configured_keys(bundle: KeyBundle, *, with_sealing: bool = False):
    """The bundle's keys as the HSM layer's :class:`ConfiguredKey` list. The sealing key
    lives on its own token, opened only by the tally trustees, never by the service: left
    out unless ``with_sealing``."""
    from ..hsm.readiness import ConfiguredKey, KeyNeed
    keys = []
    for entry in bundle.keys:
        if entry.purpose == "sealing" and not with_sealing:
            continue
        public = entry.public_key_der if entry.public_key_pem else None
        keys.append(ConfiguredKey(KeyNeed(entry.label, entry.purpose, entry.algorithm), public))
    return keys


def run(args) -> int:
    # PKCS#11 only when this command runs (see commands/_service.py)
    from ..hsm import open_hsm
    from ..hsm.readiness import FAIL, exercise_keys
    cfg = config_mod.load(args.config)
    bundle = KeyBundle.load(cfg.key_bundle)
    hsm = open_hsm(cfg.hsm)
    try:
        info = hsm.token_info()
        checks = exercise_keys(hsm, configured_keys(bundle))
        health = hsm.health()
    finally:
        hsm.close()
    failed = [c for c in checks if c.result == FAIL]
    status = "ok" if not failed and health["status"] == "ok" else "failed"
    if args.json:
        print(json.dumps({"status": status, "token": info, "health": health,
                          "keys": [{"key": c.name, "result": c.result, "detail": c.detail, "advice": c.advice}
                                   for c in checks]}, indent=2))
    else:
        print(f"token {info['label']!r} (serial {info['serial']}, {info['manufacturer']} {info['model']})")
        print(f"module {info['module_path']} ({info['module_description']} {info['module_version']})")
        if any(entry.purpose == "sealing" for entry in bundle.keys):
            print("  (the sealing key is on its own token, opened only by the tally trustees: not checked here)")
        for c in checks:
            print(f"  {c.result:<4} {c.name}: {c.detail}" + (f" -> {c.advice}" if c.advice else ""))
        print(f"status {status}" + (f": {'; '.join(f'{c.name}: {c.detail}' for c in failed)}" if failed else ""))
    return 0 if status == "ok" else 2
