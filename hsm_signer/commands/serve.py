"""``hsm-signer serve``: the web front end, with the sequencer beside it.

The web server is the Flask app under gunicorn with **one** worker process and a pool of
threads (``gthread``). The sequencer runs, by ``--sequencer``:

* ``process`` (the default): as its own process; ``serve`` then supervises two children,
  the sequencer and the web server (:mod:`.supervise` says how and why). The web worker
  learns of committed batches through a :class:`~hsm_signer.watch.CommitWatcher`.
* ``thread``: inside the web worker, as before; chosen anyway when the HSM PIN is typed
  in (``prompt`` or ``shares``), so that it is asked for once.
* ``none``: not at all; another process signs (``hsm-signer sequencer``, or the
  supervisor of the default form).

Threads, because a request spends most of its time waiting for its batch's signature: a
waiting thread costs no CPU, and the pool must cover the voters casting at the same time
(default 64). Gunicorn rather than Werkzeug's development server: a bounded thread pool
(SQLite storage keeps one connection per thread), worker supervision and graceful
shutdown on SIGTERM. The HSM is opened in the worker, after the fork: PKCS#11 sessions
do not survive fork().

For several worker processes run gunicorn directly with ``hsm_signer.web:create_app()`` and one
``hsm-signer sequencer`` (docs/WEB.md).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from .. import config as config_mod
from ..errors import ConfigError, HsmSignerError
from ._common import DEFAULT_PROGRAM, Program, program_of

log = logging.getLogger(__name__)

DEFAULT_THREADS = 64
DEFAULT_READ_TIMEOUT = 10.0  # seconds for a whole request to arrive (commands/gunicorn_worker.py)
SEQUENCER_MODES = ("process", "thread", "none")
INTERACTIVE_PIN_SOURCES = ("prompt", "shares")


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve the voter pages and the API, with the sequencer beside them")
    parser.add_argument("--host", help="address to listen on (default: server.host of the config)")
    parser.add_argument("--port", type=int, help="port to listen on (default: server.port of the config)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"request threads (default {DEFAULT_THREADS})")
    parser.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT, metavar="SECONDS",
                        help="a request must arrive whole (headers and body) within this many seconds of its "
                             f"first byte, or its connection is dropped (default {DEFAULT_READ_TIMEOUT:g})")
    parser.add_argument("--sequencer", choices=SEQUENCER_MODES, default="process",
                        help="run the sequencer as a process of its own (default), as a thread of the "
                             "web worker (chosen anyway when the HSM PIN is typed in), or not at all "
                             "(another process signs)")
    parser.set_defaults(func=run)


def _gunicorn_app(cfg: config_mod.Config, bind: str, threads: int, sequencer: str, read_timeout: float,
                 program: Program):
    state: dict = {}

    def open_app():
        """In the worker: open the service, start the sequencer unless another one runs, build the app."""
        from hsm_signer.web import create_app

        from ..service import Service
        try:
            # The board, the verify page and health need no HSM: start even while it is away.
            service = Service.open(cfg, with_sequencer=sequencer != "none", follow_commits=True, hsm_may_be_away=True,
                                   keys=program.keys)
            state["service"] = service
            service.start()  # with another sequencer already signing, this server follows its batches
            return create_app(service=service)
        except HsmSignerError as exc:
            log.error("cannot start: %s", exc)
            raise SystemExit(3) from None  # gunicorn: worker failed to boot, stop

    def close_service(server, worker) -> None:
        if "service" in state:
            state.pop("service").close()

    return gunicorn_app(bind, threads, open_app, read_timeout=read_timeout, on_worker_exit=close_service)


def gunicorn_app(bind: str, threads: int, load: Callable[[], Any], *, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 on_worker_exit: Callable[[Any, Any], None] | None = None):
    """The gunicorn application ``serve`` runs: one hardened thread worker with ``threads``
    threads, dying with its master; ``load()`` builds the WSGI app in the worker (the
    benchmarks' hello-world server passes its own, to be served exactly alike)."""
    from gunicorn.app.base import BaseApplication

    def worker_dies_with_master(server, worker) -> None:
        from .supervise import die_with_parent
        die_with_parent()

    def worker_exit(server, worker) -> None:
        if on_worker_exit is not None:
            on_worker_exit(server, worker)

    class ServeApplication(BaseApplication):
        def load_config(self) -> None:
            from .gunicorn_worker import DeadlineSocket, HardenedThreadWorker
            DeadlineSocket.read_timeout = read_timeout  # inherited by the worker gunicorn forks
            settings = {"bind": [bind], "workers": 1, "worker_class": HardenedThreadWorker, "threads": threads,
                        "accesslog": "-", "graceful_timeout": 15, "worker_exit": worker_exit,
                        "post_fork": worker_dies_with_master,
                        "proc_name": "hsm-signer-serve"}
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no ~/.gunicorn socket
                settings["control_socket_disable"] = True
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return load()

    return ServeApplication(prog="hsm-signer serve")


def serve(cfg: config_mod.Config, *, host: str | None = None, port: int | None = None,
          threads: int = DEFAULT_THREADS, sequencer: str = "process",
          read_timeout: float = DEFAULT_READ_TIMEOUT, program: Program = DEFAULT_PROGRAM) -> int:
    """Serve until SIGTERM or Ctrl-C (``hsm-signer serve`` and ``hsm-signer demo``).

    Host and port default to the config's ``[server]`` table.
    """
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    # Links the service prints use server.public_url, else the address it really listens on.
    cfg = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, host=host, port=port))
    if threads < 1:
        raise ConfigError("--threads must be at least 1")
    if not 0 < read_timeout <= 3600:
        raise ConfigError("--read-timeout must be between 0 and 3600 seconds")
    if sequencer not in SEQUENCER_MODES:
        raise ConfigError(f"--sequencer must be one of {', '.join(SEQUENCER_MODES)}")
    if sequencer == "process" and cfg.hsm.pin.source in INTERACTIVE_PIN_SOURCES:
        log.info("the HSM PIN is typed in (%s): the sequencer runs in the web process, so it is asked once",
                 cfg.hsm.pin.source)
        sequencer = "thread"
    if sequencer == "process":
        from .supervise import Supervisor, child_command
        web = child_command(cfg.path, "serve", "--host", host, "--port", str(port), "--threads", str(threads),
                            "--read-timeout", str(read_timeout),
                            "--sequencer", "none", module=program.module)
        return Supervisor(web, child_command(cfg.path, "sequencer", module=program.module)).run()
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log.info("serving http://%s/ (%d threads); the sequencer %s", bind, threads,
             "runs in this process" if sequencer == "thread" else "runs in another process")
    _gunicorn_app(cfg, bind, threads, sequencer, read_timeout, program).run()  # gunicorn exits the process when it stops
    return 0


def run(args) -> int:
    cfg = config_mod.load(args.config)  # validated here, before any process starts
    return serve(cfg, host=args.host, port=args.port, threads=args.threads, sequencer=args.sequencer,
                 read_timeout=args.read_timeout, program=program_of(args))
