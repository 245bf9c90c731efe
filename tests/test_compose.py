"""docker-compose.yml's shape, checked without Docker (deploy/tests/test_deploy.py runs it on a real
engine): it parses, every command is one the farm CLI accepts, every provider has its own opt-in
worker on its own queue with its own extra, and the stateful and long-running services have
volumes and healthchecks."""

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
                     and n not in ("node-csb", "cli")}  # cli: `compose run cli <any command>`
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
        assert queue_name(provider) == f"farm.{provider}"
        assert "healthcheck" in service and "deploy" not in service  # scale with --scale
        if provider == "local":  # the core image: no SDK at all, started by a plain `up`
            assert service["image"] == "sandbox-farm:core" and "profiles" not in service
        else:  # opt-in, and only its own SDK
            assert service["build"]["args"]["EXTRAS"] == provider and service["profiles"] == [provider]
    assert set(by_provider) == set(REGISTRY) - TEST_DOUBLES


def test_redis_is_persistent_and_never_evicts():
    redis = _compose()["services"]["redis"]
    cmd = " ".join(redis["command"])
    assert "--appendonly yes" in cmd and "--maxmemory-policy noeviction" in cmd and "--requirepass" in cmd
    assert any(v.endswith(":/var/lib/redis") for v in redis["volumes"])
    assert "redis-data" in _compose()["volumes"] and "healthcheck" in redis


def test_single_beat_flower_with_auth_and_healthchecks_everywhere():
    services = _compose()["services"]
    assert "deploy" not in services["beat"] and any("beat-data" in v for v in services["beat"]["volumes"])
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert services["flower"]["ports"] == ["127.0.0.1:${FARM_FLOWER_PORT:-5555}:5555"]
    for name, service in services.items():
        if name == "cli":  # a one-shot command runner, never left running
            assert service["restart"] == "no" and service["profiles"] == ["cli"]
            continue
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
    worker_check = services["worker-local"]["healthcheck"]["test"]
    assert worker_check == ["CMD", "python", "-m", "farm.health", "worker"]  # no numpy/scipy per check


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
    assert '--requirepass "$$REDIS_PASSWORD"' in " ".join(services["redis"]["command"])  # not in `ps`
    assert services["redis"]["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not any(word in dockerfile for word in secretish)
    # built without a registry or network: the local base image, the pinned wheelhouse, non-root
    assert "sandbox-farm-base:bookworm" in dockerfile and "--no-index" in dockerfile
    assert "-c /tmp/constraints.txt" in dockerfile and "USER 10001" in dockerfile
    assert ".env" in (ROOT / ".gitignore").read_text().split()
