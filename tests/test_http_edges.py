"""The small holes issue 13 found at the edges of HTTP, each pinned by a test.

* the receipt's verify link and QR code came from the request's Host header and scheme;
* a chunked body over 16 KiB got 400 (a truncated body) instead of 413;
* HTML routes answered an unsupported method with ``400 csrf_failed`` instead of 405;
* gunicorn's own 400/414/431 pages had no security headers;
* ``/health`` could answer 429 without the OpenAPI document saying so;
* ``tally.txt`` was served with its charset twice.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import socket

import pytest

from hsm_signer.config import ConfigError, ServerSettings
from hsm_signer.lifecycle import close_poll, tally_election
from hsm_signer.service import Service
from hsm_signer.web import create_app
from hsm_signer.web.security import SECURITY_HEADERS

from servicekit import DEMO_ELECTION, open_election, provision
from test_web_live import ServeProcess

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["dan"]}


# --- links from the configured public URL ---------------------------------------------------

def test_the_receipt_links_to_the_public_url_whatever_host_the_request_names(service, codes):
    public = copy.copy(service)
    public.config = dataclasses.replace(service.config, server=dataclasses.replace(
        service.config.server, public_url="https://vote.example.org", behind_tls=True))
    client = create_app(service=public, test_config={"TESTING": True}).test_client()
    cast = service.ballots.cast(ELECTION, codes[0], VOTE)
    page = client.get(f"/elections/{ELECTION}/receipts/{cast.ballot_id}",
                      headers={"Host": "evil.example", "X-Forwarded-Proto": "http"}).get_data(as_text=True)
    links = re.findall(r'https?://[^"\s<]+/verify\?[^"\s<]+', page)
    assert links and all(link.startswith("https://vote.example.org/verify?e=") for link in links)
    assert "evil.example" not in page


def test_without_a_public_url_links_use_the_configured_host_and_port_not_the_request():
    assert ServerSettings(host="127.0.0.1", port=8080).base_url == "http://127.0.0.1:8080"
    assert ServerSettings(host="::1", port=9, behind_tls=True).base_url == "https://[::1]:9"
    assert ServerSettings(public_url="https://vote.example.org").base_url == "https://vote.example.org"


@pytest.mark.parametrize("value", ["vote.example.org", "ftp://vote.example.org", "https://vote.example.org/?x=1",
                                   "https://user:pw@vote.example.org"])
def test_a_public_url_that_is_not_a_base_url_is_a_config_error(kit, value):
    text = kit.config_path.read_text()
    kit.config_path.write_text(text + f'\n[server]\npublic_url = "{value}"\n' if "[server]" not in text else
                               text.replace("[server]", f'[server]\npublic_url = "{value}"'))
    with pytest.raises(ConfigError, match="server.public_url"):
        kit.load()


# --- HTML routes and the tally note -------------------------------------------------------

@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/check", {"GET", "POST"}),
    ("DELETE", f"/elections/{ELECTION}/vote/cast", {"POST"}),
    ("PATCH", f"/elections/{ELECTION}/vote/ballot", {"POST"}),
])
def test_html_routes_answer_an_unsupported_method_with_405_and_allow_not_csrf_failed(client, codes, method, path,
                                                                                      allowed):
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert b"csrf_failed" not in response.data


def test_the_tally_note_is_plain_text_with_one_charset(client, service, codes):
    service.ballots.cast(ELECTION, codes[0], VOTE)
    close_poll(service, ELECTION)
    tally_election(service, ELECTION)
    response = client.get(f"/board/{ELECTION}/tally.txt")
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_every_api_operation_documents_429_and_the_servers_own_414_and_431(client):
    """Schemathesis once sent hundreds of repeated query parameters and got gunicorn's 414,
    which no operation documented: any operation can get the server's own limits."""
    document = client.get("/api/v1/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert {"429", "414", "431"} <= set(operation["responses"]), (method, path)
            assert "content" not in operation["responses"]["414"]  # gunicorn's text page, not JSON


# --- through gunicorn ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory, tokens):
    directory = tmp_path_factory.mktemp("edges")
    kit = provision(tokens, directory)
    service = Service.open(kit.load())
    try:
        open_election(service, 2)
    finally:
        service.close()
    server = ServeProcess(kit.config_path, directory / "serve.log").start()
    yield server
    server.stop()


def _raw(server: ServeProcess, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(200)) + b"\r\n", 431),
])
def test_gunicorns_own_error_pages_carry_the_security_headers(live, request_bytes, status):
    got, headers, _ = _raw(live, request_bytes)
    assert got == status
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name
    assert headers["Cache-Control"] == "no-store"


def _chunked(body: bytes) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000]) for i in range(0, len(body), 1000))
    return (f"POST /api/v1/elections/{ELECTION}/code-status HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() \
        + chunks + b"0\r\n\r\n"


def test_a_chunked_body_over_16_kib_is_413_and_a_small_one_is_read_whole(live):
    status, _, body = _raw(live, _chunked(b'{"code": "' + b"a" * 20000 + b'"}'))
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    status, _, body = _raw(live, _chunked(b'{"code": "' + b"a" * 3000 + b'"}'))
    assert status == 403 and json.loads(body)["error"] == "invalid_code"  # read whole, checked, refused
