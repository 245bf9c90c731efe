"""``farm ramp``: the plan at rising concurrency levels, and the knee (farm/ramp.py); registered by
farm/cli.py. Heavy modules are imported inside the command, so ``farm --help`` stays light."""

from __future__ import annotations

import json
import sys

import click

from farm.errors import ConfigError


def parse_levels(text: str) -> list[int]:
    """"1,2,4,8" -> [1, 2, 4, 8]: positive integers, ascending, no repeats; else one-line error."""
    levels = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise ConfigError(f"--levels: {part!r} is not a positive whole number (e.g. --levels 1,2,4,8,16)")
        levels.append(int(part))
    if levels != sorted(set(levels)):
        raise ConfigError(f"--levels must rise without repeats, e.g. 1,2,4,8,16 (got {text})")
    if len(levels) < 2:
        raise ConfigError("--levels needs at least two levels: the first is the band the others are judged by")
    return levels


@click.command("ramp")
@click.option("--providers", help="comma-separated providers (default: plan.providers in config)")
@click.option("--snippets", help="comma-separated snippet names (default: plan.snippets)")
@click.option("--snippets-dir", type=click.Path(), help="extra folder of snippets")
@click.option("--levels", default="1,2,4,8,16", show_default=True,
              help="concurrency levels: samples of each provider in flight at once")
@click.option("--per-level", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="measured samples per snippet at each level")
@click.option("--tolerance", type=click.FloatRange(0, 10), default=0.25, show_default=True,
              help="how far above level 1's p95 interval a level's p95 may be and stay in the band")
@click.option("--max-processes", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="most worker processes per provider the embedded farm starts")
@click.option("--seed", type=int, help="seed for the interleaving order")
@click.option("--html", "html_path", type=click.Path(), help="write the ramp's HTML report here "
              "(default: farm-ramp-<id>.html)")
@click.option("--json", "as_json", is_flag=True, help="print the ramp as JSON instead of a table")
@click.pass_context
def ramp_cmd(ctx: click.Context, providers: str | None, snippets: str | None, snippets_dir: str | None,
             levels: str, per_level: int, tolerance: float, max_processes: int, seed: int | None,
             html_path: str | None, as_json: bool) -> None:
    """Run the plan at each concurrency level and mark where each provider leaves its level-1 band."""
    from farm.cli import _config, _provider_names, _split
    from farm.snippets import check_env_vars, library, select

    chosen_levels = parse_levels(levels)
    config = _config(ctx)
    provider_names = _provider_names(providers, config)
    chosen = select(library(snippets_dir or config.snippets_dir), _split(snippets, "--snippets") or config.plan.snippets)
    check_env_vars(chosen, config.env_vars.pass_to_sandbox)
    from farm.ramp_runner import RampOptions, ramp_table, run_ramp
    from farm.render import write
    from farm.render.ramp_html import render as render_html

    options = RampOptions(providers=provider_names, snippets=chosen, levels=chosen_levels, per_level=per_level,
                          tolerance=tolerance, seed=seed, config_path=ctx.obj["config_path"],
                          max_processes=max_processes)
    result = run_ramp(config, options, on_level=lambda level, run_id: print(
        f"level {level}: run {run_id}", file=sys.stderr, flush=True))
    data = result.to_json()
    print(write(render_html(data), html_path or f"farm-ramp-{result.ramp_id}.html"), file=sys.stderr)
    click.echo(json.dumps(data, indent=2) if as_json else ramp_table(data))


COMMANDS = (ramp_cmd,)
