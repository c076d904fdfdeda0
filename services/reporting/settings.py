"""Reporting's knobs (env: HUBNET_<FIELD>)."""

from shared.settings import CommonSettings


class ReportingSettings(CommonSettings):
    reporting_port: int = 8004

    @property
    def http_port(self) -> int:
        return self.reporting_port
