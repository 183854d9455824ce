"""``hsm-signer ceremony run|verify|retire``: the key ceremony from the command line.

* ``run CONFIG [--non-interactive] [--out DIR] [--shares-dir DIR] [--set PATH=VALUE]``
  runs the scripted ceremony of :mod:`ceremony.runner` (interactive unless told not to;
  ``--non-interactive`` is for rehearsals only).
* ``verify BUNDLE_DIR [--original DIR]`` checks a ceremony or retirement bundle and prints
  the report; a failure exits with status 1 and a message naming what is wrong.
* ``retire CONFIG [--non-interactive] [--out DIR] [--set PATH=VALUE]`` destroys the keys
  a retirement config names and writes the signed retirement bundle.

``--set hsm.token_label=demo`` overrides one config value (TOML syntax, or a bare
string). This module never prints a PIN or a share except through the ceremony's own
share screen.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def register(subparsers) -> None:
    parser = subparsers.add_parser("ceremony", help="run, verify or retire a key ceremony")
    sub = parser.add_subparsers(dest="ceremony_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="run the key ceremony a config file describes")
    run.add_argument("ceremony_config", metavar="CONFIG", help="ceremony configuration (TOML)")
    run.add_argument("--non-interactive", action="store_true",
                     help="rehearsals only: no confirmations, shares written to files")
    run.add_argument("--out", metavar="DIR", help="bundle directory to create (default keys/<ceremony-id>)")
    run.add_argument("--shares-dir", metavar="DIR",
                     help="where a non-interactive rehearsal writes share files (default rehearsal-shares/<id>)")
    _add_set(run)
    run.set_defaults(func=run_command)

    verify = sub.add_parser("verify", help="verify a ceremony or retirement bundle")
    verify.add_argument("bundle", metavar="BUNDLE_DIR")
    verify.add_argument("--original", metavar="DIR",
                        help="for a retirement bundle: the ceremony bundle its keys came from")
    verify.set_defaults(func=verify_command)

    retire = sub.add_parser("retire", help="destroy keys of a ceremony and record it in a signed transcript")
    retire.add_argument("retire_config", metavar="CONFIG", help="retirement configuration (TOML)")
    retire.add_argument("--non-interactive", action="store_true", help="rehearsals only")
    retire.add_argument("--out", metavar="DIR",
                        help="bundle directory to create (default <keys dir>/<ceremony-id>-retire-<n>)")
    _add_set(retire)
    retire.set_defaults(func=retire_command)


def _add_set(parser) -> None:
    parser.add_argument("--set", metavar="PATH=VALUE", action="append", default=[], dest="overrides",
                        help="override a config value, e.g. --set hsm.token_label=rehearsal-2 (repeatable)")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"--set {item!r}: write PATH=VALUE, e.g. --set hsm.token_label=demo")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        overrides[path.strip()] = value
    return overrides


def _io(args):
    from hsm_signer.ceremony.io import NonInteractiveIO, TerminalIO
    return NonInteractiveIO() if args.non_interactive else TerminalIO()


def run_command(args) -> int:
    from hsm_signer.ceremony.config import load_config
    from hsm_signer.ceremony.runner import run_ceremony

    config = load_config(args.ceremony_config, parse_overrides(args.overrides))
    run_ceremony(config, _io(args), args.out, shares_dir=args.shares_dir)
    return 0


def verify_command(args) -> int:
    from hsm_signer.ceremony.verify import verify_bundle_dir

    for given in (args.bundle, args.original):
        if given is not None and not Path(given).is_dir():  # could not run: status 2, not "failed" (1)
            raise ConfigError(f"{given} is not a directory; give the bundle directory (e.g. keys/<ceremony-id>)")
    print(verify_bundle_dir(args.bundle, original=args.original).text())
    return 0


def retire_command(args) -> int:
    from hsm_signer.ceremony.retire import run_retirement
    from hsm_signer.ceremony.retire_config import load_retire_config

    config = load_retire_config(args.retire_config, parse_overrides(args.overrides))
    run_retirement(config, _io(args), args.out)
    return 0
