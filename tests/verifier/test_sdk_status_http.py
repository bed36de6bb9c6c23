"""Status lists over HTTP: :meth:`StatusSource.http` and :func:`http_fetch` against real local servers.

Servers are ``http.server`` in a thread on loopback, port 0 (plain HTTP, which ``http_fetch`` allows on
loopback only) and one HTTPS server with a throw-away certificate trusted through ``SSL_CERT_FILE``,
so the production path (HTTPS with certificate verification) runs too. Nothing leaves the machine.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from credentials.status_list import MEDIA_TYPE
from elicence.scenario import set_status
from verifier.sdk import StatusSource, http_fetch

NOW = 1_790_000_000
DAY = 86400
IDX = 7


class _Handler(BaseHTTPRequestHandler):
    server: "LocalServer"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.requests.append((self.path, self.headers.get("Accept")))
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        status, body, headers = route
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LocalServer(ThreadingHTTPServer):
    """Serves ``routes``: path -> (status, body, headers); records (path, Accept) of each request."""

    daemon_threads = True

    def __init__(self, host: str, *, tls: ssl.SSLContext | None = None) -> None:
        super().__init__((host, 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.base = f"{'https' if tls else 'http'}://{host}:{self.server_address[1]}"

    def serve(self, path: str, body: bytes | str, *, status: int = 200, **headers: str) -> str:
        self.routes[path] = (status, body.encode("ascii") if isinstance(body, str) else body, headers)
        return self.base + path


def _running(server: LocalServer) -> Iterator[LocalServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    yield from _running(LocalServer("127.0.0.1"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _credential_with_status_at(kit, uri: str) -> str:
    """A licence whose status list lives at ``uri`` (issue_vc writes only https URIs, so by hand)."""
    payload = {
        "iss": kit.world.issuer_id,
        "iat": NOW,
        "exp": NOW + 365 * DAY,
        "vct": kit.vct,
        "status": {"status_list": {"idx": IDX, "uri": uri}},
        **kit.claims,
    }
    return kit.issue_raw(payload)


def test_status_list_is_fetched_from_the_credentials_uri_and_cached_for_its_ttl(kit, clock, server):
    uri = server.serve("/status/1", kit.status_token(sub=server.base + "/status/1"))
    credential = _credential_with_status_at(kit, uri)
    verifier = kit.verifier(clock=clock, status=StatusSource.http(clock=clock))
    assert verifier.verify(kit.present(credential)).status == "valid"
    assert server.requests == [("/status/1", MEDIA_TYPE)]
    clock.set(NOW + 100)
    assert verifier.verify(kit.present(credential, now=NOW + 100)).status_list_age == 100
    assert len(server.requests) == 1
    revoked = set_status(kit.world, IDX, 1, now=NOW + 150)
    server.serve("/status/1", kit.status_token(revoked.statuses, sub=uri, iat=NOW + 150))
    clock.set(NOW + 300)
    kit.fails(verifier, kit.present(credential, now=NOW + 300), "revoked", "status")
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_error_is_status_unavailable(kit, clock, server, status):
    uri = server.serve("/status/1", b"", status=status)
    verifier = kit.verifier(clock=clock, status=StatusSource.http(clock=clock))
    if status == 404:
        uri = server.base + "/status/missing"
    kit.fails(verifier, kit.present(_credential_with_status_at(kit, uri)), "status_unavailable", "status")


def test_connection_refused_is_status_unavailable(kit, clock):
    uri = f"http://127.0.0.1:{_closed_port()}/status/1"
    verifier = kit.verifier(clock=clock, status=StatusSource.http(clock=clock, timeout=2))
    kit.fails(verifier, kit.present(_credential_with_status_at(kit, uri)), "status_unavailable", "status")


def test_body_over_the_size_bound_is_refused(kit, clock, server):
    # The default bound is 8 MiB: one byte more is refused before any parsing.
    uri = server.serve("/status/1", b"e" * (8 * 1024 * 1024 + 1))
    verifier = kit.verifier(clock=clock, status=StatusSource.http(clock=clock))
    error = kit.fails(verifier, kit.present(_credential_with_status_at(kit, uri)), "status_unavailable", "status")
    assert "8388608 bytes" in error.detail


def test_http_fetch_reads_up_to_max_bytes_and_refuses_more(server):
    at_bound = server.serve("/a", b"x" * 1000)
    over = server.serve("/b", b"x" * 1001)
    assert http_fetch(at_bound, max_bytes=1000) == b"x" * 1000
    with pytest.raises(ValueError, match="more than 1000 bytes"):
        http_fetch(over, max_bytes=1000)


@pytest.mark.parametrize(
    "url",
    [
        "http://scjgj.sh.gov.cn/status/1",
        "ftp://127.0.0.1/status/1",
        "file:///etc/passwd",
        "HTTP://example.com/",
        "http://127.0.0.1.attacker.example/status/1",
        "http://localhost.attacker.example/status/1",
        "http://localhost@attacker.example/status/1",
        "http://127.0.0.1:80@attacker.example/status/1",
        "https:///status/1",
    ],
)
def test_http_fetch_refuses_urls_that_are_not_https_or_loopback_http(url):
    with pytest.raises(ValueError, match="refusing"):
        http_fetch(url, timeout=1)


def test_http_fetch_follows_a_redirect_within_the_rules(server):
    target = server.serve("/status/current", b"token")
    start = server.serve("/status/1", b"", status=302, Location=target)
    assert http_fetch(start) == b"token"


def test_http_fetch_refuses_a_redirect_to_a_url_it_would_refuse(server):
    # A loopback server (allowed over http) redirects to plain http on another host: the https rule
    # must hold for every hop, not only the first. The other host is 127.0.0.2 (a loopback address
    # that http_fetch does not treat as loopback), so nothing leaves the machine either way.
    other = LocalServer("127.0.0.2")
    for running in _running(other):
        elsewhere = running.serve("/status/1", b"served over plain http elsewhere")
        with pytest.raises(ValueError, match="refusing"):
            http_fetch(elsewhere)
        start = server.serve("/status/1", b"", status=302, Location=elsewhere)
        with pytest.raises(ValueError, match="refusing"):
            http_fetch(start)
        assert running.requests == []


# ------------------------------------------------------------------------------------------------ HTTPS


def _self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365 * 30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_status_list_over_https_with_certificate_verification(kit, clock, tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    for server in _running(LocalServer("localhost", tls=tls)):
        uri = server.serve("/status/1", kit.status_token(sub=server.base + "/status/1"))
        # A credential names an https URI, which issue_vc checks: the production path.
        credential = kit.issue(status=(IDX, uri))
        # Not trusted yet: the certificate is checked, so the fetch fails closed.
        untrusting = kit.verifier(clock=clock, status=StatusSource.http(clock=clock))
        kit.fails(untrusting, kit.present(credential), "status_unavailable", "status")
        monkeypatch.setenv("SSL_CERT_FILE", cert)
        verifier = kit.verifier(clock=clock, status=StatusSource.http(clock=clock))
        assert verifier.verify(kit.present(credential)).status == "valid"
        assert server.requests[-1] == ("/status/1", MEDIA_TYPE)
