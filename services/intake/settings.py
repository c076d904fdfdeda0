"""Intake's knobs (env: HUBNET_<FIELD>)."""

from services.intake import SERVICE
from shared.settings import CommonSettings


class IntakeSettings(CommonSettings):
    intake_port: int = SERVICE.default_port

    @property
    def http_port(self) -> int:
        return self.intake_port
