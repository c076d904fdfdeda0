"""Matching's knobs (env: HUBNET_<FIELD>)."""

from shared.settings import CommonSettings


class MatchingSettings(CommonSettings):
    matching_port: int = 8002
    matching_max_candidates: int = 3

    @property
    def http_port(self) -> int:
        return self.matching_port
