"""Reporting's knobs (env: HUBNET_<FIELD>)."""

from services.reporting import SERVICE
from shared.settings import CommonSettings


class ReportingSettings(CommonSettings):
    reporting_port: int = SERVICE.default_port

    @property
    def http_port(self) -> int:
        return self.reporting_port
