"""The email sink against a real SMTP server (aiosmtpd): plain, STARTTLS and implicit TLS."""

import base64
import email
import email.policy
import logging
from email.message import EmailMessage, MIMEPart
from email.utils import parsedate_to_datetime

import pytest
from pydantic import SecretStr

from config.schema import Action, EmailAction, SmtpServer
from tests.workers.sinks.standins import (
    SMTP_PASSWORD,
    SMTP_USER,
    SmtpStandIn,
    assert_no_secret,
    failure,
    run,
)
from workers.sinks import DeliveryError
from workers.sinks import email as email_sink
from workers.sinks.registry import send as deliver

CONTENT = {
    "subject": "warehouse-load failed",
    "text": "The flow warehouse-load failed.\nError: disk full ✗\n",
    "html": "<p>The flow <b>warehouse-load</b> failed.</p>",
}
Smtp = tuple[SmtpStandIn, int]


def action(port: int, *to: str, **smtp: object) -> EmailAction:
    server = SmtpServer.model_validate({"host": "127.0.0.1", "port": port, "timeout": 2, **smtp})
    recipients = list(to or ["data@example.com"])
    return EmailAction.model_validate(
        {"to": recipients, "from": "flowhooks@example.com", "smtp": server}
    )


def login() -> dict[str, object]:
    return {"username": SMTP_USER, "password": SecretStr(SMTP_PASSWORD)}


def send(mail: EmailAction, content: dict[str, str] = CONTENT, delivery_id: str = "d1") -> None:
    run(lambda client: email_sink.send(mail, content, client=client, delivery_id=delivery_id))


def send_failure(mail: EmailAction) -> DeliveryError:
    return failure(lambda client: email_sink.send(mail, CONTENT, client=client, delivery_id="d1"))


