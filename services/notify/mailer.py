"""Sends one email over SMTP (aiosmtplib). The Message-ID is the delivery id, so a resend after a
crash between sending and recording is recognisable as the same message."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from services.notify import domain
from services.notify.settings import NotifySettings


def is_permanent(error: BaseException) -> bool:
    """An SMTP 5xx reply (or every recipient refused with one) will not change on retry; anything else
    (4xx, timeouts, refused or dropped connections) may."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(r.code >= 500 for r in error.recipients)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 500 <= error.code < 600
    return False


def describe(error: BaseException) -> str:
    """The error's type and SMTP code: never the reply text, which may echo the address."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return f"SMTPRecipientsRefused {','.join(str(r.code) for r in error.recipients)}"
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{type(error).__name__} {error.code}"
    return type(error).__name__


class Mailer:
    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings

    def compose(self, delivery: domain.Delivery) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = delivery.recipient
        message["Subject"] = delivery.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{delivery.id}@hubnet>"
        message["X-Hubnet-Consultation"] = str(delivery.consultation_id)
        message["X-Hubnet-Correlation"] = str(delivery.correlation_id)
        message.set_content(delivery.body, charset="utf-8")
        message["Content-Language"] = delivery.language.value  # after set_content, which resets Content-*
        return message

    async def send(self, delivery: domain.Delivery) -> None:
        settings = self._settings
        await aiosmtplib.send(
            self.compose(delivery),
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_s,
        )
