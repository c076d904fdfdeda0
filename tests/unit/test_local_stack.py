"""The local stack's registry: start order, port ownership, component names, instances side by side."""

from __future__ import annotations

import uuid

import pytest

from deploy.local import stack
from deploy.local.stack import instance, kafka, registry


def test_components_start_with_what_the_services_need_and_the_gateway_last() -> None:
    assert registry.NAMES == ("postgres", "kafka", "smtp", "services", "gateway")
    assert registry.PROCESSES[-5:-1] == stack.SERVICES


def test_every_port_role_belongs_to_exactly_one_component() -> None:
    roles = [role for component in registry.COMPONENTS for role in component.port_roles]
    assert sorted(roles) == sorted(instance.PORT_VARS)


def test_only_keeps_start_order_when_listed_out_of_order() -> None:
    chosen = registry.parse_components("services, postgres")
    assert [component.name for component in chosen] == ["postgres", "services"]
    assert registry.parse_components("") == list(registry.COMPONENTS)


def test_resolve_finds_a_component_or_one_of_its_processes() -> None:
    component, processes = registry.resolve("intake")
    assert (component.name, processes) == ("services", ("intake",))
    component, processes = registry.resolve("services")
    assert processes == stack.SERVICES
    with pytest.raises(stack.StackError, match="choose from postgres, kafka, smtp, services, gateway, intake"):
        registry.resolve("zookeeper")


def test_instances_get_their_own_ports_when_named_differently(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in instance.PORT_VARS.values():
        monkeypatch.delenv(var, raising=False)
    dev, test = stack.get_instance("dev"), stack.get_instance("test")
    assert set(dev.ports.values()).isdisjoint(test.ports.values())
    assert dev.dir != test.dir


def test_get_instance_refuses_when_two_roles_share_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBNET_SMTP_PORT", "31000")
    monkeypatch.setenv("HUBNET_INTAKE_PORT", "31000")
    with pytest.raises(stack.StackError, match="HUBNET_INTAKE_PORT and HUBNET_SMTP_PORT are both 31000"):
        stack.get_instance("h9")


def test_kafka_cluster_id_never_begins_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # URL-safe base64 "-A…": kafka-storage took it for an option
    plain = uuid.UUID(bytes=bytes(16))
    drawn = iter([dashed, plain])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))

    assert kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"
