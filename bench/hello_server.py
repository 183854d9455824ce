"""``python -m bench.hello_server --config CFG --port N``: hello-world Flask, served like the product.

The framework-ceiling side of the cast benchmark. It builds the gunicorn application
exactly as ``hsm-signer serve`` does (same function, same settings: worker count and
class, threads, access log, timeouts) and hands it :func:`bench.hello_app.create_app` as
the WSGI app to load, so any later change to the production server configuration
reaches both sides of the comparison.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from hsm_signer.commands import serve

    from .hello_app import create_app

    parser = argparse.ArgumentParser(prog="python -m bench.hello_server")
    parser.add_argument("--config", required=True, help="accepted like serve's, not read: no service runs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=serve.DEFAULT_THREADS)
    args = parser.parse_args(argv)
    serve.gunicorn_app(f"{args.host}:{args.port}", args.threads, create_app).run()  # the only difference: the app
    return 0


if __name__ == "__main__":
    sys.exit(main())
