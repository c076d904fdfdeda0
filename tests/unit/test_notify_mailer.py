"""What notify puts on the wire: read back by the `email` package's modern parser, as a mail client would."""

from __future__ import annotations

import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from services.notify import domain
from services.notify.mailer import Mailer
from services.notify.settings import NotifySettings
from shared.contract.vocabulary import Language

SUBJECT = "【MEDISO】ご相談を受け付けました（受付番号 MED-2026-000123）: 件名が長くても折り返して正しく読めること"
BODY = "山田 太郎 様\n\nMEDISO へのご相談を受け付けました。\n受付番号: MED-2026-000123\n\nDear applicant,\n"


def delivery(*, recipient: str = "applicant@example.jp", subject: str = SUBJECT) -> domain.Delivery:
    return domain.Delivery(
        id=uuid.uuid4(),
        hub="mediso",
        consultation_id=uuid.uuid4(),
        cause_event_id=uuid.uuid4(),
        correlation_id=uuid.uuid4(),
        template="acknowledgement",
        language=Language.JA,
        recipient=recipient,
        subject=subject,
        body=BODY,
    )


def mailer(mail_from: str) -> Mailer:
    return Mailer(NotifySettings.model_construct(mail_from=mail_from))


@pytest.mark.parametrize(
    "mail_from", ["MEDISO 相談窓口 <no-reply@mediso.example.jp>", "hubnet <no-reply@hubnet.example.jp>"]
)
def test_a_message_reads_back_as_written_in_japanese(mail_from: str) -> None:
    sent = delivery()
    raw = mailer(mail_from).compose(sent)
    assert isinstance(raw, bytes)
    assert raw.isascii(), "7-bit on the wire: encoded words and base64"
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == SUBJECT
    assert message.get_content() == BODY
    assert message["From"] == mail_from
    assert message["From"].addresses[0].addr_spec == mail_from.split("<")[1].rstrip(">"), "the address stays clear"
    assert message["To"] == "applicant@example.jp"
    assert message["Message-ID"] == f"<{sent.id}@hubnet>"
    assert message["X-Hubnet-Consultation"] == str(sent.consultation_id)
    assert message["Content-Language"] == "ja"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"


def test_an_english_subject_is_written_as_is() -> None:
    raw = mailer("hubnet <no-reply@hubnet.example.jp>").compose(delivery(subject="Your consultation was received"))
    assert isinstance(raw, bytes)
    assert b"\nSubject: Your consultation was received\n" in raw


@pytest.mark.parametrize(
    "changed", [{"recipient": "a@example.jp\r\nBcc: victim@example.jp"}, {"subject": "Hello\nBcc: victim@example.jp"}]
)
def test_a_line_break_in_a_header_is_refused_not_sent(changed: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="line break"):
        mailer("hubnet <no-reply@hubnet.example.jp>").compose(delivery(**changed))


def test_an_internationalised_address_gets_a_message_aiosmtplib_sends_with_smtputf8() -> None:
    message = mailer("MEDISO 相談窓口 <no-reply@mediso.example.jp>").compose(delivery(recipient="山田@例え.jp"))
    assert isinstance(message, EmailMessage)
    read = message_from_bytes(message.as_bytes(policy=policy.SMTPUTF8), policy=policy.default)
    assert read["To"] == "山田@例え.jp"
    assert read["Subject"] == SUBJECT
    assert read["From"] == "MEDISO 相談窓口 <no-reply@mediso.example.jp>"
    assert read["Content-Language"] == "ja"
