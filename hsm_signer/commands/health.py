"""``hsm-signer health``: open the configured HSM token and report on it.

A self-check officials can run before opening the poll: the token answers, the PIN
source works, the keys of the bundle are there, and a test signature verifies.
"""

from __future__ import annotations

import json

from .. import config as config_mod


def register(subparsers) -> None:
    parser = subparsers.add_parser("health", help="check the configured HSM token and its keys")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    cfg = config_mod.load(args.config)
    hsm = config_mod.open_hsm(cfg.hsm)
    report = {"token": hsm.token_info(), "health": hsm.health()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        info = report["token"]
        print(f"token {info['label']!r} (serial {info['serial']}, {info['manufacturer']} {info['model']})")
        print(f"module {info['module_path']} ({info['module_description']} {info['module_version']})")
        print(f"status {report['health']['status']}; keys: {', '.join(report['health'].get('keys', [])) or 'none'}")
    return 0 if report["health"]["status"] == "ok" else 2
