"""Matching's knobs (env: HUBNET_<FIELD>)."""

from services.matching import SERVICE
from shared.settings import CommonSettings


class MatchingSettings(CommonSettings):
    matching_port: int = SERVICE.default_port
    matching_max_candidates: int = 3

    @property
    def http_port(self) -> int:
        return self.matching_port
