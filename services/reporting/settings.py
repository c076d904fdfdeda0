"""Reporting's knobs (env: HUBNET_<FIELD>)."""

from pathlib import Path

from services.reporting import SERVICE
from shared.settings import CommonSettings


class ReportingSettings(CommonSettings):
    reporting_port: int = SERVICE.default_port
    # Where the console signs staff in and sends their commands: intake's API (the gateway's origin by default).
    reporting_intake_url: str | None = None
    # htmx's files, from npm: node_modules at the repository's root (`make install`), /opt/hubnet/web in the image.
    reporting_vendor_dir: Path = Path(__file__).resolve().parents[2] / "node_modules" / "htmx.org" / "dist"

    @property
    def intake_url(self) -> str:
        return self.reporting_intake_url or self.public_url

    @property
    def http_port(self) -> int:
        return self.reporting_port
