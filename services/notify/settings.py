"""Notify's knobs (env: HUBNET_<FIELD>)."""

from services.notify import SERVICE
from shared.settings import CommonSettings


class NotifySettings(CommonSettings):
    notify_port: int = SERVICE.default_port
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    # The connection stays open between messages; closed once idle this long.
    smtp_keepalive_s: float = 30.0
    mail_from: str = "hubnet <no-reply@hubnet.example.jp>"
    # false: this replica only queues deliveries from events and sends nothing (queueing and sending
    # scaled apart, or a consumer measured on its own); at least one replica must send.
    delivery_sending: bool = True
    delivery_poll_interval_s: float = 0.2
    # Retries of a failing delivery: exponential backoff with jitter from base to cap, until the deadline;
    # then it is given up with a DeliveryFailed event. An SMTP 5xx gives up at once.
    delivery_retry_base_s: float = 2.0
    delivery_retry_cap_s: float = 600.0
    delivery_deadline_s: float = 48 * 3600.0
    # A delivery in `sending` longer than this is presumed orphaned by a crash and sent again; it must
    # exceed the time one send can take (smtp_timeout_s bounds each SMTP step).
    delivery_lease_s: float = 60.0
    # Deliveries claimed at once, then sent one at a time (each recorded before the next); one not begun
    # within half the lease is left for its lease to lapse, and each send is cut off at half the lease.
    delivery_claim_size: int = 8
    # Acknowledgements one address may receive per hour; more are recorded as suppressed, not sent.
    acknowledgements_per_recipient: int = 5

    @property
    def http_port(self) -> int:
        return self.notify_port
