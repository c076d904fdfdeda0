"""What a service is, stated once: its name, and everything derived from it (source, group, schema, topics, port)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contract.topics import dead_letter


@dataclass(frozen=True, slots=True)
class Service:
    """One hubnet service. Each declares itself once (in its package's `__init__`); the runtime, the
    outbox, the consumer and the migrations take every name they need from here."""

    name: str
    default_port: int

    @property
    def source(self) -> str:
        """The CloudEvents `source` of every event this service produces."""
        return f"/hubnet/{self.name}"

    @property
    def consumer_group(self) -> str:
        return f"hubnet.{self.name}"

    @property
    def schema(self) -> str:
        """The PostgreSQL schema this service owns; no other service reads it."""
        return self.name

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter(self.consumer_group)
