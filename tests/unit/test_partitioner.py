"""The relay picks each record's partition itself (it builds record batches per partition), so its
partitioner must be Kafka's default: every producer of a key, in any language, reaches the same partition."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from shared.kafka import partition_for

# Kafka's own test vectors for its murmur2 (clients' UtilsTest.testMurmur2), as signed 32-bit integers.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_partition_is_javas_positive_murmur2_modulo_the_partition_count() -> None:
    for key, signed in JAVA_MURMUR2.items():
        for partitions in (1, 6, 7, 100):
            assert partition_for(key, partitions) == (signed & 0x7FFFFFFF) % partitions


@given(key=st.binary(max_size=200), partitions=st.integers(min_value=1, max_value=1000))
def test_partition_equals_aiokafkas_default_partitioner(key: bytes, partitions: int) -> None:
    everyone = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, everyone, everyone)
