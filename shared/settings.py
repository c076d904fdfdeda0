"""Settings every service shares; each service adds its own knobs in its settings.py (env prefix HUBNET_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract.topics import CONSULTATIONS_PATTERN


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUBNET_", extra="ignore", frozen=True)

    database_url: str = "postgresql+asyncpg://hubnet:hubnet@127.0.0.1:15432/hubnet"
    database_pool_size: int = 10

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_request_timeout_ms: int = 10_000
    # A pattern subscription sees a new hub's topic at the next metadata refresh.
    kafka_metadata_max_age_ms: int = 30_000
    consultation_topic_pattern: str = CONSULTATIONS_PATTERN
    consumer_group_suffix: str = ""

    # Staff tokens are EdDSA: the services hold only the issuer's Ed25519 public key (PEM), given inline or
    # as a file (a mounted secret); shared.auth.verification_key refuses a missing, malformed, weak or
    # committed one at start. "local" (set by the local stack) alone accepts a committed placeholder.
    auth_public_key: str | None = None
    auth_public_key_file: Path | None = None
    environment: Literal["production", "local"] = "production"
    admin_token: SecretStr | None = None
    hubs_file: Path | None = None

    host: str = "127.0.0.1"
    # The origin people open (the gateway): links in emails and answers are built on it.
    public_url: str = "http://127.0.0.1:8000"
    # Request bodies past this answer 413 before they are read (JSON APIs; 1 MiB).
    http_max_body_bytes: int = 1_048_576
    # Requests in progress at once; more answer 503 with Retry-After at once (0: no limit).
    http_max_in_progress: int = 32
    log_level: str = "INFO"
    log_json: bool = True

    # Off: this process stages events but leaves publishing them to the replicas of the service that relay
    # (a consuming replica then spends its loop on consuming). At least one replica must relay.
    outbox_relay: bool = True
    outbox_poll_interval_s: float = 0.2
    # After a commit wakes the relay, it waits this long so that one round takes what commits meanwhile:
    # under load, a round (a claim, a produce request, a commit) per few rows instead of one per row.
    outbox_relay_linger_s: float = 0.005
    outbox_batch_size: int = 500
    # Rounds in flight at once, each up to outbox_batch_size rows.
    outbox_relay_lanes: int = 4
    # A row failing this many rounds is parked (listed by `python -m services.<name> outbox parked`).
    outbox_max_attempts: int = 10
    outbox_retry_backoff_s: float = 0.5
    outbox_retry_backoff_cap_s: float = 60.0
    # Bound on waiting for a topic's metadata: a missing topic fails its rows, not the whole round.
    outbox_metadata_timeout_s: float = 2.0

    consumer_max_attempts: int = 5
    consumer_commit_interval_s: float = 0.2
    # Records fetched at once, at most (a trickle is applied as it comes). Each lane's transaction costs about
    # 0.3 ms of SQLAlchemy and asyncpg whatever its size: a backlog in batches of 2,000 moved 8% faster than of 1,000.
    consumer_batch_size: int = 2000
    # A fetched batch is applied in up to this many transactions side by side, each over whole partitions.
    consumer_lanes: int = 4
    consumer_retry_backoff_s: float = 0.2
    consumer_retry_backoff_cap_s: float = 10.0
    # Liveness fails when fetched records have waited this long (a dependency down that long, or a hang).
    consumer_stall_timeout_s: float = 300.0

    @property
    def http_port(self) -> int:
        """The port this service listens on; each service's settings name it."""
        raise NotImplementedError
