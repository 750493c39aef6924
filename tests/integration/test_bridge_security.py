"""The bridge's transport and throttling: HTTPS with a given certificate, rate-limited controls.

TLS is tested over a real socket with a self-signed certificate made here (cryptography): the
client trusts only that certificate, so a successful request proves the bridge served it. Rate
limits are tested on the control endpoints with real audit rows in PostgreSQL: a refused request
must not have changed anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select

from bridge.app import create_app
from bridge.server import BackgroundServer
from bridge.settings import uvicorn_ssl_options
from common.db.models import AuditLog
from common.db.session import make_engine
from config import BridgeSettings, load_settings

pytestmark = pytest.mark.integration
OPERATOR = "rate-limit-operator-token"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 and its key (PEM files), valid for one day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "btcmeta-bridge-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "bridge.crt", folder / "bridge.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _settings(**overrides: object) -> BridgeSettings:
    values: dict[str, object] = {
        "operator_tokens": [SecretStr(f"olga:{OPERATOR}")],
        "stream_enabled": False,
        "flatten_on_trip": False,  # never publish to the developer's broker from here
    }
    return BridgeSettings(**(values | overrides))  # type: ignore[arg-type]


def _served_certificate_sha256(url: str) -> str:
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only to read what is served
    with socket.create_connection((host, int(port)), timeout=10) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    return hashlib.sha256(der or b"").hexdigest()


def test_bridge_serves_https_with_the_given_certificate(database_url: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    bridge = _settings(tls_certfile=str(cert), tls_keyfile=str(key))
    app = create_app(load_settings(database_url=database_url), bridge)
    with BackgroundServer(app, ssl_options=uvicorn_ssl_options(bridge)) as url:
        assert url.startswith("https://")
        trusting = ssl.create_default_context(cafile=str(cert))  # trusts this certificate only
        with httpx.Client(verify=trusting, timeout=10) as client:
            health = client.get(f"{url}/health")
            denied = client.get(f"{url}/api/status")  # the API itself, over TLS: auth still applies
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert denied.status_code == 401
        served = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER)
        assert _served_certificate_sha256(url) == hashlib.sha256(served).hexdigest()
        with httpx.Client(timeout=10) as system_trust, pytest.raises(httpx.ConnectError):
            system_trust.get(f"{url}/health")  # an unknown self-signed certificate is not trusted
        plain = url.replace("https://", "http://")
        with httpx.Client(timeout=10) as client, pytest.raises(httpx.HTTPError):
            client.get(f"{plain}/health")  # no plain-HTTP answer on the TLS port


def test_tls_settings_come_in_pairs(tmp_path: Path) -> None:
    cert, _key = _self_signed(tmp_path)
    with pytest.raises(ValidationError, match="both"):
        _settings(tls_certfile=str(cert))
    with pytest.raises(ValidationError, match="not found"):
        _settings(tls_certfile=str(cert), tls_keyfile=str(tmp_path / "missing.key"))
    assert uvicorn_ssl_options(_settings()) == {}


@pytest.fixture
def limited(database_url: str) -> Iterator[tuple[TestClient, TestClient]]:
    """Two clients (two addresses) of one bridge allowing bursts of 3, then one request per 10 s."""
    app = create_app(
        load_settings(database_url=database_url), _settings(control_rate_per_min=6, control_burst=3)
    )
    with (
        TestClient(app, client=("10.0.0.1", 40001)) as first,
        TestClient(app, client=("10.0.0.2", 40002)) as second,
    ):
        yield first, second


def _audit_rows(database_url: str, ns: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(AuditLog.namespace == ns)) or 0)
    finally:
        engine.dispose()


def test_control_endpoints_are_rate_limited_per_client(
    limited: tuple[TestClient, TestClient], database_url: str
) -> None:
    first, second = limited
    ns = "ratelimit-test"
    auth = {"Authorization": f"Bearer {OPERATOR}"}

    def pause(client: TestClient, headers: dict[str, str] = auth) -> httpx.Response:
        return client.post(
            "/api/control/trading/pause", params={"namespace": ns}, headers=headers, json={"reason": "t"}
        )

    assert [pause(first).status_code for _ in range(3)] == [200, 200, 200]
    refused = pause(first)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 10 and "retry" in refused.json()["detail"]
    # counted before auth: a token guesser from that address is throttled as well
    assert pause(first, {"Authorization": "Bearer not-a-valid-token"}).status_code == 429
    assert _audit_rows(database_url, ns) == 3  # the refused requests changed nothing
    # reads are not limited, and another client has its own bucket
    assert first.get("/health").status_code == 200
    assert first.get("/api/status", params={"namespace": ns}, headers=auth).status_code == 200
    assert pause(second).status_code == 200
    assert _audit_rows(database_url, ns) == 4
