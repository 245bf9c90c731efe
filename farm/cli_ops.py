"""Operations commands: ``farm sweep``, ``doctor``, ``beat``, ``flower``, ``schedules``;
registered by farm/cli.py (as farm/cli_stats.py's are). Heavy modules are imported inside each
command, so ``farm --help`` stays light.
"""

from __future__ import annotations

import os
import sys

import click

from farm.errors import ConfigError, FarmError


@click.command("sweep")
@click.option("--provider", "providers", multiple=True, help="provider to sweep (repeatable; default: all configured)")
@click.option("--run", "run_id", help="only sandboxes labelled with this run")
@click.option("--dry-run", is_flag=True, help="list what would be deleted, delete nothing")
@click.pass_context
def sweep_cmd(ctx: click.Context, providers: tuple[str, ...], run_id: str | None, dry_run: bool) -> None:
    """Find and delete this farm's sandboxes left behind (never one a live run may still use)."""
    from farm.ops import sweep
    from farm.runner import connect
    from providers import check_name

    config = ctx.obj["config"]
    try:
        names = [check_name(p) for p in providers] or sorted(set(config.plan.providers) | set(config.providers))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with connect(config) as (store, _url, _embedded):
        results = sweep(config, names, run_id=run_id, dry_run=dry_run, store=store)
    failed = False
    for r in results:
        verb = "would delete" if dry_run else "deleted"
        line = f"{r.provider:12} found {len(r.found):3}  {verb} {len(r.found) if dry_run else len(r.deleted):3}"
        if r.in_use:
            line += f"  kept {len(r.in_use)} in use by a live run"
        if r.error:
            line += f"  error: {r.error}"
            failed = True
        click.echo(line)
    if failed:
        raise FarmError("some providers could not be swept (see above)")


@click.command("doctor")
@click.option("--provider", "providers", multiple=True, help="provider to check (repeatable; default: all)")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=5.0, show_default=True)
@click.option("--live", is_flag=True, help="check the adapter's assumptions against the real API "
              "(creates one or two sandboxes per provider, always cleaned up; needs --provider)")
@click.pass_context
def doctor_cmd(ctx: click.Context, providers: tuple[str, ...], timeout: float, live: bool) -> None:
    """Per provider: SDK and version, credentials present (never printed), endpoint, reachability.

    Exits 1 when a provider named with --provider is not ready (without --provider: a survey, exit 0)."""
    from farm.ops import doctor, doctor_live
    from providers import check_name

    try:
        names = [check_name(p) for p in providers] or None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if live:
        if not names:
            raise ConfigError("--live creates real sandboxes: name the providers with --provider X")
        verdicts = doctor_live(ctx.obj["config"], names)
        for v in verdicts:
            click.echo(f"{v.provider:12} {v.assumption:36} {v.verdict:10} {v.detail}")
        if not verdicts:
            click.echo("no assumptions declared for " + ", ".join(names))
        if any(v.verdict != "held" for v in verdicts):
            ctx.exit(1)
        return
    from farm.render.grid import grid

    rows = doctor(ctx.obj["config"], names, timeout)
    table = [[r.provider, r.sdk, r.credentials, r.endpoint, r.verdict] for r in rows]
    for line in grid(["provider", "sdk", "credentials", "endpoint", "verdict"], table, wrap={1, 2, 3, 4}):
        click.echo(line)
    not_ready = [r.provider for r in rows if not r.ready]
    if names and not_ready:  # a named provider is one the caller means to use: a script must see it fail
        raise FarmError(f"not ready: {', '.join(not_ready)} (the verdict column says why)")


@click.command("beat")
@click.option("--loglevel", default="INFO", show_default=True)
@click.pass_context
def beat_cmd(ctx: click.Context, loglevel: str) -> None:
    """Run Celery beat with the schedules in config.yml (exactly one per farm)."""
    from pathlib import Path

    from farm.beat import check_schedules, run_beat
    from farm.runner import connect

    config = ctx.obj["config"]
    if not config.schedules:  # a deployed beat must not crash-loop on a config without schedules
        click.echo("farm beat: no schedules in config.yml, so nothing to fire: idling until stopped "
                   "(add a 'schedules:' section, see README, Nightly runs)", err=True)
        _idle_until_stopped()
        return
    check_schedules(config)
    with connect(config, ctx.obj["config_path"]) as (store, url, embedded):
        data_dir = Path(embedded.dir if embedded else os.environ.get("FARM_DATA_DIR") or config.redis.data_dir)
        if embedded is not None:  # one machine: this process also hosts the workers the runs need
            providers = sorted({p for s in config.schedules.values() if s.kind == "run"
                                for p in (s.providers or config.plan.providers)})
            embedded.start_workers(store, providers, config.defaults.concurrency, preflight=False)
        run_beat(config, store, url, data_dir, loglevel)


