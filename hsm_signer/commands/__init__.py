"""Subcommands of the ``hsm-signer`` console script, one module per command group.

Each module has ``register(subparsers)``, adding its parsers with ``func`` set to a
function ``(args) -> int`` (the exit status). Commands turn :class:`HsmSignerError`
into a one-line message; they never print a PIN or a voting code.
"""

#: Command modules, in the order they appear in ``--help``.
MODULES = [
    "demo",
    "ceremony",
    "election",
    "codes",
    "postal",
    "sequencer",
    "verify",
    "tally",
    "record",
    "audit",
    "health",
    "hsm",
    "serve",
]
