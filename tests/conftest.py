"""Shared fixtures: one SoftHSM2 token directory per test session, tokens and keys in it.

The token directory is set through ``SOFTHSM2_CONF`` before anything loads the PKCS#11
module (SoftHSM reads its configuration at C_Initialize, once per process).
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import (  # noqa: E402
    P11KIT_SERVER, PG_BIN, TEST_MODULE, TEST_PIN, TEST_PREPARE, TEST_TOKEN, OpenCryptokiSoftToken, P11KitServer,
    ThrowawayPostgres, TokenFactory, find_p11kit_client, require, requires, served_by_softhsm,
)
from hsm_signer import softhsm  # noqa: E402
from hsm_signer.hsm import FixedPin, Hsm  # noqa: E402

TEST_HMAC_SECRET = bytes(range(32))


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory) -> Path:
    require(softhsm.find_module() is not None and shutil.which("softhsm2-util") is not None,
            "SoftHSM2 is not installed (apt-get install softhsm2)")
    conf = softhsm.write_conf(tmp_path_factory.mktemp("softhsm"))
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


OPENCRYPTOKI_TEST_LABEL = "hsm-signer-test"
OPENCRYPTOKI_TEST_PIN = "hsmuser1"  # openCryptoki takes 4-8 characters


@pytest.fixture(scope="session")
def opencryptoki_token():
    """This machine's openCryptoki soft token, daemon started and token (re)initialised:
    ``(OpenCryptokiSoftToken, label, user PIN)``."""
    ock = OpenCryptokiSoftToken().start()
    ock.init(OPENCRYPTOKI_TEST_LABEL, OPENCRYPTOKI_TEST_PIN)
    yield ock, OPENCRYPTOKI_TEST_LABEL, OPENCRYPTOKI_TEST_PIN
    ock.stop()


@pytest.fixture(scope="session")
def tokens(softhsm_conf, request) -> TokenFactory:
    """Makes fresh tokens: ``tokens.new()``; ``tokens.shared()`` for the shared one. The module
    under test comes from HSM_SIGNER_TEST_* (tests/harness.py), SoftHSM2 by default."""
    if TEST_MODULE == "opencryptoki":
        ock, label, pin = request.getfixturevalue("opencryptoki_token")
        return TokenFactory(softhsm_conf, module=ock.module, token=label, pin=pin)
    return TokenFactory(softhsm_conf, module=TEST_MODULE, token=TEST_TOKEN, pin=TEST_PIN, prepare=TEST_PREPARE)


@pytest.fixture(scope="session")
def token(tokens):
    """The shared test token (keys are created by the ``hsm`` fixture)."""
    return tokens.shared("shared")


@pytest.fixture(scope="session")
def hsm(token):
    """An open :class:`Hsm` on the shared token, with test keys:
    ``test-ecdsa`` (P-256), ``test-ed25519`` and ``test-hmac-known`` (secret TEST_HMAC_SECRET)."""
    from pkcs11 import Mechanism

    from hsm_signer.hsm.manage import generate_signing_key, import_mac_key_for_tests

    requires(token, Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA, Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA,
             Mechanism.SHA256_HMAC)
    h = Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)).open()
    generate_signing_key(h, "test-ecdsa", b"\x01", "ecdsa-p256")
    generate_signing_key(h, "test-ed25519", b"\x02", "ed25519")
    import_mac_key_for_tests(h, "test-hmac-known", TEST_HMAC_SECRET)
    yield h
    h.close()


@pytest.fixture(scope="session")
def p11kit_client_module() -> str:
    require(os.path.exists(P11KIT_SERVER), "p11-kit server is not installed (apt-get install p11-kit)")
    module = find_p11kit_client()
    require(module is not None, "p11-kit-client.so is not installed (apt-get install p11-kit-modules)")
    return module


@pytest.fixture(scope="session")
def network_token(tokens):
    """A token that only the p11-kit network HSM serves, with one ECDSA key."""
    from hsm_signer.hsm.manage import generate_signing_key

    tok = tokens.new("net")
    with Hsm(tok.module, token_label=tok.label, pin_source=FixedPin(tok.user_pin)) as h:
        generate_signing_key(h, "net-ecdsa", b"\x10", "ecdsa-p256")
    return tok


@pytest.fixture(scope="session")
def p11kit_socket(tmp_path_factory) -> Path:
    """One socket path per session: p11-kit-client reads its address once per process."""
    path = tmp_path_factory.mktemp("p11kit") / "p11kit.sock"
    os.environ["P11_KIT_SERVER_ADDRESS"] = f"unix:path={path}"
    return path


@pytest.fixture
def network_hsm(network_token, p11kit_client_module, p11kit_socket):
    """``(server, hsm)``: the token through p11-kit server + client; stop/start the server."""
    server = P11KitServer(served_by_softhsm(network_token), p11kit_socket)
    server.start()
    try:
        h = Hsm(p11kit_client_module, token_label=network_token.label,
                pin_source=FixedPin(network_token.user_pin)).open()
    except BaseException:
        server.stop()  # no teardown runs for a fixture that failed: never leave the server behind
        raise
    yield server, h
    server.stop()
    h.close()


@pytest.fixture
def random_label() -> str:
    return f"key-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A throwaway PostgreSQL 15 cluster for the session (``postgres.create_database(name)``)."""
    require((PG_BIN / "initdb").exists(), "PostgreSQL 15 server is not installed (apt-get install postgresql-15)")
    require(os.geteuid() == 0 or shutil.which("runuser") is None,
            "starting a throwaway PostgreSQL cluster needs root (it runs it as the postgres user)")
    base = Path("/tmp") / f"hsm-signer-pg-{os.getpid()}"  # short: Unix socket paths are limited
    server = ThrowawayPostgres(base)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


