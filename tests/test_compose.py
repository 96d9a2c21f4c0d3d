"""docker-compose.yml agrees with the code: commands, ports and every variable a service reads."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from prodflow_cli.runner import BATCH_NICENESS, SERVICES
from prodflow_core.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _settings_class(factory: str) -> type[ServiceSettings]:
    module = importlib.import_module(factory.split(".")[0] + ".settings")
    classes = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, ServiceSettings) and c is not ServiceSettings and c.__module__ == module.__name__
    ]
    assert len(classes) == 1, classes
    return classes[0]


def _env_names(cls: type[ServiceSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        names |= {str(c) for c in choices if str(c).isupper()} if choices else {(prefix + name).upper()}
    return names


@pytest.mark.parametrize("spec", SERVICES, ids=[s.name for s in SERVICES])
def test_compose_service_matches_code(spec: Any) -> None:
    compose = _compose()["services"]
    assert {"couchdb", "postgres"} <= set(compose)
    assert compose["couchdb"]["image"] == "couchdb:3" and compose["postgres"]["image"] == "postgres:16"
    service = compose[spec.name]
    cls = _settings_class(spec.factory)
    port = cls.model_fields["port"].default
    command = service["command"]
    assert command[:3] == ["uvicorn", spec.factory, "--factory"]
    assert command[command.index("--port") + 1] == str(port)
    env = service["environment"]
    unknown = set(env) - _env_names(cls)
    assert not unknown, f"{spec.name} sets variables its settings do not read: {unknown}"
    assert env["PRODFLOW_COUCHDB_URL"].startswith("http://admin:")
    assert any(k.endswith("_DATABASE_URL") and "@postgres:5432/" in v for k, v in env.items())
    if spec.name == "gateway":
        assert service["ports"] == [f"{port}:{port}"]
    # The CPU weight of nice 10 (110 of a nice-0 process's 1024), where prodflow up starts the service niced.
    assert service.get("cpu_shares") == (110 if spec.niceness == BATCH_NICENESS else None)


def test_gateway_points_at_each_service_by_its_port() -> None:
    compose = _compose()["services"]
    env = compose["gateway"]["environment"]
    for spec in SERVICES:
        if spec.name == "gateway":
            continue
        port = _settings_class(spec.factory).model_fields["port"].default
        assert env[f"GATEWAY_{spec.name.upper().replace('-', '_')}_URL"] == f"http://{spec.name}:{port}"


def test_secrets_have_no_defaults() -> None:
    """A deployment that forgot a secret does not start (``${VAR:?...}``) instead of running on a known one."""
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("PRODFLOW_IDENTITY_SECRET", "COUCHDB_PASSWORD", "POSTGRES_PASSWORD"):
        uses = [part.split("}")[0] for part in text.split("${" + name)[1:]]
        assert uses and all(use.startswith(":?") for use in uses), (name, uses)


CLUSTER_START = "  # --- 3-node CouchDB cluster"
CLUSTER_END = "  # --- end of the 3-node variant"


def _cluster_variant() -> dict[str, Any]:
    """docker-compose.yml with its commented 3-node variant uncommented in place of the single couchdb service."""
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(CLUSTER_START))
    end = next(i for i, line in enumerate(lines) if line.startswith(CLUSTER_END))
    block = [
        line.replace("  # ", "  ", 1) if line.startswith("  #   ") or line.startswith("  # couchdb") else ""
        for line in lines[start + 1 : end]
    ]
    single = next(i for i, line in enumerate(lines) if line == "  couchdb:")
    loaded: dict[str, Any] = yaml.safe_load("\n".join(lines[:single] + block + lines[end + 1 :]))
    return loaded


def test_the_commented_cluster_variant_is_a_working_three_node_cluster() -> None:
    services = _cluster_variant()["services"]
    nodes = [services[f"couchdb-{i}"] for i in range(3)]
    names = [node["environment"]["NODENAME"] for node in nodes]
    assert len(set(names)) == 3 and all("." in name for name in names)
    for node, name in zip(nodes, names, strict=True):
        assert node["image"] == "couchdb:3" and node["hostname"] == name
        assert node["networks"]["default"]["aliases"] == [name]
        assert node["volumes"][0].split(":")[1] == "/opt/couchdb/data"
    for shared in ("COUCHDB_SECRET", "ERL_FLAGS", "COUCHDB_PASSWORD"):  # one cluster: one secret, cookie, admin
        assert len({node["environment"][shared] for node in nodes}) == 1, shared
    assert len({node["volumes"][0] for node in nodes}) == 3

    setup = services["couchdb-setup"]
    script = setup["command"][0]
    assert all(f"couchdb@{name}" in script.replace("$$node", name) for name in names[1:]) and names[0] in script
    assert "_users _replicator" in script and set(setup["depends_on"]) == {f"couchdb-{i}" for i in range(3)}

    balancer = services["couchdb"]
    assert balancer["depends_on"] == {"couchdb-setup": {"condition": "service_completed_successfully"}}
    config = (ROOT / balancer["volumes"][0].split(":")[0]).read_text()
    assert all(f"{name}:5984 check" in config for name in names) and "GET /_up" in config
    for spec in SERVICES:  # the services keep their URL and wait for the balancer
        assert services[spec.name]["environment"]["PRODFLOW_COUCHDB_URL"].endswith("@couchdb:5984")
        assert services[spec.name]["depends_on"]["couchdb"] == {"condition": "service_healthy"}
    assert "healthcheck" in balancer
