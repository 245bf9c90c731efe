"""The ``farm`` command: a thin layer over farm.runner, farm.report, farm.render and workers.

Modules that pull numpy, scipy, redis or a provider SDK are imported inside the commands that use
them, so ``farm --help`` and one-line errors come back at once (tests/test_cli_imports.py).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from farm import __version__
from farm.errors import ConfigError, FarmError
from farm.render import FORMATS, TABLE_FORMATS, default_output, write
from farm.render import render as render_document

if TYPE_CHECKING:
    from farm.config import FarmConfig


def _config(ctx: click.Context) -> FarmConfig:
    return ctx.obj["config"]


FAIL_ON_HELP = ("a CI gate, repeatable: exit 5 with a one-line reason when breached, e.g. error-rate>5%, "
                "p95:tti>2s, p99:local/run>150ms, regression (see docs/statistics.md, Gates)")


def fail_on_option(help_text: str = FAIL_ON_HELP) -> Any:
    return click.option("--fail-on", "fail_on", multiple=True, metavar="GATE", help=help_text)


def enforce_gates(outcomes: list[Any]) -> None:
    """Exit 4 (GateBreach, one line) when a gate failed; otherwise say on stderr that they passed."""
    from farm.gates import enforce

    passed = enforce(outcomes)
    if passed:
        print(f"farm: {passed}", file=sys.stderr, flush=True)


def _split(value: str | None, flag: str = "") -> list[str]:
    """A comma-separated flag as a list; a flag given but empty (``--snippets ','``) is an error,
    never the configured default."""
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if value is not None and not items and flag:
        raise ConfigError(f"{flag} is empty: give at least one name, comma-separated")
    return items


def _provider_names(providers: str | None, config: Any) -> list[str]:
    """--providers (or the config's plan), each a known provider or a one-line did-you-mean."""
    from providers import check_name

    names = _split(providers, "--providers") or config.plan.providers
    for name in names:
        try:
            check_name(name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="farm", message="%(prog)s %(version)s")
@click.option("--config", "config_path", metavar="PATH", help="config file (default ./config.yml or FARM_CONFIG)")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Sandbox Farm: benchmark code-execution sandbox providers."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path or os.environ.get("FARM_CONFIG")
    if ctx.invoked_subcommand == "init":
        return  # init writes the config (and may replace a broken one): it never reads it
    from farm.config import load_config

    ctx.obj["config"] = load_config(config_path)


COLUMNS_HELP = ("summary table columns: 'default' (fits 120 characters), 'all', a list (p50,p95,max) or "
                "additions (+max,+mean); see docs/results-format.md")


def _columns(spec: str | None, as_json: bool = False) -> tuple[str, ...] | None:
    """--columns checked before any work starts (a typo must not cost a run)."""
    if spec is None:
        return None
    if as_json:
        raise click.UsageError("--columns chooses the table's columns; --json prints the whole document")
    from farm.render.summary import parse_columns

    return parse_columns(spec)


def check_burst_flags(scenario_names: tuple[str, ...], burst: int | None) -> None:
    """--burst goes with --scenario burst, alone (its dispatch window is the burst)."""
    if burst is not None and "burst" not in scenario_names:
        raise ConfigError("--burst needs --scenario burst")
    if "burst" in scenario_names and burst is None:
        raise ConfigError("--scenario burst needs --burst N: how many creates to release at one instant")
    if "burst" in scenario_names and len(scenario_names) > 1:
        raise ConfigError(f"--scenario burst runs alone (its dispatch window is the burst), not with "
                          f"{', '.join(s for s in scenario_names if s != 'burst')}: run the same plan with "
                          "--scenario cold and compare the two runs")


@cli.command("run")
@click.option("--providers", help="comma-separated providers (default: plan.providers in config)")
@click.option("--snippets", help="comma-separated snippet names, or 'all' (default: plan.snippets)")
@click.option("--snippets-dir", type=click.Path(), help="extra folder of snippets")
@click.option("--scenario", "scenarios", help="comma-separated lifecycle scenarios: cold, resume, ... "
              "(default: plan.scenarios; docs/scenarios.md)")
@click.option("--burst", type=click.IntRange(1, 10_000), help="with --scenario burst: creates released at one "
              "instant per group (default -n: one burst)")
@click.option("--repetitions", "-n", type=click.IntRange(1, 10_000_000), help="measured repetitions")
@click.option("--warmup", type=click.IntRange(0, 1000), help="warm-up rounds (excluded from statistics)")
@click.option("--concurrency", "-c", type=click.IntRange(1, 1024), help="worker processes per provider")
@click.option("--seed", type=int, help="seed for the interleaving order (recorded in the manifest)")
@click.option("--label", default="", help="a label stored with the run")
@click.option("--json", "as_json", is_flag=True, help="print the results document as JSON")
@click.option("--columns", "columns_spec", metavar="LIST", help=COLUMNS_HELP)
@fail_on_option(FAIL_ON_HELP + "; recorded with the run, so farm report and farm watch check it again")
@click.pass_context
def run_cmd(ctx: click.Context, providers: str | None, snippets: str | None, snippets_dir: str | None,
            scenarios: str | None, burst: int | None, repetitions: int | None, warmup: int | None,
            concurrency: int | None, seed: int | None, label: str, as_json: bool, columns_spec: str | None,
            fail_on: tuple[str, ...]) -> None:
    """Schedule a benchmark, follow its progress, and print the results."""
    from farm import gates

    columns = _columns(columns_spec, as_json)
    from farm.snippets import check_env_vars, library, select

    run_gates = gates.parse_all(fail_on)  # a bad gate is refused before anything runs
    config = _config(ctx)
    provider_names = _provider_names(providers, config)
    available = library(snippets_dir or config.snippets_dir)
    chosen = select(available, _split(snippets, "--snippets") or config.plan.snippets)
    check_env_vars(chosen, config.env_vars.pass_to_sandbox)
    from farm import scenarios as scenario_registry

    try:
        scenario_names = scenario_registry.check_names(_split(scenarios, "--scenario") or config.plan.scenarios)
    except ValueError as exc:
        raise ConfigError(f"--scenario: {exc}") from None
    check_burst_flags(scenario_names, burst)
    from farm import runner  # after the checks: a bad flag is refused before Redis and numpy load

    options = runner.RunOptions(
        providers=provider_names, snippets=chosen,
        repetitions=repetitions or burst or config.defaults.repetitions,
        warmup=config.defaults.warmup if warmup is None else warmup,
        concurrency=concurrency or config.defaults.concurrency, seed=seed, label=label,
        scenarios=scenario_names, burst=burst, config_path=ctx.obj["config_path"], gates=[g.text for g in run_gates])

    def started(run_id: str, mode: str) -> None:
        shown = "" if scenario_names == ("cold",) else f"{len(scenario_names)} scenario(s) ({', '.join(scenario_names)}) × "
        print(f"run {run_id} ({mode}): {len(provider_names)} provider(s) × {len(chosen)} snippet(s) × {shown}"
              f"{options.repetitions} repetitions + {options.warmup} warm-up", file=sys.stderr, flush=True)

    from farm.progress import ProgressView

    with ProgressView() as progress:  # the display ends on its own line, Ctrl-C included
        run_id, doc = runner.run(config, options, on_progress=progress, on_started=started,
                                 on_notice=progress.notice, on_attached=progress.attach)
    click.echo(render_document(doc, "json" if as_json else "table", columns))
    enforce_gates(gates.judge(doc))  # the run's recorded gates: the --fail-on given above


@cli.command("watch")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="print the results document as JSON")
@click.option("--columns", "columns_spec", metavar="LIST", help=COLUMNS_HELP)
@fail_on_option(FAIL_ON_HELP + "; the run's recorded gates are checked too")
@click.pass_context
def watch_cmd(ctx: click.Context, run_id: str, as_json: bool, columns_spec: str | None,
              fail_on: tuple[str, ...]) -> None:
    """Re-attach to a run (after Ctrl-C, or from another terminal) and print its results."""
    columns = _columns(columns_spec, as_json)
    from farm import gates, runner

    extra = gates.parse_all(fail_on)
    from farm.progress import ProgressView

    with ProgressView() as progress:
        doc = runner.watch(_config(ctx), run_id, on_progress=progress, config_path=ctx.obj["config_path"],
                           on_notice=progress.notice, on_attached=progress.attach)
    click.echo(render_document(doc, "json" if as_json else "table", columns))
    enforce_gates(gates.judge(doc, extra))