def received(handler: SmtpStandIn) -> EmailMessage:
    [envelope] = handler.envelopes
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text(part: MIMEPart) -> str:
    """A text part's content with the wire's CRLF line ends read back as newlines."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_a_multipart_alternative_mail_text_first_html_last(smtp: Smtp) -> None:
    handler, port = smtp
    send(action(port, "data@example.com", "ops@example.com"), delivery_id="evt-1_r0_mail")
    [envelope] = handler.envelopes
    assert envelope.mail_from == "flowhooks@example.com"
    assert envelope.rcpt_tos == ["data@example.com", "ops@example.com"]
    message = received(handler)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert text(parts[0]) == CONTENT["text"]
    assert parts[1].get_content().strip() == CONTENT["html"]
    assert message["Subject"] == "warehouse-load failed"
    assert message["From"] == "flowhooks@example.com"
    assert message["To"] == "data@example.com, ops@example.com"
    assert message["Message-ID"] == "<evt-1_r0_mail@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(message["Date"]).utcoffset() is not None


def test_the_same_delivery_is_the_same_message(smtp: Smtp) -> None:
    handler, port = smtp
    send(action(port), delivery_id="evt-1_r0_mail")
    send(action(port), delivery_id="evt-1_r0_mail")
    send(action(port), delivery_id="odd id with spaces <and> @")
    ids = [
        email.message_from_bytes(e.content, policy=email.policy.default)["Message-ID"]
        for e in handler.envelopes
        if isinstance(e.content, bytes)
    ]
    assert ids[0] == ids[1] != ids[2]
    assert ids[2].startswith("<") and ids[2].endswith("@example.com>") and " " not in ids[2]


def test_text_only_without_html(smtp: Smtp) -> None:
    handler, port = smtp
    send(action(port), {**CONTENT, "html": ""})
    message = received(handler)
    assert message.get_content_type() == "text/plain"
    assert text(message) == CONTENT["text"]


def test_header_injection_is_inert(smtp: Smtp) -> None:
    handler, port = smtp
    content = {
        "subject": "failed\r\nBcc: victim@evil.example\r\n\r\nforged body\u2028X-Evil: 1\x00",
        "text": "line\r\n.\r\nMAIL FROM:<evil@evil.example>\r\n",
        "html": "<p>\r\nBcc: victim@evil.example</p>",
    }
    send(action(port), content)
    [envelope] = handler.envelopes
    assert envelope.rcpt_tos == ["data@example.com"]
    message = received(handler)
    assert message["Subject"] == "failed Bcc: victim@evil.example forged body X-Evil: 1"
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert text(next(message.iter_parts())) == "line\n.\nMAIL FROM:<evil@evil.example>\n"


def test_a_long_subject_is_cut(smtp: Smtp) -> None:
    handler, port = smtp
    send(action(port), {**CONTENT, "subject": "x" * 5000})
    subject = received(handler)["Subject"]
    assert len(subject) == 500 and subject.endswith("…")


def test_login_over_plain_smtp(smtp: Smtp) -> None:
    handler, port = smtp
    send(action(port, **login()))
    assert len(handler.envelopes) == 1


def test_a_refused_login_is_permanent(smtp: Smtp) -> None:
    handler, port = smtp
    error = send_failure(action(port, username=SMTP_USER, password=SecretStr("wrong")))
    assert (error.retryable, error.status) == (False, 535)
    assert not handler.envelopes


@pytest.mark.parametrize(
    ("reply", "retryable", "status"),
    [
        ("550 5.1.1 no such user", False, 550),
        ("553 5.1.3 bad address", False, 553),
        ("450 4.2.1 mailbox busy", True, 450),
        ("451 4.3.0 try again later", True, 451),
    ],
)
def test_recipient_refusals(smtp: Smtp, reply: str, retryable: bool, status: int) -> None:
    handler, port = smtp
    handler.rcpt_reply = {"data@example.com": reply}
    error = send_failure(action(port))
    assert (error.retryable, error.status) == (retryable, status)
    assert reply.split(" ", 2)[2] not in str(error)  # the server's words are not quoted


@pytest.mark.parametrize(
    ("reply", "retryable", "status"),
    [("554 5.6.0 message refused", False, 554), ("452 4.3.1 out of storage", True, 452)],
)
def test_data_refusals(smtp: Smtp, reply: str, retryable: bool, status: int) -> None:
    handler, port = smtp
    handler.data_reply = reply
    error = send_failure(action(port))
    assert (error.retryable, error.status) == (retryable, status)


def test_some_recipients_refused_is_delivered_and_logged(
    smtp: Smtp, caplog: pytest.LogCaptureFixture
) -> None:
    handler, port = smtp
    handler.rcpt_reply = {"gone@example.com": "550 5.1.1 no such user"}
    send(action(port, "data@example.com", "gone@example.com"))
    assert handler.envelopes[0].rcpt_tos == ["data@example.com"]
    [warning] = [r for r in caplog.records if r.name == "flowhooks.sinks.email"]
    assert warning.getMessage() == "recipients refused: gone@example.com (550)"


def test_connection_refused_and_silence_are_retryable(closed_port: int, silent_port: int) -> None:
    refused = send_failure(action(closed_port))
    assert (refused.retryable, refused.reason) == (True, "ConnectionRefusedError")
    silent = send_failure(action(silent_port, timeout=0.2))
    assert (silent.retryable, silent.reason) == (True, "SMTPServerDisconnected")


def test_starttls_missing_on_the_server_is_permanent(smtp: Smtp) -> None:
    handler, port = smtp
    error = send_failure(action(port, starttls=True))
    assert not error.retryable
    assert not handler.envelopes


def test_starttls_then_login(smtp_starttls: Smtp, trust: object) -> None:
    handler, port = smtp_starttls
    send(action(port, starttls=True, **login()))  # the server refuses mail before both
    assert len(handler.envelopes) == 1


def test_starttls_verifies_the_certificate(smtp_starttls: Smtp) -> None:
    handler, port = smtp_starttls
    error = send_failure(action(port, starttls=True, **login()))
    assert (error.retryable, error.reason) == (True, "SSLCertVerificationError")
    assert not handler.envelopes


def test_implicit_tls(smtp_tls: Smtp, trust: object) -> None:
    handler, port = smtp_tls
    send(action(port, tls=True))
    assert received(handler)["Subject"] == CONTENT["subject"]


def test_no_failure_reveals_the_password(
    smtp: Smtp,
    smtp_starttls: Smtp,
    closed_port: int,
    silent_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    handler, port = smtp
    plain = base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode()
    secrets = [SMTP_PASSWORD, plain, "wrong-Pa55word-Zt6"]
    send(action(port, **login()))
    errors = [send_failure(action(port, username=SMTP_USER, password=SecretStr(secrets[2])))]
    handler.rcpt_reply = {"data@example.com": f"550 5.1.1 {SMTP_PASSWORD}"}
    errors.append(send_failure(action(port, **login())))
    handler.rcpt_reply = {}
    handler.data_reply = f"451 4.3.0 {SMTP_PASSWORD}"
    errors.append(send_failure(action(port, **login())))
    errors.append(send_failure(action(closed_port, **login())))
    errors.append(send_failure(action(silent_port, timeout=0.2, **login())))
    errors.append(send_failure(action(port, starttls=True, **login())))
    errors.append(send_failure(action(smtp_starttls[1], starttls=True, **login())))
    errors.append(send_failure(action(smtp_starttls[1], tls=True, **login())))
    for error in errors:
        assert_no_secret(error, caplog.records, secrets)


def test_dispatch_by_action(smtp: Smtp) -> None:
    handler, port = smtp
    mail = Action(email=action(port))
    assert run(lambda client: deliver(mail, CONTENT, client=client, delivery_id="d")) is None
    assert received(handler)["Subject"] == CONTENT["subject"]
