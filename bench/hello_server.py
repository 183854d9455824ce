"""``python -m bench.hello_server --config CFG --port N``: hello-world Flask, served like the product.

The framework-ceiling side of the cast benchmark. It builds the gunicorn application
exactly as ``hsm-signer serve`` does (same function, same settings: worker count and
class, threads, access log, timeouts) and swaps only the WSGI app it loads for
:func:`bench.hello_app.create_app`, so any later change to the production server
configuration reaches both sides of the comparison.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from hsm_signer import config as config_mod
    from hsm_signer.commands import serve

    from .hello_app import create_app

    parser = argparse.ArgumentParser(prog="python -m bench.hello_server")
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=serve.DEFAULT_THREADS)
    args = parser.parse_args(argv)
    cfg = config_mod.load(args.config)
    # "thread": no sequencer process is started; the app that would run one is replaced below.
    application = serve._gunicorn_app(cfg, f"{args.host}:{args.port}", args.threads, "thread")
    type(application).load = lambda self: create_app()  # the only difference from `hsm-signer serve`
    application.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