@cli.command("worker")
@click.option("--provider", required=True, help="the provider this worker serves (one queue)")
@click.option("--concurrency", "-c", type=click.IntRange(1, 1024), help="worker processes")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--name", help="Celery node name (default: PROVIDER@HOSTNAME)")
@click.option("--events", is_flag=True, help="send task events from the start (Flower turns them on "
              "by itself within seconds; off, they cost the worker's main process per task)")
@click.pass_context
def worker_cmd(ctx: click.Context, provider: str, concurrency: int | None, loglevel: str,
               name: str | None, events: bool) -> None:
    """Start a provider-pinned worker against the configured Redis (distributed mode)."""
    from farm.embedded import worker_command
    from providers import ProviderError, check_name, get_provider

    config = _config(ctx)
    try:
        check_name(provider)
        get_provider(provider, config.providers.get(provider, {})).check()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except ProviderError as exc:
        raise FarmError(f"cannot serve {provider}: {exc}") from None
    url = config.redis_url()
    if not url:
        raise ConfigError("farm worker needs a shared Redis: set REDIS_URL or redis.url "
                          "(the embedded default starts its own workers inside `farm run`)")
    from farm.runner import connect

    with connect(config):  # unreachable, or wrong password: one line and exit 3, not Celery's endless retries
        pass
    env = {**os.environ, "FARM_REDIS_URL": url, "FARM_PROVIDER": provider}
    if ctx.obj["config_path"]:
        env["FARM_CONFIG"] = ctx.obj["config_path"]
    cmd = worker_command(provider, concurrency or config.defaults.concurrency, loglevel,
                         name or f"{provider}@%h", events)
    os.execve(cmd[0], cmd, env)


