"""The Compose and Kubernetes manifests agree with the code: commands, ports, probes, settings, topics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.intake.settings import IntakeSettings
from services.matching.settings import MatchingSettings
from services.notify.settings import NotifySettings
from services.reporting.settings import ReportingSettings
from shared.contract.topics import all_topics
from shared.hubs import DEFAULT_HUBS
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose"
SETTINGS: dict[str, type[CommonSettings]] = {
    "intake": IntakeSettings,
    "matching": MatchingSettings,
    "notify": NotifySettings,
    "reporting": ReportingSettings,
}
PORTS = {name: settings().http_port for name, settings in SETTINGS.items()}
KNOWN_VARIABLES = {f"HUBNET_{field.upper()}" for s in SETTINGS.values() for field in s.model_fields}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.rglob("*.yaml")) for doc in _documents(path) if doc.get("kind") == kind]


def _env_file(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_kustomization_resources_exist() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        for resource in _documents(kustomization)[0]["resources"]:
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource} missing"


@pytest.mark.parametrize("service", list(SETTINGS))
def test_deployment_runs_service_with_probes_on_its_port(service: str) -> None:
    [deployment] = [d for d in _k8s("Deployment") if d["metadata"]["name"] == service]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [f"services.{service}", "serve"]
    assert container["ports"][0]["containerPort"] == PORTS[service]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": PORTS[service]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": PORTS[service]}
    assert container["securityContext"]["runAsNonRoot"] is True
    [svc] = [s for s in _k8s("Service") if s["metadata"]["name"] == service]
    assert svc["spec"]["ports"][0]["port"] == PORTS[service]


def test_every_service_is_migrated_before_release() -> None:
    [job] = _k8s("Job")
    commands = [c["args"] for c in job["spec"]["template"]["spec"]["containers"]]
    assert sorted(commands) == sorted([f"services.{s}", "migrate"] for s in SETTINGS)


def test_consumers_scale_on_their_own_group_lag() -> None:
    groups = {
        o["spec"]["scaleTargetRef"]["name"]: o["spec"]["triggers"][0]["metadata"]["consumerGroup"]
        for o in _k8s("ScaledObject")
    }
    assert groups == {s: f"hubnet.{s}" for s in ("matching", "notify", "reporting")}


def test_configured_variables_are_settings_the_services_read() -> None:
    configured = set(_env_file(COMPOSE / "hubnet.env"))
    for kind in ("ConfigMap", "Secret"):
        for doc in _k8s(kind):
            configured |= set(doc.get("data") or doc.get("stringData") or {})
    for deployment in _k8s("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            configured |= {item["name"] for item in container.get("env", [])}
    assert configured - KNOWN_VARIABLES == set()


def test_strimzi_topics_match_the_contract() -> None:
    declared = {t["spec"]["topicName"]: t["spec"] for t in _k8s("KafkaTopic")}
    expected = all_topics([hub.id for hub in DEFAULT_HUBS])
    assert set(declared) == {spec.name for spec in expected}
    for spec in expected:
        assert declared[spec.name]["partitions"] == spec.partitions
        compacted = declared[spec.name].get("config", {}).get("cleanup.policy") == "compact"
        assert compacted is spec.compacted


def test_agency_principal_reads_only_its_own_prefix() -> None:
    [mediso] = [u for u in _k8s("KafkaUser") if u["metadata"]["name"] == "mediso"]
    topic_acls = [a for a in mediso["spec"]["authorization"]["acls"] if a["resource"]["type"] == "topic"]
    assert [a["resource"]["name"] for a in topic_acls] == ["hubnet.mediso."]
    assert all("Write" not in a["operations"] for a in topic_acls)


def test_compose_runs_each_service_on_its_port_after_migrations_and_topics() -> None:
    compose = _documents(COMPOSE / "compose.yaml")[0]["services"]
    for service, port in PORTS.items():
        spec = compose[service]
        assert spec["command"] == [f"services.{service}", "serve"]
        assert spec["ports"] == [f"{port}:{port}"]
        assert set(spec["depends_on"]) == {"migrate", "topics"}
    for spec in compose.values():
        assert set(spec.get("depends_on", {})) <= set(compose)
    hubs_created = compose["topics"]["command"][0]
    assert all(hub.id in hubs_created for hub in DEFAULT_HUBS)
