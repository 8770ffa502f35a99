"""docker-compose.yml is valid Compose and wires the services the way DESIGN.md describes.

No Docker engine runs here, so the file is validated against the Compose specification schema
vendored inside check-jsonschema (works offline) and inspected, never started.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("migrate", "api", "matcher", "notifier", "beat")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def test_compose_file_matches_the_compose_spec_schema() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_redis_is_a_durable_broker_via_its_mounted_config() -> None:
    redis = _services()["redis"]
    words = _words(redis["command"])
    assert words[0] == "redis-server"
    conf_in_container = words[1]
    mounts = {}
    for volume in redis["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    conf_on_host = ROOT / mounts[conf_in_container]
    directives: dict[str, str] = {}
    for line in conf_on_host.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            directives[key.lower()] = value.strip().strip('"')
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] in {"everysec", "always"}
    assert directives["maxmemory-policy"] == "noeviction"
    # Nothing on the command line overrides the file.
    assert "--maxmemory-policy" not in words
    assert "--appendonly" not in words
    assert redis["image"].startswith("redis:7")
    assert _services()["postgres"]["image"].startswith("postgres:16")


def test_app_services_share_the_image_and_settings() -> None:
    services = _services()
    for name in (*APP_SERVICES, "flower"):
        service = services[name]
        build = service["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == "infra/Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()
        env = service["environment"]
        assert env["HOUSINGFIRST_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["HOUSINGFIRST_DATABASE_URL"]
        assert env["HOUSINGFIRST_BROKER_URL"] == "redis://redis:6379/0"


def test_app_commands_use_real_cli_subcommands() -> None:
    import typer.main

    from services.cli import app

    # Typer >= 0.2x vendors click, so check for a group by its `commands` mapping.
    commands = getattr(typer.main.get_command(app), "commands", None)
    assert isinstance(commands, dict), "services.cli.app should have several subcommands"
    subcommands = set(commands)
    assert {"api", "worker", "beat", "migrate"} <= subcommands
    services = _services()
    for name in APP_SERVICES:
        words = _words(services[name]["command"])
        assert words[0] == "housingfirst", name
        assert words[1] in subcommands, (name, words[1], sorted(subcommands))
    assert _words(services["migrate"]["command"])[1] == "migrate"
    assert _words(services["api"]["command"])[1] == "api"
    assert _words(services["beat"]["command"])[1] == "beat"
    for name in ("matcher", "notifier"):
        assert _words(services[name]["command"])[1] == "worker"


def test_worker_queues_cover_matching_maintenance_and_notifications() -> None:
    services = _services()
    queues: set[str] = set()
    for name in ("matcher", "notifier"):
        words = _words(services[name]["command"])
        queues |= set(words[words.index("--queues") + 1].split(","))
    assert queues == {"matching", "maintenance", "notifications"}


def test_start_order_waits_for_healthy_dependencies() -> None:
    services = _services()
    assert _conditions(services["migrate"])["postgres"] == "service_healthy"
    api = _conditions(services["api"])
    assert api["migrate"] == "service_completed_successfully"
    assert api["redis"] == "service_healthy"
    for name in ("matcher", "notifier", "beat"):
        assert _conditions(services[name])["migrate"] == "service_completed_successfully", name
    assert services["migrate"].get("restart", "no") == "no"
    for name, service in services.items():
        for dependency, condition in _conditions(service).items():
            assert dependency in services, (name, dependency)
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)


def test_every_healthcheck_has_a_test() -> None:
    services = _services()
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        check = service.get("healthcheck")
        if check is None:
            continue
        assert not check.get("disable", False), name
        test = check.get("test")
        assert test, name
        assert _words(test)[0] != "NONE", name
    assert "/healthz" in " ".join(_words(services["api"]["healthcheck"]["test"]))


def test_prometheus_scrapes_api_and_workers() -> None:
    services = _services()
    volumes = services["prometheus"]["volumes"]
    assert any(v.startswith("./infra/prometheus.yml:") for v in volumes)
    config = yaml.safe_load((ROOT / "infra" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["api"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["api"]["static_configs"][0]["targets"] == ["api:8000"]
    assert jobs["matcher"]["static_configs"][0]["targets"] == ["matcher:9100"]
    assert jobs["notifier"]["static_configs"][0]["targets"] == ["notifier:9100"]
    assert "5555:5555" in services["flower"]["ports"]


def test_grafana_dashboard_charts_the_main_series() -> None:
    import json

    dashboard = json.loads((ROOT / "infra" / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for series in (
        "housingfirst_queue_depth",
        "housingfirst_outbox_lag_seconds",
        "housingfirst_match_round_duration_seconds",
        "housingfirst_deliveries",
        "housingfirst_http_request_duration_seconds_bucket",
        "housingfirst_support_pending_capacity",
        "housingfirst_referral_to_offer_seconds",
    ):
        assert series in exprs, series
