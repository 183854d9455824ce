"""The ``hsm-signer`` console script: parse arguments, run one command, report errors.

Errors the project raises on purpose (:class:`HsmSignerError`) become one line on stderr
and exit status 2 (1 is reserved for "verification failed"); so do a file the operating
system refuses (``OSError``: a missing folder, no permission) and a command that needs
what only the ``service`` extra installs, where only ``cryptography`` is. Anything else is a
bug and keeps its traceback. Exit statuses: 0 done; 1 verification failed; 2 the command
could not run (a mistake in what was asked, named on stderr); 3 ``postal record``: rows
of the batch are wrong (each named in the report).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .commands import MODULES
from .commands._common import DEFAULT_PROGRAM, Program
from .errors import HsmSignerError, VerificationError

#: Import names only the ``service`` extra installs (pyproject.toml). The commands that need
#: them import them when they run, so ``verify`` and ``audit`` work without them.
SERVICE_EXTRA = frozenset({"pkcs11", "flask", "flask_limiter", "flask_babel", "babel", "werkzeug", "segno",
                           "shamir_mnemonic", "gunicorn"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hsm-signer",
        description="Hardware-backed ballot signing with verifiable receipts.",
    )
    parser.add_argument("--version", action="version", version=f"hsm-signer {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="configuration file (default: $HSM_SIGNER_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in MODULES:
        importlib.import_module(f".commands.{name}", __package__).register(subparsers)
    return parser


def main(argv: list[str] | None = None, *, program: Program = DEFAULT_PROGRAM) -> int:
    """Run one command. ``program`` says how to start child processes and where services get
    their keys (the defaults for the console script; see :class:`Program`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.program = program
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VerificationError as exc:
        print(f"hsm-signer: FAILED: {exc}", file=sys.stderr)
        return 1
    except HsmSignerError as exc:
        print(f"hsm-signer: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in SERVICE_EXTRA:
            raise
        print(f"hsm-signer: error: `hsm-signer {args.command}` needs {exc.name}, which this installation lacks; "
              "install the service extra: pip install 'hsm-signer[service]'", file=sys.stderr)
        return 2
    except OSError as exc:
        # A path the operating system refuses (missing folder, no permission, disk full):
        # the user's to fix, so one line, never a traceback.
        where = f" {exc.filename}" if exc.filename else ""
        print(f"hsm-signer: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hsm-signer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
