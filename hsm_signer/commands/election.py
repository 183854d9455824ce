"""``hsm-signer election create|open|close|list``: the election life cycle for officials."""

from __future__ import annotations

from ..election import Election
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
    open_poll(open_storage(load_config(args).storage_url), args.election)
    print(f"election {args.election!r} is open")
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
    for record in storage.list_elections():
        counts = storage.count_codes(record.election.id)
        print(f"{record.election.id}\t{record.state}\t{storage.tree_size(record.election.id)} entries\t"
              f"codes: {counts['unused']} unused, {counts['online']} online, {counts['postal']} postal")
    return 0
