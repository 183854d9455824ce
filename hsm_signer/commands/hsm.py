"""``hsm-signer hsm check``: is this token fit for the ceremony? A report that changes nothing.

Three ways to name the token and the keys to check:

* ``--ceremony FILE`` — the ceremony configuration: its token, its initial PIN source and
  its ``[[keys]]`` (and the sealing token with its key, when the configuration has one);
  the PIN length checked is the one the ceremony splits. Run it before
  the ceremony day; the ceremony runs the same check as its preflight.
* ``--module PATH --token-label LABEL --pin-source SPEC`` — before any configuration
  exists. ``SPEC`` is ``env[:VARIABLE]``, ``file:PATH`` or ``prompt``. ``--keys`` says which
  keys (``checkpoint=ecdsa-p256,tally=ed25519,...``; default: every kind the project makes).
* neither — the service configuration (``--config``/``HSM_SIGNER_CONFIG``): its token and
  the keys of its published bundle.

Prints a table (check, result, what to do); exit status 0 when the token is fit, 2 when
not, with the reasons on stderr. Only session objects are made; none survives the check.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..config import PinSpec
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..hsm import Hsm
    from ..hsm.readiness import KeyNeed

DEFAULT_KEYS = "checkpoint=ecdsa-p256,tally=ecdsa-p256,code-hmac=hmac-sha256,sealing=ecdh-p256"


def register(subparsers) -> None:
    parser = subparsers.add_parser("hsm", help="check that an HSM token is fit for the ceremony")
    sub = parser.add_subparsers(dest="hsm_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="readiness report for a token (changes nothing on it)")
    check.add_argument("--ceremony", metavar="FILE", help="check the token and keys of this ceremony configuration")
    check.add_argument("--set", metavar="PATH=VALUE", action="append", default=[], dest="overrides",
                       help="with --ceremony: override a config value (repeatable)")
    check.add_argument("--module", metavar="PATH", help="PKCS#11 library (before any configuration exists)")
    check.add_argument("--token-label", metavar="LABEL")
    check.add_argument("--token-serial", metavar="SERIAL")
    check.add_argument("--pin-source", metavar="SPEC", default="prompt",
                       help="env[:VARIABLE] | file:PATH | prompt (default: prompt)")
    check.add_argument("--keys", metavar="PURPOSE=ALGORITHM,...", default=DEFAULT_KEYS,
                       help=f"with --module: the keys to check (default {DEFAULT_KEYS})")
    check.add_argument("--pin-length", metavar="N", type=int, default=None,
                       help="the user PIN length the token must accept (default: the ceremony's)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=check_command)


def _pin_spec(text: str) -> PinSpec:
    kind, _, rest = text.partition(":")
    if kind == "env":
        return PinSpec(source="env", variable=rest or "HSM_SIGNER_PIN")
    if kind == "file" and rest:
        return PinSpec(source="file", path=Path(rest))
    if kind == "prompt" and not rest:
        return PinSpec(source="prompt")
    raise ConfigError(f"{text!r} is not a PIN source; write env[:VARIABLE], file:PATH or prompt", "--pin-source")


def _key_needs(text: str):
    from ..hsm.readiness import MECHANISMS, KeyNeed
    needs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        purpose, sep, algorithm = item.partition("=")
        if not sep or algorithm not in MECHANISMS:
            raise ConfigError(f"{item!r}: write PURPOSE=ALGORITHM with ALGORITHM one of {', '.join(MECHANISMS)}",
                              "--keys")
        needs.append(KeyNeed(f"({purpose})", purpose, algorithm))
    if not needs:
        raise ConfigError("name at least one key", "--keys")
    return needs


Target = tuple[str, "Hsm", list["KeyNeed"], "int | None"]


def _targets(args) -> list[Target]:
    """``(what, Hsm to open, key needs, PIN length)`` for each token the options name."""
    from ..hsm import Hsm, pin_source
    from ..hsm.readiness import ECDH_P256, KeyNeed
    from ..hsm.shares import PIN_LENGTH
    if args.ceremony:
        from ..ceremony.config import load_config
        from .ceremony import parse_overrides
        cfg = load_config(args.ceremony, parse_overrides(args.overrides))
        if cfg.hsm.softhsm_conf is not None:
            os.environ["SOFTHSM2_CONF"] = str(cfg.hsm.softhsm_conf)
        targets: list[Target] = []
        if not cfg.hsm.initialise:
            assert cfg.hsm.initial_pin is not None
            targets.append(("the ceremony's token", Hsm(cfg.hsm.module, token_label=cfg.hsm.token_label,
                                                        pin_source=pin_source(cfg.hsm.initial_pin)),
                            [KeyNeed(k.label, k.purpose, k.algorithm) for k in cfg.keys], args.pin_length or PIN_LENGTH))
        sealing = cfg.sealing
        if sealing is not None and not sealing.initialise:
            assert sealing.initial_pin is not None
            targets.append(("the sealing token", Hsm(cfg.hsm.module, token_label=sealing.token_label,
                                                     pin_source=pin_source(sealing.initial_pin)),
                            [KeyNeed(sealing.label, "sealing", ECDH_P256)], args.pin_length or PIN_LENGTH))
        if not targets:
            raise ConfigError("initialise = true: the SoftHSM tokens do not exist before the rehearsal; "
                              "nothing to check", "hsm.initialise")
        return targets
    if args.module:
        if not (args.token_label or args.token_serial):
            raise ConfigError("with --module, name the token: --token-label LABEL (or --token-serial)")
        hsm = Hsm(args.module, token_label=args.token_label, token_serial=args.token_serial,
                  pin_source=pin_source(_pin_spec(args.pin_source)))
        return [("the token", hsm, _key_needs(args.keys), args.pin_length or PIN_LENGTH)]
    from .. import config as config_mod
    from ..bundle import KeyBundle
    from .health import configured_keys
    service_cfg = config_mod.load(args.config)
    if service_cfg.hsm.softhsm_conf is not None:
        os.environ["SOFTHSM2_CONF"] = str(service_cfg.hsm.softhsm_conf)
    hsm = Hsm(service_cfg.hsm.module, token_label=service_cfg.hsm.token_label,
              token_serial=service_cfg.hsm.token_serial, pin_source=pin_source(service_cfg.hsm.pin))
    return [("the service's token", hsm, [k.need for k in configured_keys(KeyBundle.load(service_cfg.key_bundle))],
             args.pin_length)]


def check_command(args) -> int:
    from ..hsm.readiness import check_token
    reports = []
    for what, hsm, needs, pin_length in _targets(args):
        hsm.open()
        try:
            reports.append((what, hsm, check_token(hsm, needs, pin_length=pin_length)))
        finally:
            hsm.close()
    if args.json:
        print(json.dumps({"fit": all(r.fit for _, _, r in reports),
                          "tokens": [{"what": what, **r.to_dict()} for what, _, r in reports]}, indent=2))
    else:
        for index, (what, hsm, report) in enumerate(reports):
            if len(reports) > 1:
                print(("\n" if index else "") + f"== {what} {hsm.token_name}")
            print(report.table())
    unfit = [(hsm, report) for _, hsm, report in reports if not report.fit]
    for hsm, report in unfit:
        print(f"hsm-signer: token {hsm.token_name} is NOT fit for the ceremony: {report.reasons()}", file=sys.stderr)
    return 2 if unfit else 0
