"""``hsm-signer election create|open|close|list``: the election life cycle for officials."""

from __future__ import annotations

import json
import time
from typing import Any

from ..election import Election, human_time, instant
from ..errors import ConfigError
from ..lifecycle import close_poll, open_poll
from ..storage import open_storage
from ._common import load_config
from ._service import open_service


def register(subparsers) -> None:
    parser = subparsers.add_parser("election", help="create, open, close and list elections")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create an election (state: draft) from a definition file")
    create.add_argument("definition", help="election definition (TOML)")
    create.set_defaults(func=create_cmd)
    opener = sub.add_parser("open", help="open the poll (draft -> open)")
    opener.add_argument("election")
    opener.set_defaults(func=open_cmd)
    closer = sub.add_parser("close", help="close the poll, sign the final checkpoint (open -> closed)")
    closer.add_argument("election")
    closer.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for a running sequencer to sign the last ballots")
    closer.set_defaults(func=close_cmd)
    lister = sub.add_parser("list", help="list elections and their states")
    lister.add_argument("--json", action="store_true", help="print the list as JSON (fields in docs/ELECTIONS.md)")
    lister.set_defaults(func=list_cmd)


def create_cmd(args) -> int:
    config = load_config(args)
    election = Election.load(args.definition)
    if election.origin is None:
        if config.origin_prefix is None:
            raise ConfigError(
                f"missing; the log of election {election.id!r} needs a globally unique name: set origin_prefix "
                "under [log] (a domain you control, such as vote.example.org), or origin in the definition",
                "log.origin_prefix")
        election = election.with_origin(config.origin_prefix)
    open_storage(config.storage_url).create_election(election)
    print(f"created election {election.id!r} ({election.title}) in state draft; its log is {election.origin}")
    return 0


def open_cmd(args) -> int:
    storage = open_storage(load_config(args).storage_url)
    open_poll(storage, args.election)
    election = storage.get_election(args.election).election
    print(f"election {args.election!r} is open")
    if election.opens_at is not None and time.time() < instant(election.opens_at):
        print(f"ballots are accepted from its opens_at, {human_time(election.opens_at)}")
    if election.closes_at is not None:
        print(f"the running sequencer (`hsm-signer serve`) closes it at its closes_at, {human_time(election.closes_at)}")
    return 0


def close_cmd(args) -> int:
    service = open_service(args)
    try:
        size, note = close_poll(service, args.election, timeout=args.timeout,
                                progress=lambda message: print(message, flush=True))
    finally:
        service.close()
    print(f"election {args.election!r} is closed; final checkpoint covers {size} entries:")
    print(note, end="")
    return 0


def list_cmd(args) -> int:
    storage = open_storage(load_config(args).storage_url)
    rows: list[dict[str, Any]] = []
    for record in storage.list_elections():
        e = record.election
        rows.append({"id": e.id, "title": e.title, "state": record.state, "origin": e.log_origin,
                     "opens_at": e.opens_at, "closes_at": e.closes_at, "entries": storage.tree_size(e.id),
                     "codes": storage.count_codes(e.id)})
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        counts = row["codes"]
        print(f"{row['id']}\t{row['state']}\t{row['entries']} entries\t"
              f"codes: {counts['unused']} unused, {counts['online']} online, {counts['postal']} postal")
    return 0