def _idle_until_stopped() -> None:
    """Block until SIGTERM or Ctrl-C, then return (exit 0)."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass


@click.command("flower")
@click.option("--address", default="127.0.0.1", show_default=True, help="interface to bind")
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.pass_context
def flower_cmd(ctx: click.Context, address: str, port: int) -> None:
    """Start Flower on the farm's broker, with the farm's Celery settings.

    Basic auth comes from FLOWER_BASIC_AUTH=user:password (never a flag, so it stays out of `ps`);
    it is required unless Flower is bound to a loopback address."""
    import signal
    import subprocess

    from farm.runner import connect

    loopback = address == "localhost" or _is_loopback(address)
    if not loopback and not os.environ.get("FLOWER_BASIC_AUTH"):
        raise ConfigError(f"Flower on {address} would be open to the network: set FLOWER_BASIC_AUTH=user:password "
                          "(or bind to 127.0.0.1)")
    auth = os.environ.get("FLOWER_BASIC_AUTH", "")
    if auth and (":" not in auth or auth.startswith(":") or auth.endswith(":")):
        raise ConfigError("FLOWER_BASIC_AUTH must look like user:password")
    config = ctx.obj["config"]
    with connect(config) as (_store, url, embedded):
        env = {**os.environ, "FARM_REDIS_URL": url}
        if ctx.obj["config_path"]:
            env["FARM_CONFIG"] = ctx.obj["config_path"]
        # farm.flower_main: Celery's flower command with Prometheus task labels bounded
        cmd = [sys.executable, "-m", "farm.flower_main", "-A", "workers.app", "flower", f"--address={address}",
               f"--port={port}", "--purge_offline_workers=300"]
        if embedded is None:  # Flower becomes this process, so stop signals reach it directly
            os.execve(cmd[0], cmd, env)
        # The embedded Redis must outlive Flower: run it as a child and pass stop signals on.
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        try:
            while proc.poll() is None:
                try:
                    proc.wait()
                except KeyboardInterrupt:
                    proc.terminate()
        finally:
            signal.signal(signal.SIGTERM, previous)
    if proc.returncode not in (0, -signal.SIGTERM, 130):
        raise FarmError(f"Flower exited with code {proc.returncode}")


def _is_loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@click.command("schedules")
@click.pass_context
def schedules_cmd(ctx: click.Context) -> None:
    """List schedules with their next fire times."""
    from farm.beat import check_schedules, next_fire_times

    config = ctx.obj["config"]
    check_schedules(config)
    rows = next_fire_times(config)
    if not rows:
        click.echo("no schedules: add a 'schedules:' section to config.yml")
    for name, s, nxt in rows:
        trigger = f"cron '{s.cron}' {s.timezone}" if s.cron else f"every {s.every_s:g} s"
        what = "sweep" if s.kind == "sweep" else f"site → {s.out}" if s.kind == "publish" else \
            f"{','.join(s.providers or config.plan.providers)} × {','.join(s.snippets or config.plan.snippets)}" + \
            ("" if (s.scenarios or config.plan.scenarios) == ["cold"] else
             f" × {','.join(s.scenarios or config.plan.scenarios)}")
        gated = f"  fail on {', '.join(s.fail_on)}" if s.fail_on else ""
        click.echo(f"{name:16} {s.kind:7} {trigger:34} next {nxt.isoformat(timespec='seconds')}  {what}{gated}")


@click.command("init")
@click.option("--force", is_flag=True, help="overwrite config.yml and .env if they exist")
def init_cmd(force: bool) -> None:
    """Write a commented config.yml and a .env template into the current folder, and say which
    provider keys this environment has (names only, never values)."""
    from pathlib import Path

    from farm.scaffold import init_folder

    written, keys = init_folder(Path.cwd(), force)
    click.echo(f"wrote {' and '.join(p.name for p in written)} in {Path.cwd()}: config.yml is commented, "
               ".env (mode 0600) has an empty line per provider key")
    click.echo("provider keys in this environment (values are never shown):")
    for entry in keys:
        if not entry.keys:
            click.echo(f"  {entry.provider:12} no key needed")
            continue
        state = "; ".join(f"{k} {'set' if k in entry.set else 'not set'}" for k in entry.keys)
        click.echo(f"  {entry.provider:12} {state}")
    click.echo("next: fill in .env for the providers you use, `farm doctor`, then `farm run`")


COMMANDS = (sweep_cmd, doctor_cmd, beat_cmd, flower_cmd, schedules_cmd, init_cmd)
