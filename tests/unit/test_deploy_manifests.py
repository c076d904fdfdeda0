"""The Dockerfile, Compose and Kubernetes manifests agree with the code: commands, ports, probes, settings, topics."""

from __future__ import annotations

import importlib
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from deploy.local.stack import gateway
from services.intake.settings import IntakeSettings
from services.matching.settings import MatchingSettings
from services.notify.settings import NotifySettings
from services.reporting.settings import ReportingSettings
from shared.auth import PRIVATE_KEY_VAR, KeyRefused, PrivateKey, private_pem, public_pem, verification_key
from shared.contract.topics import PLATFORM_CONSUMER_GROUPS, all_topics, consultations, dead_letter
from shared.hubs import DEFAULT_HUBS
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose"
K8S = DEPLOY / "k8s"
IMAGE = "hubnet"

SETTINGS: dict[str, type[CommonSettings]] = {
    "intake": IntakeSettings,
    "matching": MatchingSettings,
    "notify": NotifySettings,
    "reporting": ReportingSettings,
}
SERVICES = list(SETTINGS)
CONSUMERS = [group.removeprefix("hubnet.") for group in PLATFORM_CONSUMER_GROUPS]
# The consumer group each consumer service really joins (its declaration in services/<name>/__init__).
GROUPS: dict[str, str] = {
    service: importlib.import_module(f"services.{service}").SERVICE.consumer_group for service in CONSUMERS
}
HUB_TOPICS = {consultations(hub.id) for hub in DEFAULT_HUBS}
# Not hubnet settings but read by the runtime: Python's default TLS context takes its CA bundle from it.
RUNTIME_VARIABLES = {"SSL_CERT_FILE", "FORWARDED_ALLOW_IPS"}  # read by the TLS stack and by uvicorn
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
COMPOSE_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _variables(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{field}".upper() for field in settings.model_fields}


def _port(service: str) -> int:
    default = SETTINGS[service].model_fields[f"{service}_port"].default
    assert isinstance(default, int)
    return default


VARIABLES = {service: _variables(settings) for service, settings in SETTINGS.items()}
COMMON_VARIABLES = _variables(CommonSettings)


def _yaml_files() -> list[Path]:
    return sorted(p for base in (COMPOSE, K8S) for p in base.rglob("*") if p.suffix in (".yaml", ".yml"))


@cache
def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _k8s(kind: str, under: Path = K8S) -> list[dict[str, Any]]:
    return [doc for path in sorted(under.rglob("*.yaml")) for doc in _documents(path) if doc.get("kind") == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in _k8s(kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name!r} is declared {len(matches)} times under deploy/k8s"
    return matches[0]


def _pod(service: str) -> dict[str, Any]:
    spec: dict[str, Any] = _named("Deployment", service)["spec"]["template"]["spec"]
    return spec


def _main_container(service: str) -> dict[str, Any]:
    matches = [c for c in _pod(service)["containers"] if c["name"] == service]
    assert len(matches) == 1, f"Deployment {service} has no container named {service}"
    found: dict[str, Any] = matches[0]
    return found


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def _config_keys(kind: str, name: str) -> set[str]:
    doc = _named(kind, name)
    return set(doc.get("data") or {}) | set(doc.get("stringData") or {})


def _env_names(container: dict[str, Any]) -> set[str]:
    """Every variable a container receives: its env entries and every key of the objects it takes whole."""
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= _config_keys("ConfigMap", source["configMapRef"]["name"])
        if "secretRef" in source:
            names |= _config_keys("Secret", source["secretRef"]["name"])
    return names


def _env_file(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {key.strip(): value for key, value in pairs}


def _compose() -> dict[str, Any]:
    [document] = _documents(COMPOSE / "compose.yaml")
    services: dict[str, Any] = document["services"]
    return services


def _compose_env(spec: dict[str, Any]) -> set[str]:
    files = spec.get("env_file", [])
    names = {name for file in ([files] if isinstance(files, str) else files) for name in _env_file(COMPOSE / file)}
    environment = spec.get("environment", {})
    if isinstance(environment, list):
        return names | {item.split("=", 1)[0] for item in environment}
    return names | set(environment)


def _acls(user: str) -> list[dict[str, Any]]:
    acls: list[dict[str, Any]] = _named("KafkaUser", user)["spec"]["authorization"]["acls"]
    return acls


def _rights(user: str) -> dict[tuple[str, str], set[str]]:
    rights: dict[tuple[str, str], set[str]] = {}
    for acl in _acls(user):
        resource = acl["resource"]
        key = (resource["type"], f"{resource.get('name', '')}{'*' if resource.get('patternType') == 'prefix' else ''}")
        rights.setdefault(key, set()).update(acl["operations"])
    return rights


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_parses_into_named_objects(path: Path) -> None:
    documents = _documents(path)
    assert documents, f"{path} holds no document"
    assert path.read_text(encoding="utf-8").startswith("#"), f"{path} does not open with its role"
    for doc in documents:
        assert isinstance(doc, dict)
        if path.is_relative_to(K8S):
            assert {"apiVersion", "kind"} <= set(doc), f"{path}: a document without apiVersion/kind"
            if doc["kind"] != "Kustomization":
                assert doc.get("metadata", {}).get("name"), f"{path}: a {doc['kind']} without a name"


def test_kustomizations_list_existing_files_and_every_manifest() -> None:
    listed: set[Path] = set()
    for kustomization in sorted(K8S.rglob("kustomization.yaml")):
        [document] = _documents(kustomization)
        for resource in document["resources"]:
            path = (kustomization.parent / resource).resolve()
            assert path.exists(), f"{kustomization}: {resource} does not exist"
            listed.add(path)
    manifests = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert manifests - listed == set(), "manifests no kustomization applies"


def test_workloads_and_kafka_resources_are_separate_kustomizations() -> None:
    for kind in ("KafkaTopic", "KafkaUser"):
        assert _k8s(kind) == _k8s(kind, K8S / "kafka"), f"{kind} outside deploy/k8s/kafka"
    [workloads] = _documents(K8S / "kustomization.yaml")
    assert "kafka" not in " ".join(workloads["resources"])


def test_image_is_built_from_the_hash_pinned_lock_and_runs_as_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert re.search(r"pip install --no-deps \.", dockerfile)
    assert re.search(r'^ENTRYPOINT \["python", "-m"\]$', dockerfile, re.M)
    assert not re.search(r"^CMD\b", dockerfile, re.M), "the service is chosen by compose/k8s, not the image"
    [user] = re.findall(r"^USER (\d+)", dockerfile, re.M)
    assert int(user) != 0
    for service in SERVICES:
        assert _pod(service)["securityContext"]["runAsUser"] == int(user)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".local", ".git", "tests"} <= set(ignored)


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_serves_its_service_with_probes_on_its_port(service: str) -> None:
    port = _port(service)
    assert f"HUBNET_{service.upper()}_PORT" in VARIABLES[service]
    container = _main_container(service)
    assert container["image"] == IMAGE
    assert container["args"] == [f"services.{service}", "serve"]
    [container_port] = container["ports"]
    assert container_port["containerPort"] == port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    annotations = _named("Deployment", service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    svc = _named("Service", service)
    [service_port] = svc["spec"]["ports"]
    assert service_port["port"] == port
    assert service_port["targetPort"] in (port, container_port["name"])
    labels = _named("Deployment", service)["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("service", SERVICES)
def test_every_container_is_locked_down_and_sized(service: str) -> None:
    pod = _pod(service)
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in _containers(pod):
        assert container["image"] == IMAGE, "one image for every container"
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])


@pytest.mark.parametrize("service", SERVICES)
def test_every_pod_migrates_its_own_schema_before_serving(service: str) -> None:
    init = _pod(service)["initContainers"]
    [migrate] = [c for c in init if c.get("args", [])[-1:] == ["migrate"]]
    assert migrate["args"] == [f"services.{service}", "migrate"]
    assert "HUBNET_DATABASE_URL" in _env_names(migrate)


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_a_pod_receives_is_a_setting_its_service_reads(service: str) -> None:
    for container in _containers(_pod(service)):
        received = _env_names(container)
        unknown = received - VARIABLES[service] - RUNTIME_VARIABLES
        assert unknown == set(), f"{service}/{container['name']} receives variables nothing reads"


def test_every_referenced_config_map_secret_and_key_exists() -> None:
    for service in SERVICES:
        pod = _pod(service)
        for container in _containers(pod):
            _env_names(container)  # fails on a ConfigMap or Secret that is not declared
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in _config_keys("Secret", ref["name"])
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                keys = _config_keys("Secret", volume["secret"]["secretName"])
                assert {item["key"] for item in volume["secret"].get("items", [])} <= keys
    for auth in _k8s("TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in _config_keys("Secret", ref["name"])


ISSUERS = ("intake",)  # signs staff tokens at sign-in


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_gets_the_staff_token_public_key_and_only_the_issuer_a_key_to_sign_with(service: str) -> None:
    spec = _compose()[service]
    [compose] = _documents(COMPOSE / "compose.yaml")
    key_file = _env_file(COMPOSE / "hubnet.env")["HUBNET_AUTH_PUBLIC_KEY_FILE"]
    secret = key_file.removeprefix("/run/secrets/")
    assert secret in spec["secrets"], f"compose mounts no {key_file} into {service}"
    assert (COMPOSE / compose["secrets"][secret]["file"]).is_file()
    assert {"HUBNET_AUTH_PUBLIC_KEY", "HUBNET_AUTH_PUBLIC_KEY_FILE"} & _env_names(_main_container(service))
    received = [_compose_env(spec)] + [_env_names(container) for container in _containers(_pod(service))]
    main = _main_container(service)
    signers = [
        names
        for names in [_compose_env(spec)] + [_env_names(c) for c in _containers(_pod(service))]
        if any(name.startswith(PRIVATE_KEY_VAR) for name in names)
    ]
    if service in ISSUERS:  # its serving container, in compose and in Kubernetes, and nothing else
        assert signers == [_compose_env(spec), _env_names(main)]
        assert "staff-token-private-key" in spec["secrets"]
    else:
        assert signers == [], "only the issuer signs"
    for names in received:
        assert "HUBNET_ENVIRONMENT" not in names, "a deployment is never the local stack"


def test_committed_public_keys_are_placeholders_the_services_refuse() -> None:
    config = {k: v for doc in _k8s("ConfigMap") for k, v in doc["data"].items()}
    for settings in (
        CommonSettings.model_validate({"auth_public_key": config["HUBNET_AUTH_PUBLIC_KEY"]}),
        CommonSettings.model_validate({"auth_public_key_file": COMPOSE / "staff-token.pub"}),
    ):
        with pytest.raises(KeyRefused, match="placeholder committed in deploy/"):
            verification_key(settings)


def test_consumers_scale_on_their_own_group_lag_with_the_services_kafka_settings() -> None:
    config = {k: v for doc in _k8s("ConfigMap") for k, v in doc["data"].items() if k.startswith("HUBNET_KAFKA")}
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in _k8s("ScaledObject")}
    assert sorted(scaled) == sorted(CONSUMERS)
    for service, scaled_object in scaled.items():
        assert "replicas" not in _named("Deployment", service)["spec"], "the autoscaler owns the replica count"
        assert 1 <= scaled_object["spec"]["minReplicaCount"] <= scaled_object["spec"]["maxReplicaCount"]
        [trigger] = scaled_object["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == GROUPS[service]
        assert metadata.get("topic", "") == "", "empty topic: the lag over every topic of the group"
        assert int(metadata["lagThreshold"]) > 0
        if "bootstrapServersFromEnv" in metadata:
            assert metadata["bootstrapServersFromEnv"] in _env_names(_main_container(service))
        else:
            assert metadata["bootstrapServers"] == config["HUBNET_KAFKA_BOOTSTRAP_SERVERS"]
        assert metadata.get("sasl", "none") == KEDA_SASL.get(config.get("HUBNET_KAFKA_SASL_MECHANISM", ""), "none")
        uses_tls = config.get("HUBNET_KAFKA_SECURITY_PROTOCOL") in ("SSL", "SASL_SSL")
        assert metadata.get("tls", "disable") == ("enable" if uses_tls else "disable")
        auth = _named("TriggerAuthentication", trigger["authenticationRef"]["name"])
        credentials = {ref["parameter"]: ref["name"] for ref in auth["spec"]["secretTargetRef"]}
        password = next(e for e in _main_container(service)["env"] if e["name"] == "HUBNET_KAFKA_SASL_PASSWORD")
        assert credentials["password"] == password["valueFrom"]["secretKeyRef"]["name"]


def test_intake_scales_on_cpu() -> None:
    [hpa] = _k8s("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "intake"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "replicas" not in _named("Deployment", "intake")["spec"]


def test_strimzi_topics_match_the_contract() -> None:
    declared = {t["spec"]["topicName"]: t["spec"] for t in _k8s("KafkaTopic")}
    expected = all_topics([hub.id for hub in DEFAULT_HUBS])
    assert set(declared) == {spec.name for spec in expected}
    for spec in expected:
        assert declared[spec.name]["partitions"] == spec.partitions, spec.name
        compacted = declared[spec.name].get("config", {}).get("cleanup.policy") == "compact"
        assert compacted is spec.compacted, spec.name
    for topic in _k8s("KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "hubnet"


def test_platform_principals_hold_exactly_the_rights_their_service_uses() -> None:
    read, write, both = {"Read", "Describe"}, {"Write", "Describe"}, {"Read", "Write", "Describe"}
    idempotent = {("cluster", ""): {"IdempotentWrite"}}
    hub_topics = {("topic", topic) for topic in HUB_TOPICS}

    def consumer(service: str, on_hub_topics: set[str]) -> dict[tuple[str, str], set[str]]:
        group = GROUPS[service]
        return {
            **dict.fromkeys(hub_topics, on_hub_topics),
            ("group", f"{group}*"): {"Read"},
            ("topic", dead_letter(group)): write,
            **idempotent,
        }

    expected = {
        "hubnet-intake": {**dict.fromkeys(hub_topics, write), **idempotent},
        "hubnet-matching": consumer("matching", both),
        "hubnet-notify": consumer("notify", both),
        "hubnet-reporting": consumer("reporting", read),
    }
    assert {f"hubnet-{service}" for service in SERVICES} == set(expected)
    for user, rights in expected.items():
        assert _rights(user) == rights, user
        assert _named("KafkaUser", user)["spec"]["authentication"]["type"] == "scram-sha-512"
        secret = _named("Secret", user.replace("hubnet-", "hubnet-kafka-"))
        assert secret["stringData"]["username"] == user, "the service must log in as its own principal"


def test_agency_principal_reads_only_its_own_prefix() -> None:
    rights = _rights("mediso")
    assert {name for kind, name in rights if kind == "topic"} == {"hubnet.mediso.*"}
    assert {kind for kind, _ in rights} <= {"topic", "group"}, "no cluster-wide rights"
    for (kind, name), operations in rights.items():
        assert operations <= {"Read", "Describe"}, f"{kind} {name}: {operations}"
        if kind == "group":
            assert name.startswith("mediso."), "its groups cannot collide with the platform's hubnet.*"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_runs_each_service_with_its_command_port_and_readiness_check(service: str) -> None:
    port = _port(service)
    spec = _compose()[service]
    assert spec["image"].split(":")[0] == IMAGE
    assert "hubnet.env" in spec["env_file"]
    assert spec["command"] == [f"services.{service}", "serve"]
    assert [str(p).rsplit(":", 1)[-1] for p in spec["ports"]] == [str(port)]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(spec["healthcheck"]["test"])
    assert spec["deploy"]["replicas"] >= 1
    after = {name for name, dep in spec["depends_on"].items() if dep["condition"] == "service_completed_successfully"}
    assert after == {"topics", "migrate"}


def test_compose_dependencies_exist_and_wait_on_real_conditions() -> None:
    services = _compose()
    for name, spec in services.items():
        for dependency, how in spec.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert how["condition"] in COMPOSE_CONDITIONS
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_compose_passes_only_settings_the_services_read() -> None:
    services = _compose()
    shared = set(_env_file(COMPOSE / "hubnet.env"))
    assert shared <= COMMON_VARIABLES, "hubnet.env goes to every service: only common settings belong there"
    for service in SERVICES:
        assert _compose_env(services[service]) - VARIABLES[service] == set(), service
    assert _compose_env(services["migrate"]) <= COMMON_VARIABLES


def test_compose_migrates_every_schema_and_creates_the_contract_topics() -> None:
    services = _compose()
    migrate = " ".join(services["migrate"]["command"])
    for service in SERVICES:
        assert f"python -m services.{service} migrate" in migrate
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    script = " ".join(services["topics"]["command"])
    created = {
        name: (int(partitions), bool(compact))
        for name, partitions, compact in re.findall(
            r"--topic (\S+) --partitions (\d+)( --config cleanup\.policy=compact)?", script
        )
    }
    expected = all_topics([hub.id for hub in DEFAULT_HUBS])
    assert created == {spec.name: (spec.partitions, spec.compacted) for spec in expected}


# --- the gateway: one origin, the same routes locally, in Compose and in Kubernetes ------------------------------


def test_committed_gateway_files_are_the_generated_ones() -> None:
    for directory in gateway.CLUSTER_DIRS:
        for name, content in gateway.cluster_files(directory).items():
            assert (directory / name).read_text(encoding="utf-8") == content, (
                f"{(directory / name).relative_to(ROOT)} is stale: run `hubnet stack gateway-config`"
            )


def test_gateway_config_sends_every_path_and_method_to_its_owner_and_nginx_accepts_it(tmp_path: Path) -> None:
    files = gateway.Files(tmp_path / "pid", tmp_path / "error.log", tmp_path / "access.log", tmp_path)
    upstreams = {service: f"127.0.0.1:{_port(service)}" for service in SERVICES}
    conf = gateway.render(listen="127.0.0.1:18000", upstreams=upstreams, files=files, openapi=tmp_path / "api.json")
    cluster = gateway.cluster_config()
    for text in (conf, cluster):
        for index, (template, methods) in enumerate(gateway.API.items()):
            assert f"location ~ {gateway.path_regex(template)} {{" in text
            for method, service in methods.items():
                assert f"{method} {service};" in text.split(f"$api_{index} {{", 1)[1].split("}", 1)[0]
        for prefix, service in gateway.PREFIXES.items():
            assert re.search(
                rf"location {re.escape(prefix)} {{ (limit_req [^}}]*; )?proxy_pass http://{service}; }}", text
            )
    for service in SERVICES:
        assert f"upstream {service} {{ server {service}:{_port(service)}; keepalive 16; }}" in cluster
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    nginx = gateway.nginx_binary()
    checked = subprocess.run(
        [str(nginx), "-t", "-q", "-p", str(tmp_path), "-e", str(files.error_log), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_compose_gateway_serves_the_generated_config_after_every_service_is_ready() -> None:
    spec = _compose()["gateway"]
    assert "./gateway.conf:/etc/nginx/nginx.conf:ro" in spec["volumes"]
    assert f"./openapi.json:{gateway.CONTAINER_OPENAPI}:ro" in spec["volumes"]
    assert f"{gateway.CLUSTER_PORT}:{gateway.CLUSTER_PORT}" in spec["ports"]
    assert spec["depends_on"] == {service: {"condition": "service_healthy"} for service in SERVICES}
    assert gateway.HEALTH_PATH in " ".join(spec["healthcheck"]["test"])


def test_kubernetes_ingress_reaches_the_gateway_which_mounts_the_generated_config() -> None:
    kustomization = _documents(K8S / "kustomization.yaml")[0]
    assert {"name": "hubnet-gateway", "files": ["gateway.conf", "openapi.json"]} in kustomization["configMapGenerator"]
    pod = _pod("gateway")
    [nginx] = pod["containers"]
    assert {"name": "http", "containerPort": gateway.CLUSTER_PORT} in nginx["ports"]
    assert nginx["readinessProbe"]["httpGet"]["path"] == gateway.HEALTH_PATH
    assert nginx["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {mount["mountPath"]: mount.get("subPath") for mount in nginx["volumeMounts"]}
    assert mounts["/etc/nginx/nginx.conf"] == "gateway.conf"
    assert mounts[str(gateway.CONTAINER_OPENAPI)] == "openapi.json"
    config = next(volume for volume in pod["volumes"] if volume["name"] == "config")
    assert config["configMap"]["name"] == "hubnet-gateway"
    [ingress] = _k8s("Ingress")
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"]["name"] == "gateway"
    service = _named("Service", "gateway")
    assert service["spec"]["ports"][0]["port"] == gateway.CLUSTER_PORT


def test_gateway_api_table_is_what_the_services_openapi_documents_say() -> None:
    key = PrivateKey.generate()
    keys = {"auth_public_key": public_pem(key.public_key()), "auth_private_key": private_pem(key)}
    answered: dict[str, dict[str, str]] = {}
    for service, settings in SETTINGS.items():
        app = importlib.import_module(f"services.{service}.app").create_app(settings.model_validate(keys))
        for path, operations in app.openapi()["paths"].items():
            if path.startswith("/v1/"):
                for method in operations:
                    assert method.upper() not in answered.get(path, {}), f"two services answer {method} {path}"
                    answered.setdefault(path, {})[method.upper()] = service
    assert answered == gateway.API
