"""Kafka: one KRaft node (broker and controller) from the official jars Maven fetches, and the contract's topics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rich.console import Console

from deploy.local.stack import process
from deploy.local.stack.instance import HOST, LOCAL, Instance, StackError

if TYPE_CHECKING:
    from shared.contract.topics import TopicSpec

POM: Final = Path(__file__).resolve().parents[1] / "kafka" / "pom.xml"
LOG4J: Final = Path(__file__).resolve().parents[1] / "kafka" / "log4j.properties"
MAVEN_TIMEOUT: Final = 900.0


def kafka_version() -> str:
    """The Kafka version pinned in deploy/local/kafka/pom.xml (<kafka.version>)."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    element = ET.parse(POM).getroot().find("m:properties/m:kafka.version", namespace)
    if element is None or not element.text:
        raise StackError(f"{POM} has no <kafka.version> property")
    return element.text.strip()


def kafka_libs_dir() -> Path:
    return LOCAL / "cache" / "kafka" / kafka_version() / "libs"


def ensure_kafka_libs(console: Console) -> Path:
    """Fetch the broker's jars with Maven into `.local/cache/kafka/<version>/libs` unless already there."""
    libs = kafka_libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch Kafka's jars: apt-get install -y maven")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return libs
        partial = libs.with_name(f"libs.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        with console.status(f"fetching Apache Kafka {kafka_version()} with Maven…"):
            argv = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies"]
            argv += ["-DincludeScope=runtime", f"-DoutputDirectory={partial}"]
            process.run_checked(argv, what="mvn dependency:copy-dependencies", timeout=MAVEN_TIMEOUT)
        if not (partial / f"kafka_2.13-{kafka_version()}.jar").exists():
            raise StackError(f"Maven ran but {partial} has no kafka_2.13-{kafka_version()}.jar")
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        marker.write_text(f"{kafka_version()}\n", encoding="utf-8")
        console.print(f"[green]✓[/] Kafka {kafka_version()} jars in {libs} ({time.monotonic() - started:.0f}s)")
    return libs


def java_binary() -> str:
    if java_home := os.environ.get("JAVA_HOME"):
        candidate = Path(java_home) / "bin" / "java"
        if candidate.exists():
            return str(candidate)
    if found := shutil.which("java"):
        return found
    raise StackError("Java (17 or newer) is needed for Kafka: apt-get install -y default-jre-headless")


def _properties(inst: Instance) -> str:
    port, controller = inst.ports["kafka"], inst.ports["kafka_controller"]
    return f"""# Written by `hubnet stack` at every start: one KRaft node, broker and controller, on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{controller}
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller}
advertised.listeners=PLAINTEXT://{HOST}:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={inst.kafka_dir / "data"}
# Topics are created explicitly (shared.contract.topics.all_topics), never by a producer's typo.
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
log.retention.hours=168
"""


def new_cluster_id() -> str:
    """A random cluster id as `kafka-storage random-uuid` makes one: 16 random bytes in URL-safe base64,
    never beginning with '-' (one in 64 would, and a command line takes it for an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _cluster_id(inst: Instance) -> str:
    path = inst.kafka_dir / "cluster.id"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    cluster_id = new_cluster_id()
    path.write_text(cluster_id + "\n", encoding="utf-8")
    return cluster_id


def _quiet_aiokafka() -> None:
    """The connection errors of a broker that is still starting are expected while polling."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def _describe_cluster(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="hubnet-stack")
    try:
        await asyncio.wait_for(admin.start(), 10)
        cluster = await asyncio.wait_for(admin.describe_cluster(), 10)
        return bool(cluster.get("brokers"))
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def stack_topics() -> list[TopicSpec]:
    """The topics of the configured hubs (HUBNET_HUBS_FILE, else the built-in list)."""
    from shared.contract.topics import all_topics
    from shared.hubs import load_hubs
    from shared.settings import CommonSettings

    return all_topics(list(load_hubs(CommonSettings())))


async def create_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that are missing (an existing topic is left as it is); return the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000, client_id="hubnet-stack")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        new_topics = [
            NewTopic(
                spec.name,
                spec.partitions,
                1,
                topic_configs={"cleanup.policy": "compact"} if spec.compacted else {},
            )
            for spec in missing
        ]
        response = await admin.create_topics(new_topics)
        created = []
        for entry in response.topic_errors:
            topic, code = entry[0], entry[1]
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                message = entry[2] if len(entry) > 2 else ""
                raise StackError(f"creating topic {topic} failed: {for_code(code).__name__} {message or ''}")
        return created
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, client_id="hubnet-stack")
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


def _ensure_topics(inst: Instance, console: Console) -> None:
    specs = stack_topics()
    _quiet_aiokafka()
    created = asyncio.run(create_topics(inst.address("kafka"), specs))
    if created:
        console.print(f"[green]✓[/] created {len(created)} topics: {', '.join(sorted(created))}")
    else:
        console.print(f"[dim]  all {len(specs)} topics present[/]")


def _launch(inst: Instance, console: Console) -> process.Proc:
    """Format the storage on first use, then start the node."""
    libs = ensure_kafka_libs(console)
    java = java_binary()
    inst.kafka_dir.mkdir(parents=True, exist_ok=True)
    inst.logs.mkdir(parents=True, exist_ok=True)
    properties = inst.kafka_dir / "server.properties"
    properties.write_text(_properties(inst), encoding="utf-8")
    classpath = f"{libs}/*"
    log_opts = [f"-Dlog4j.configuration=file:{LOG4J}", f"-Dkafka.logs.dir={inst.logs}"]
    if not (inst.kafka_dir / "data" / "meta.properties").exists():
        with console.status("formatting Kafka storage…"):
            process.run_checked(
                [
                    *(java, *log_opts, "-cp", classpath, "kafka.tools.StorageTool", "format"),
                    # One argument, so that an id kept from before new_cluster_id, beginning with '-', still parses.
                    *(f"--cluster-id={_cluster_id(inst)}", "-c", str(properties), "--ignore-formatted"),
                ],
                what="kafka-storage format",
                timeout=120,
            )
    jvm = ["-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError"]
    jvm += ["-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true", *log_opts]
    argv = [java, *jvm, "-cp", classpath, "kafka.Kafka", str(properties)]
    return process.spawn(inst, "kafka", argv, log=inst.logs / "kafka.out")


def _ready(inst: Instance) -> bool:
    _quiet_aiokafka()
    return asyncio.run(_describe_cluster(inst.address("kafka")))


component = process.Daemon(
    name="kafka",
    port_roles=("kafka", "kafka_controller"),
    shutdown=process.Shutdown(signal.SIGTERM, 45.0),
    start_timeout=120.0,
    launch=_launch,
    probe=_ready,
    log="kafka.log",  # the broker's own log (log4j); the JVM's output goes to kafka.out
    after_ready=_ensure_topics,
    poll_interval=0.5,
)
