"""The documented production set-up: nginx (Debian's package) in front of ``hsm-signer serve``.

Runs ``deploy/nginx/hsm-signer.conf`` itself, with only its ports, certificate paths and
upstream address substituted: TLS, redirects, security headers and HSTS through the proxy,
a receipt that links to the public URL, a client's forged X-Forwarded-For ignored (the
rate limits see the address nginx saw), 413 from nginx for big bodies, and 100 slow TLS
connections held for 30 s while 20 voters (each from its own loopback address) cast.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import require
from hsm_signer import codes as codes_mod
from hsm_signer.log.receipt import Receipt
from hsm_signer.service import Service
from hsm_signer.verify import verify_receipt
from hsm_signer.web.security import HSTS, SECURITY_HEADERS

from servicekit import DEMO_ELECTION, open_election, provision
from test_slow_clients import HOLD, SLOW, VOTERS, Slowloris
from test_web_live import ServeProcess, free_port

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "deploy" / "nginx" / "hsm-signer.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NAME = "vote.example.org"
ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["alice"], "board": ["frank"]}


def _certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{SITE.name} no longer has exactly one {old!r}: update this test"
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, directory: Path, upstream_port: int):
        self.directory = directory
        self.http_port, self.https_port = free_port(), free_port()
        cert, key = _certificate(directory)
        site = _substitute(SITE.read_text(), {
            "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream_port};",
            "listen 80;": f"listen 127.0.0.1:{self.http_port};",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{self.https_port} ssl http2;",
            f"/etc/letsencrypt/live/{NAME}/fullchain.pem": str(cert),
            f"/etc/letsencrypt/live/{NAME}/privkey.pem": str(key),
            "/var/log/nginx/hsm-signer.access.log": str(directory / "access.log"),
        })
        (directory / "site.conf").write_text(site)
        temp = "".join(f"    {kind}_temp_path {directory / kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = directory / "nginx.conf"
        self.conf.write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} info;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n    include /etc/nginx/mime.types;\n{temp}    include {directory / 'site.conf'};\n}}\n")
        self.process: subprocess.Popen | None = None

    def check(self) -> subprocess.CompletedProcess:
        return subprocess.run([NGINX, "-t", "-c", str(self.conf), "-p", str(self.directory)],
                              capture_output=True, text=True, timeout=30)

    def start(self) -> "Nginx":
        self.process = subprocess.Popen([NGINX, "-c", str(self.conf), "-p", str(self.directory)],
                                        start_new_session=True, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError((self.directory / "error.log").read_text())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def https(port: int, method: str, path: str, body: object | None = None, *, headers: dict | None = None,
          source: str = "127.0.0.1", raw_body: bytes | None = None, timeout: float = 30):
    """(status, headers, body) over TLS to nginx, from the loopback address ``source``."""
    import http.client
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=_tls(),
                                             source_address=(source, 0))
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Host": NAME, **({"Content-Type": "application/json"} if data else {}), **(headers or {})}
    try:
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def stack(tokens, tmp_path_factory):
    require(os.path.exists(NGINX), "nginx is not installed (apt-get install nginx)")
    directory = tmp_path_factory.mktemp("nginx")
    kit = provision(tokens, directory)
    text = kit.config_path.read_text()
    server_table = f'behind_tls = true\npublic_url = "https://{NAME}"\n'
    kit.config_path.write_text(text.replace("[server]\n", "[server]\n" + server_table) if "[server]" in text
                               else text + "\n[server]\n" + server_table)
    service = Service.open(kit.load())
    try:
        codes = open_election(service, VOTERS + 10)
    finally:
        service.close()
    serve = ServeProcess(kit.config_path, directory / "serve.log", "--threads", "64",
                         HSM_SIGNER_WEB_PROXY_FIX_X_FOR="1").start()
    nginx = Nginx(directory, serve.port)
    try:
        checked = nginx.check()
        assert checked.returncode == 0, checked.stderr
        nginx.start()
        yield kit, serve, nginx, codes
    finally:
        nginx.stop()
        serve.stop()


def test_through_nginx_tls_redirects_headers_and_a_receipt_linking_to_the_public_url(stack):
    kit, _, nginx, codes = stack
    status, headers, _ = https(nginx.https_port, "GET", "/")
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=") and "default-src 'self'" in \
        headers["Content-Security-Policy"]
    assert "nginx/" not in headers.get("Server", "")  # server_tokens off
    with socket.create_connection(("127.0.0.1", nginx.http_port), timeout=10) as plain:
        plain.sendall(b"GET /board/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        answer = plain.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 301") and f"Location: https://{NAME}/board/\r\n" in answer

    status, _, body = https(nginx.https_port, "POST", f"/api/v1/elections/{ELECTION}/ballots",
                            {"code": codes[-1], "selections": VOTE})
    assert status == 201, body
    ballot_id = verify_receipt(Receipt.from_json(body), _bundle(kit)).ballot_id
    status, _, page = https(nginx.https_port, "GET", f"/elections/{ELECTION}/receipts/{ballot_id}",
                            headers={"Host": "evil.example"})
    links = re.findall(rb'https?://[^"\s<]+/verify\?', page)
    assert status == 200 and links and set(links) == {f"https://{NAME}/verify?".encode()}


def test_a_forged_x_forwarded_for_does_not_reach_the_service(stack):
    _, _, nginx, _ = stack
    statuses = []
    for n in range(12):  # each claims another address; nginx replaces the header with its peer's
        wrong = codes_mod.display(codes_mod.new_code())
        statuses.append(https(nginx.https_port, "POST", f"/api/v1/elections/{ELECTION}/code-status",
                              {"code": wrong}, headers={"X-Forwarded-For": f"203.0.113.{n}"},
                              source="127.0.0.9")[0])
    assert statuses[:10] == [403] * 10 and 429 in statuses[10:]  # one client: 127.0.0.9


def test_nginx_refuses_a_body_over_16_kib_with_the_security_headers(stack):
    _, _, nginx, _ = stack
    status, headers, _ = https(nginx.https_port, "POST", f"/api/v1/elections/{ELECTION}/code-status",
                               raw_body=b'{"code": "' + b"a" * 20000 + b'"}', source="127.0.0.10")
    assert status == 413
    for name, value in {**SECURITY_HEADERS, "Strict-Transport-Security": HSTS}.items():
        assert headers.get(name) == value, name


def test_each_security_header_is_sent_once_with_the_services_value(stack):
    _, _, nginx, _ = stack
    import http.client
    connection = http.client.HTTPSConnection("127.0.0.1", nginx.https_port, timeout=30, context=_tls())
    try:
        connection.request("GET", "/board/", headers={"Host": NAME})
        response = connection.getresponse()
        response.read()
        sent = response.getheaders()
    finally:
        connection.close()
    assert response.status == 200
    for name, value in {**SECURITY_HEADERS, "Strict-Transport-Security": HSTS}.items():
        assert [v for k, v in sent if k.lower() == name.lower()] == [value], name


def test_100_slow_tls_connections_held_30_s_through_nginx_do_not_stop_20_voters(stack):
    _, _, nginx, codes = stack
    context = _tls()
    attack = Slowloris(nginx.https_port, SLOW, connect=lambda: context.wrap_socket(
        socket.create_connection(("127.0.0.1", nginx.https_port), timeout=5), server_hostname=NAME))
    attack.thread.start()
    try:
        time.sleep(2.0)
        started = time.monotonic()

        def vote(n: int):
            began = time.monotonic()
            status, _, body = https(nginx.https_port, "POST", f"/api/v1/elections/{ELECTION}/ballots",
                                    {"code": codes[n], "selections": VOTE}, source=f"127.0.1.{n + 1}",
                                    timeout=HOLD)
            return status, body, time.monotonic() - began

        with ThreadPoolExecutor(VOTERS) as pool:
            results = list(pool.map(vote, range(VOTERS)))
        voting = time.monotonic() - started
        attack.stop.wait(max(0.0, HOLD - (time.monotonic() - started) - 2.0))
    finally:
        attack.stop.set()
        attack.thread.join(timeout=30)
    for status, body, _ in results:
        assert status == 201, body
    print(f"through nginx: {VOTERS} receipts in {voting:.1f} s (slowest {max(r[2] for r in results):.1f} s) "
          f"beside {SLOW} slow TLS connections")


def _bundle(kit):
    from hsm_signer.bundle import KeyBundle
    return KeyBundle.load(kit.directory / "keys")
