"""``hsm-signer demo``: the whole service on this machine in one command.

First run, in the state directory: a SoftHSM2 token directory, the rehearsal key
ceremony (which creates the token, splits its PIN 2-of-3 into rehearsal share files and
generates the keys), a config file that activates the token from two of those shares,
the demo election with a few hundred codes written to a CSV file, and the poll opened.
Every later run finds ``config.toml`` and resumes the same election. Then it serves on
127.0.0.1 with the sequencer in-process (``hsm-signer serve``).

Everything here is rehearsal material: SoftHSM keys and share files on disk are fine for
trying the service and never for a real election.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from .. import config as config_mod
from .. import softhsm
from ..election import Election
from ..errors import ConfigError
from ._common import command_hint, program_of

DEMO_DEFINITION = Path(__file__).resolve().parent.parent / "data" / "demo-election.toml"
DEMO_CODES = 300
CONFIG_NAME = "config.toml"


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run everything locally: SoftHSM, rehearsal ceremony, demo election")
    parser.add_argument("--state-dir", default="demo-state", help="where the demo keeps its state (default ./demo-state)")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    parser.add_argument("--codes", type=int, default=DEMO_CODES, help=argparse.SUPPRESS)
    parser.add_argument("--no-serve", action="store_true", help="set up (or check) the state, do not serve")
    parser.set_defaults(func=run)


def _config_text(state: Path, module: str, token_label: str, share_files: list[Path], bundle_dir: Path,
                 port: int, origin_prefix: str, sealing_token: str, trustee_files: list[Path]) -> str:
    return config_mod.config_text(
        header="Written by `hsm-signer demo`. Rehearsal material: never for a real election.\n"
               "The PIN: two of the three rehearsal share files rebuild the token's user PIN (2-of-3).\n"
               "[tally.sealing]: two of the three tally trustees' rehearsal share files open the sealing token;\n"
               "only `hsm-signer tally` reads it (serve and the sequencer never do).",
        module=module, token_label=token_label, softhsm_conf="softhsm/softhsm2.conf",
        pin={"source": "shares", "share_files": [os.path.relpath(p, state) for p in share_files]},
        bundle=os.path.relpath(bundle_dir, state),
        server={"host": "127.0.0.1", "port": port, "secret_key_file": "web-secret.key"},
        origin_prefix=origin_prefix,
        sealing={"token_label": sealing_token,
                 "pin": {"source": "shares", "share_files": [os.path.relpath(p, state) for p in trustee_files]}})


def bootstrap(state: Path, port: int, codes: int = DEMO_CODES) -> Path:
    """Create a fresh demo state in ``state``; return its config path."""
    from hsm_signer.ceremony.config import load_rehearsal
    from hsm_signer.ceremony.io import NonInteractiveIO
    from hsm_signer.ceremony.runner import run_ceremony

    from .. import codes as codes_mod
    from ..lifecycle import open_poll
    from ..service import Service

    module = softhsm.require_module()
    state.mkdir(parents=True, exist_ok=True)
    conf = softhsm.write_conf(state / "softhsm")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label = "hsm-signer-demo"
    print(f"[1/4] rehearsal key ceremony on a new SoftHSM token {label!r} (transcript below)", flush=True)
    ceremony = load_rehearsal({"ceremony.id": "demo-ceremony", "hsm.token_label": label,
                               "hsm.softhsm_conf": str(conf)}, cwd=state)
    assert ceremony.sealing is not None  # the rehearsal config has a [sealing] table
    result = run_ceremony(ceremony, NonInteractiveIO(), state / "keys" / "demo-ceremony",
                          shares_dir=state / "rehearsal-shares" / "demo-ceremony")

    secret = state / "web-secret.key"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    config_path = state / CONFIG_NAME
    tmp = state / (CONFIG_NAME + ".tmp")
    # A name of its own for this demo's logs, unlike any other demo's: .invalid never resolves.
    origin_prefix = f"demo.hsm-signer.invalid/{secrets.token_hex(4)}"
    tmp.write_text(_config_text(state, module, label, list(result.share_files[:ceremony.threshold]),
                                result.bundle_dir, port, origin_prefix, ceremony.sealing.token_label,
                                list(result.trustee_share_files[:ceremony.sealing.threshold])), encoding="utf-8")
    cfg = config_mod.parse(config_mod.load_toml(tmp), config_path)

    print(f"[2/4] demo election and {codes} voting codes", flush=True)
    service = Service.open(cfg)
    try:
        election = Election.load(DEMO_DEFINITION).with_origin(origin_prefix)
        service.storage.create_election(election)
        issued = list(codes_mod.issue(service.ballots.code_mac, election.id, codes))
        codes_file = state / "codes.csv"
        fd = os.open(codes_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("code\n" + "".join(codes_mod.display(code) + "\n" for code, _ in issued))
        service.storage.add_codes(election.id, [digest for _, digest in issued])
        print("[3/4] opening the poll", flush=True)
        open_poll(service.storage, election.id)
    finally:
        service.close()
    os.replace(tmp, config_path)  # the state is complete only once the config is in place
    return config_path


def run(args) -> int:
    state = Path(args.state_dir).resolve()
    config_path = state / CONFIG_NAME
    if not config_path.exists():
        if state.exists() and any(state.iterdir()):
            raise ConfigError(f"{state} holds an unfinished demo state (no {CONFIG_NAME}); "
                              "remove the directory and run `hsm-signer demo` again")
        bootstrap(state, args.port, args.codes)
    else:
        print(f"resuming the demo in {state}", flush=True)
    cfg = config_mod.load(config_path)
    election = Election.load(DEMO_DEFINITION)
    port = args.port
    cli = command_hint()
    print(f"""
[4/4] hsm-signer demo
  vote at          http://127.0.0.1:{port}/
  voting codes     {state / 'codes.csv'}
  key bundle       {cfg.key_bundle}  (check it: {cli} ceremony verify {cfg.key_bundle})
  bulletin board   http://127.0.0.1:{port}/board/{election.id}
  officials        export HSM_SIGNER_CONFIG={config_path}
                   {cli} election close {election.id}; {cli} tally {election.id}
""", flush=True)
    if args.no_serve:
        return 0
    from .serve import serve
    return serve(cfg, host="127.0.0.1", port=port, program=program_of(args))
