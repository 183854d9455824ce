"""The web front end: a Flask app factory over the core :class:`~hsm_signer.service.Service`.

``create_app()`` builds the app from a configuration (a :class:`Config`, a path, or
``$HSM_SIGNER_CONFIG``) or takes a ready Service (tests, ``hsm-signer serve``). Views
reach the core only through ``current_app.extensions["hsm_signer"]``; none of them
imports PKCS#11. Blueprints: ``vote`` (voter pages and receipts), ``check`` ("check my
code"), ``board`` (bulletin board), ``verify`` (the QR code's target), ``api`` and
``openapi`` (JSON under ``/api/v1``).

Web settings beyond the config file (rate limits, proxy trust) are Flask config keys,
settable as environment variables ``HSM_SIGNER_WEB_<KEY>`` (see docs/WEB.md).
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from hsm_signer import config as config_mod
from hsm_signer.ballots import ClearBallotsRefusedError
from hsm_signer.service import Service

from . import api, board, check, errors, i18n, openapi, security, verify, vote, wording
from .context import WebContext

ENV_PREFIX = "HSM_SIGNER_WEB"
log = logging.getLogger(__name__)


class _DocumentOrderJSON(DefaultJSONProvider):
    sort_keys = False  # receipts keep their documented field order


def create_app(config: config_mod.Config | str | Path | None = None, *, service: Service | None = None,
               test_config: dict | None = None) -> Flask:
    """Build the app. Without ``service``, open one (no sequencer: run ``hsm-signer sequencer``)."""
    owns_service = service is None
    if service is None:
        cfg = config if isinstance(config, config_mod.Config) else config_mod.load(config)
        service = Service.open(cfg, follow_commits=True).start()  # the sequencer is another process
    cfg = service.config
    if service.ballots.sealing_key is None and not service.ballots.allow_clear_ballots:
        if owns_service:
            service.close()
        raise ClearBallotsRefusedError()
    if service.ballots.sealing_key is None:
        log.warning("the key bundle %s has no sealing key: ballots are stored as leaf v1, with their selections "
                    "IN CLEAR; run a key ceremony that creates the sealing key (ceremony/CEREMONY.md) before a "
                    "real election", cfg.key_bundle)

    app = Flask(__name__)
    app.json = _DocumentOrderJSON(app)
    app.config.update(
        security.DEFAULTS,
        BEHIND_TLS=cfg.server.behind_tls,
        SESSION_COOKIE_SECURE=cfg.server.behind_tls,
        SECRET_KEY=security.load_secret_key(cfg.server.secret_key_file),
    )
    app.config.from_prefixed_env(ENV_PREFIX)
    app.config.update(test_config or {})
    app.extensions["hsm_signer"] = WebContext(service=service, owns_service=owns_service)

    for blueprint in (vote.bp, check.bp, board.bp, verify.bp, api.bp, openapi.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
    wording.init_app(app)
    i18n.init_app(app)
    security.init_app(app)  # after the blueprints: it wraps the code-checking views in rate limits
    if owns_service:
        atexit.register(service.close)
    return app
