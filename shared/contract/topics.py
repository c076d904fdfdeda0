"""Topic names and their declared shape. Topics are created explicitly; brokers never auto-create."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

CONSULTATIONS_PATTERN = r"^hubnet\.[a-z][a-z0-9-]*\.consultations$"
# The local stack's services skip the scratch hubs that integration tests and benchmarks create
# for themselves, so that those topics never rebalance the stack's consumer groups.
LOCAL_STACK_PATTERN = r"^hubnet\.(?!it-|bench-)[a-z][a-z0-9-]*\.consultations$"
DIRECTORY = "hubnet.directory"
NOTIFICATIONS = "hubnet.notifications"
CONSULTATION_PARTITIONS = 6
PLATFORM_CONSUMER_GROUPS = ("hubnet.matching", "hubnet.notify", "hubnet.reporting")


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


def consultations(hub: str) -> str:
    """All events about one hub's consultations, keyed by consultation id, whoever produces them."""
    return f"hubnet.{hub}.consultations"


def hub_of(topic: str) -> str | None:
    if re.match(CONSULTATIONS_PATTERN, topic) is None:
        return None
    return topic.split(".")[1]


def dead_letter(consumer_group: str) -> str:
    return f"hubnet.dlt.{consumer_group.removeprefix('hubnet.')}"


def all_topics(hubs: Iterable[str], consumer_groups: Iterable[str] = PLATFORM_CONSUMER_GROUPS) -> list[TopicSpec]:
    specs = [TopicSpec(consultations(hub), CONSULTATION_PARTITIONS) for hub in hubs]
    specs.append(TopicSpec(DIRECTORY, 3, compacted=True))
    specs.append(TopicSpec(NOTIFICATIONS, 3))
    specs.extend(TopicSpec(dead_letter(group), 1) for group in consumer_groups)
    return specs
