"""Intake's knobs (env: HUBNET_<FIELD>)."""

from pathlib import Path

from pydantic import SecretStr

from services.intake import SERVICE
from shared.settings import CommonSettings


class IntakeSettings(CommonSettings):
    intake_port: int = SERVICE.default_port
    # Intake issues staff tokens at sign-in: it alone holds the issuer's Ed25519 private key (PEM), inline or
    # as a file (a mounted secret); it must be the pair of auth_public_key.
    auth_private_key: SecretStr | None = None
    auth_private_key_file: Path | None = None
    # How long a sign-in's staff token lasts: a working day.
    staff_token_ttl_hours: float = 12.0
    # The attachment store's directory (a volume shared by every intake replica).
    intake_attachments_dir: Path = Path("/var/lib/hubnet/attachments")
    # The portal's bodies carry files: up to 5 of 10 MB each, and the form.
    intake_max_upload_bytes: int = 52 * 1024 * 1024
    # How long an applicant's secret link opens their page.
    applicant_link_ttl_days: int = 180
    # A portal form sent back sooner than this after it was served is a bot's (people read and type).
    portal_min_fill_s: float = 4.0

    @property
    def http_port(self) -> int:
        return self.intake_port
