"""Sends email over SMTP (aiosmtplib), one message at a time on a connection kept open between them.
The Message-ID is the delivery id, so a resend after a crash between sending and recording is
recognisable as the same message."""

from __future__ import annotations

import asyncio
import contextlib
import time
from email.header import Header
from email.message import EmailMessage
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from typing import cast

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
    """One SMTP connection, opened at the first message and kept for the next ones: a message then costs
    its MAIL, RCPT and DATA exchanges, not a connection, a greeting and QUIT as well. The connection is
    closed after any failure (the next message starts on a fresh one) and once idle for
    `smtp_keepalive_s`, well inside the five minutes a server waits for a client (RFC 5321, 4.5.3.2)."""

    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings
        name, self._sender = parseaddr(settings.mail_from)  # the envelope's sender: the address alone
        self._from = formataddr((name, self._sender), charset="utf-8")  # a name in another script encoded
        self._smtp: aiosmtplib.SMTP | None = None
        self._last_used = 0.0

    def compose(self, delivery: domain.Delivery) -> bytes | EmailMessage:
        """The message: its bytes as they go on the wire, a UTF-8 text body in base64 and the subject and
        the sender's name as RFC 2047 encoded words, built with the `email` package's classic classes,
        which take each header as given (the `EmailMessage` API parses and refolds every header: 590 µs a
        message against 150, `timeit`), so a line break in a header value is refused here. To an
        internationalised address, an `EmailMessage`, which aiosmtplib sends with SMTPUTF8."""
        headers = {
            "From": self._from,
            "To": delivery.recipient,
            "Subject": delivery.subject,
            "Date": formatdate(localtime=False),
            "Message-ID": f"<{delivery.id}@hubnet>",
            "X-Hubnet-Consultation": str(delivery.consultation_id),
            "X-Hubnet-Correlation": str(delivery.correlation_id),
        }
        if broken := [name for name, value in headers.items() if "\r" in value or "\n" in value]:
            raise ValueError(f"a line break in the {', '.join(broken)} header")
        if not delivery.recipient.isascii():
            international = EmailMessage()
            for name, value in headers.items():
                international[name] = value
            international.set_content(delivery.body, charset="utf-8")
            international["Content-Language"] = delivery.language.value  # after set_content, which resets Content-*
            return international
        message = MIMEText(delivery.body, "plain", "utf-8")
        for name, value in headers.items():
            # (typeshed allows only str; the classic API folds a `Header` of encoded words itself)
            message[name] = cast(str, Header(value, "utf-8")) if name == "Subject" and not value.isascii() else value
        message["Content-Language"] = delivery.language.value
        return message.as_bytes()

    async def send(self, delivery: domain.Delivery) -> None:
        message = self.compose(delivery)
        smtp = await self._connection()
        try:
            if isinstance(message, bytes):
                await smtp.sendmail(self._sender, [delivery.recipient], message)
            else:
                await smtp.send_message(message)
        except BaseException:
            # Refused, timed out, dropped or cancelled: whatever state the session is in, the next
            # message gets a new one.
            self._discard()
            raise
        self._last_used = time.monotonic()

    async def close_if_idle(self) -> None:
        if self._smtp is not None and time.monotonic() - self._last_used >= self._settings.smtp_keepalive_s:
            await self.close()

    async def close(self) -> None:
        """QUIT, bounded by the SMTP timeout; the connection is dropped whatever the answer."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        if smtp.is_connected:
            with contextlib.suppress(Exception):  # a server that does not answer QUIT is closed on all the same
                await asyncio.wait_for(smtp.quit(), timeout=self._settings.smtp_timeout_s)
        smtp.close()

    async def _connection(self) -> aiosmtplib.SMTP:
        await self.close_if_idle()
        if self._smtp is not None and not self._smtp.is_connected:  # the server closed it meanwhile
            self._discard()
        if self._smtp is None:
            settings = self._settings
            smtp = aiosmtplib.SMTP(
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                start_tls=settings.smtp_starttls,
                timeout=settings.smtp_timeout_s,
            )
            await smtp.connect()  # greeting, EHLO, STARTTLS and AUTH when configured
            self._smtp = smtp
            self._last_used = time.monotonic()
        return self._smtp

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()
