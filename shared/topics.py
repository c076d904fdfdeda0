"""Re-export of the contract's topics, for wiring code that wants `shared.topics`."""

from shared.contract.topics import *  # noqa: F403
from shared.contract.topics import TopicSpec, all_topics

__all__ = ["TopicSpec", "all_topics"]