# --- a whole service on a fresh token (tests/servicekit.py) ---------------------------------

@pytest.fixture
def kit(tokens, tmp_path):
    """A service directory in tmp_path: token with keys, key bundle, PIN file, config.toml."""
    from servicekit import provision
    return provision(tokens, tmp_path)


@pytest.fixture
def service(kit):
    """The running service of ``kit``, sequencer in-process."""
    from hsm_signer.service import Service
    svc = Service.open(kit.load(), with_sequencer=True).start()
    yield svc
    svc.close()


@pytest.fixture
def codes(service):
    """The test election (servicekit.DEMO_ELECTION), open, with 10 voting codes."""
    from servicekit import open_election
    return open_election(service, 10)


@pytest.fixture
def sealing_key(service):
    """A sealing key pair for ``service``: the service gets only its public point (as from
    keys.json); the test keeps the private half, the software twin of the HSM key the tally
    opens with, to show what is inside a sealed ballot."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from hsm_signer.log import hpke
    private = ec.generate_private_key(ec.SECP256R1())
    service.ballots.sealing_key = hpke.public_key_bytes(private.public_key())
    return private


@pytest.fixture
def hsm_sealing_key(tokens, service):
    """The sealing key as the ceremony makes it: derive-only, on a SoftHSM token of its own
    (never the service's); the service gets only its public point. Yields the HSM deriver
    the tally opens the box with (``servicekit.open_box_with``)."""
    from hsm_signer.hsm.manage import generate_sealing_key
    token = tokens.new("sealing")
    hsm = Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)).open()
    try:
        deriver = generate_sealing_key(hsm, "sealing", b"\x05")
        service.ballots.sealing_key = deriver.public_key
        yield deriver
    finally:
        hsm.close()


@pytest.fixture
def client(service):
    """A Flask test client of the web app over ``service``."""
    from hsm_signer.web import create_app
    return create_app(service=service, test_config={"TESTING": True}).test_client()


@pytest.fixture
def officials(tokens, tmp_path, capsys):
    """Run ``hsm-signer`` commands in-process on a fresh service directory:
    ``officials("election", "open", "e1", expect=0) -> (stdout, stderr)``; ``officials.kit``."""
    from hsm_signer.cli import main
    from servicekit import provision
    kit = provision(tokens, tmp_path / "state")

    def run(*argv, expect=0):
        capsys.readouterr()
        status = main(["--config", str(kit.config_path), *argv])
        out = capsys.readouterr()
        assert status == expect, out.err
        return out.out, out.err
    run.kit = kit
    return run


_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_storage(request, tmp_path):
    """A fresh, empty storage on SQLite and on a throwaway PostgreSQL database (the contract)."""
    from hsm_signer.storage import open_storage
    if request.param == "sqlite":
        store = open_storage(f"sqlite:///{tmp_path}/db.sqlite3")
    else:
        store = open_storage(request.getfixturevalue("postgres").create_database(f"contract{next(_databases)}"))
    yield store
    store.close()