def _with_store(ctx: click.Context, fn: Any) -> Any:
    from farm.runner import connect

    with connect(_config(ctx), read_only=True) as (store, _url, _embedded):
        return fn(store)


@cli.command("report")
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--output", "-o", metavar="PATH",
              help="write to PATH instead of stdout ('-' = stdout); html defaults to farm-report-RUN.html")
@click.option("--columns", "columns_spec", metavar="LIST", help=COLUMNS_HELP + " (table, markdown, html)")
@fail_on_option(FAIL_ON_HELP + "; gates recorded with the run (farm run --fail-on, a schedule's fail_on) "
                "are checked too")
@click.pass_context
def report_cmd(ctx: click.Context, run_id: str, fmt: str, output: str | None, columns_spec: str | None,
               fail_on: tuple[str, ...]) -> None:
    """Print a run's results again, in any format; html is written to a self-contained file."""
    if columns_spec is not None and fmt not in TABLE_FORMATS:
        raise click.UsageError(f"--columns chooses the summary table's columns: use it with --format "
                               f"{', '.join(TABLE_FORMATS)}, not {fmt}")
    columns = _columns(columns_spec)
    from farm import gates
    from farm.cli_stats import require_run

    extra = gates.parse_all(fail_on)

    def show(store: Any) -> tuple[str, list[Any]]:
        from farm.report import build

        require_run(store, run_id)
        # raw samples need no baseline, unless a gate may judge a regression against it
        gated = bool(extra) or bool(store.manifest(run_id).get("gates"))
        doc = build(store, run_id, _config(ctx), baseline=fmt != "csv" or gated)
        return render_document(doc, fmt, columns), gates.judge(doc, extra)

    text, outcomes = _with_store(ctx, show)
    target = output or default_output(run_id, fmt)
    if target and target != "-":
        click.echo(write(text, target), err=True)
    else:
        click.echo(text)
    enforce_gates(outcomes)


@cli.command("snippets")
@click.option("--snippets-dir", type=click.Path(), help="extra folder of snippets")
@click.pass_context
def snippets_cmd(ctx: click.Context, snippets_dir: str | None) -> None:
    """List the snippet library (and what a suite in --snippets-dir could not import, and why)."""
    from farm.snippets import Skipped, library

    skipped: list[Skipped] = []
    for s in library(snippets_dir or _config(ctx).snippets_dir, skipped).values():
        flags = ("repeatable" if s.repeatable else "once") + (f", needs {','.join(s.needs)}" if s.needs else "")
        pkgs = f" [packages: {', '.join(s.packages)}]" if s.packages else ""
        click.echo(f"{s.name:24} {s.description} ({flags}){pkgs}")
    for item in skipped:
        click.echo(f"{'SKIPPED':24} {item.where}: {item.reason} (not imported: farm run leaves it out)")


def _register_commands() -> None:
    from farm import cli_ops, cli_publish, cli_ramp, cli_runs, cli_stats

    for command in (cli_runs.runs_cmd, *cli_ops.COMMANDS, *cli_stats.COMMANDS, *cli_ramp.COMMANDS,
                    *cli_publish.COMMANDS):
        cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes become one line on stderr and a non-zero exit, never a traceback."""
    try:
        cli.main(args=argv, prog_name="farm", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        print("farm: interrupted", file=sys.stderr)
        return 130
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx else "farm"
        print(f"farm: {exc.format_message()} (see `{cmd} --help`)", file=sys.stderr)
        return 2
    except click.ClickException as exc:
        print(f"farm: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except FarmError as exc:
        print(f"farm: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("farm: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
