"""docker-compose.yml is kept honest without Docker (no engine runs on this machine): it parses,
every command is one the farm CLI accepts, every provider has its own worker on its own queue,
and the stateful and long-running services have volumes and healthchecks."""

from pathlib import Path

import click
import yaml

from farm.celery_app import queue_name
from farm.cli import cli
from providers import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
TEST_DOUBLES = {"sim"}  # providers that exist for tests and dry runs, not for deployment


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _accepts(argv):
    """Parse argv with the real CLI (options, choices, ranges) without running the command."""
    ctx = cli.make_context("farm", ["--config", str(ROOT / "config.yml"), *argv], resilient_parsing=False)
    sub_name, sub_cmd, sub_args = cli.resolve_command(ctx, list(argv))
    sub_cmd.make_context(sub_name, sub_args, parent=ctx)
    return sub_name


def test_every_service_command_is_accepted_by_the_farm_cli():
    services = _compose()["services"]
    farm_services = {n: s for n, s in services.items() if s.get("image", "").startswith("sandbox-farm:")
                     and n != "node-csb"}
    assert farm_services
    for name, service in farm_services.items():
        try:
            assert _accepts(service["command"]) in ("worker", "beat", "flower"), name
        except click.UsageError as exc:  # pragma: no cover - the assertion message is the point
            raise AssertionError(f"{name}: {exc}") from None


def test_one_worker_service_per_provider_each_on_its_own_queue_with_its_own_extra():
    services = _compose()["services"]
    workers = {n: s for n, s in services.items() if s.get("command", [None])[0] == "worker"}
    by_provider = {}
    for name, service in workers.items():
        cmd = service["command"]
        provider = cmd[cmd.index("--provider") + 1]
        by_provider[provider] = service
        assert service["environment"]["FARM_PROVIDER"] == provider
        assert service["build"]["args"]["EXTRA"] in ("", provider)
        assert queue_name(provider) == f"farm.{provider}"
        assert "healthcheck" in service and "deploy" not in service  # scale with --scale
    assert set(by_provider) == set(REGISTRY) - TEST_DOUBLES


def test_redis_is_persistent_and_never_evicts():
    redis = _compose()["services"]["redis"]
    cmd = redis["command"]
    assert "--appendonly yes" in cmd and "--maxmemory-policy noeviction" in cmd and "--requirepass" in cmd
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-data" in _compose()["volumes"] and "healthcheck" in redis


def test_single_beat_flower_with_auth_and_healthchecks_everywhere():
    services = _compose()["services"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert any("beat-data" in v for v in services["beat"]["volumes"])
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name


def test_no_secret_values_in_compose_or_dockerfile():
    """Secrets are interpolated from .env at deploy time; none is written into the files."""
    services = _compose()["services"]
    secretish = ("PASSWORD", "TOKEN", "API_KEY", "BASIC_AUTH", "SECRET")
    credentials = {"daytona": {"DAYTONA_API_KEY"}, "e2b": {"E2B_API_KEY"}, "morph": {"MORPH_API_KEY"},
                   "modal": {"MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"}, "codesandbox": {"CSB_SERVICE_TOKEN"}}
    all_credentials = set().union(*credentials.values(), {"CSB_API_KEY"})
    for name, service in services.items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if any(word in key for word in secretish):
                assert str(value).startswith("${") and str(value).endswith("}"), (name, key)
        assert "env_file" not in service, name  # each service gets only the secrets it names
        provider = env.get("FARM_PROVIDER")
        if provider:  # a worker sees its own provider's credentials and no other's
            assert all_credentials & set(env) == credentials.get(provider, set()), name
    assert set(services["node-csb"]["environment"]) >= {"CSB_API_KEY", "CSB_SERVICE_TOKEN"}
    password = services["redis"]["command"].split("--requirepass ", 1)[1].split()[0]
    assert password.startswith("${REDIS_PASSWORD")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not any(word in dockerfile for word in secretish)
    assert "AS build" in dockerfile and "USER farm" in dockerfile and "python:3.11" in dockerfile
    assert ".env" in (ROOT / ".gitignore").read_text().split()
