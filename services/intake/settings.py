"""Intake's knobs (env: HUBNET_<FIELD>)."""

from shared.settings import CommonSettings


class IntakeSettings(CommonSettings):
    intake_port: int = 8001

    @property
    def http_port(self) -> int:
        return self.intake_port
