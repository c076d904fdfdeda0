"""Notify's knobs (env: HUBNET_<FIELD>)."""

from shared.settings import CommonSettings


class NotifySettings(CommonSettings):
    notify_port: int = 8003
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    mail_from: str = "hubnet <no-reply@hubnet.example.jp>"
    delivery_poll_interval_s: float = 0.2
    delivery_max_attempts: int = 8

    @property
    def http_port(self) -> int:
        return self.notify_port
