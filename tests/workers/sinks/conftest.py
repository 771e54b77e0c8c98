"""One HTTP stand-in for the whole package (reset for each test), SMTP servers per module."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support import free_port
from tests.workers.sinks.standins import (
    SMTP_PASSWORD,
    SMTP_USER,
    Authenticator,
    Certificate,
    SmtpStandIn,
    self_signed,
)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trust(certificate: Certificate, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the stand-in's certificate the one the client trusts (``SSL_CERT_FILE`` is read
    by ``ssl.create_default_context()`` each time it builds a context)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    return certificate.cert


def _serve(handler: SmtpStandIn, **kwargs: Any) -> Iterator[tuple[SmtpStandIn, int]]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[SmtpStandIn, int]]:
    """Plain SMTP, offering AUTH (not requiring it) without TLS."""
    authenticator = Authenticator(SMTP_USER, SMTP_PASSWORD)
    yield from _serve(SmtpStandIn(), authenticator=authenticator, auth_require_tls=False)


@pytest.fixture(scope="module")
def smtp_starttls_server(certificate: Certificate) -> Iterator[tuple[SmtpStandIn, int]]:
    """SMTP that requires STARTTLS before anything else, and a login after it."""
    yield from _serve(
        SmtpStandIn(),
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=Authenticator(SMTP_USER, SMTP_PASSWORD),
        auth_required=True,
    )


@pytest.fixture(scope="module")
def smtp_tls_server(certificate: Certificate) -> Iterator[tuple[SmtpStandIn, int]]:
    """SMTP over implicit TLS from the first byte (what port 465 speaks)."""
    yield from _serve(SmtpStandIn(), ssl_context=certificate.server_context())


@pytest.fixture
def smtp(smtp_server: tuple[SmtpStandIn, int]) -> tuple[SmtpStandIn, int]:
    smtp_server[0].reset()
    return smtp_server


@pytest.fixture
def smtp_starttls(smtp_starttls_server: tuple[SmtpStandIn, int]) -> tuple[SmtpStandIn, int]:
    smtp_starttls_server[0].reset()
    return smtp_starttls_server


@pytest.fixture
def smtp_tls(smtp_tls_server: tuple[SmtpStandIn, int]) -> tuple[SmtpStandIn, int]:
    smtp_tls_server[0].reset()
    return smtp_tls_server
