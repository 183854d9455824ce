"""``hsm-signer serve``: the web front end and the sequencer in one process.

Runs the Flask app under gunicorn with **one** worker process and a pool of threads
(``gthread``). One worker, because the sequencer must run in exactly one process (its
lock file enforces that) and its in-process notifier wakes receipt waiters at once;
threads, because a request spends most of its time waiting for the batch signature.
Gunicorn rather than Werkzeug's development server: a bounded thread pool (SQLite
storage keeps one connection per thread, so a thread-per-request server would pile up
connections), worker supervision and graceful shutdown on SIGTERM.

The HSM is opened in the worker, after the fork: PKCS#11 sessions do not survive fork().
If a separate ``hsm-signer sequencer`` already runs for this database, this process
leaves the signing to it and polls for receipts.

For several worker processes run gunicorn directly with ``web:create_app()`` and one
``hsm-signer sequencer`` (docs/WEB.md).
"""

from __future__ import annotations

import logging

from .. import config as config_mod
from ..errors import ConfigError, HsmSignerError

log = logging.getLogger(__name__)

DEFAULT_THREADS = 16


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve the voter pages and the API, with the sequencer in-process")
    parser.add_argument("--host", help="address to listen on (default: server.host of the config)")
    parser.add_argument("--port", type=int, help="port to listen on (default: server.port of the config)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"request threads (default {DEFAULT_THREADS})")
    parser.set_defaults(func=run)


def _gunicorn_app(cfg: config_mod.Config, bind: str, threads: int):
    from gunicorn.app.base import BaseApplication

    state: dict = {}

    def open_app():
        """In the worker: open the service, start the sequencer unless another one runs, build the app."""
        from web import create_app

        from ..service import Service
        from ._common import start_own_sequencer
        try:
            service = Service.open(cfg)
            state["service"] = service
            if start_own_sequencer(service) is None:
                log.info("another sequencer signs for this database; this server polls for receipts")
            return create_app(service=service)
        except HsmSignerError as exc:
            log.error("cannot start: %s", exc)
            raise SystemExit(3) from None  # gunicorn: worker failed to boot, stop

    def close_service(server, worker) -> None:
        if "service" in state:
            state.pop("service").close()

    class ServeApplication(BaseApplication):
        def load_config(self) -> None:
            settings = {"bind": [bind], "workers": 1, "worker_class": "gthread", "threads": threads,
                        "accesslog": "-", "graceful_timeout": 15, "worker_exit": close_service,
                        "proc_name": "hsm-signer-serve"}
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no ~/.gunicorn socket
                settings["control_socket_disable"] = True
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return open_app()

    return ServeApplication(prog="hsm-signer serve")


def serve(cfg: config_mod.Config, *, host: str | None = None, port: int | None = None,
          threads: int = DEFAULT_THREADS) -> int:
    """Serve until SIGTERM or Ctrl-C (``hsm-signer serve`` and ``hsm-signer demo``).

    Host and port default to the config's ``[server]`` table.
    """
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    if threads < 1:
        raise ConfigError("--threads must be at least 1")
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log.info("serving http://%s/ with the sequencer in-process (%d threads)", bind, threads)
    _gunicorn_app(cfg, bind, threads).run()  # gunicorn exits the process when it stops
    return 0


def run(args) -> int:
    cfg = config_mod.load(args.config)  # validated here, before any process starts
    return serve(cfg, host=args.host, port=args.port, threads=args.threads)
