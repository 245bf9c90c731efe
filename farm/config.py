"""config.yml: validated settings. Secrets never live here; they come from the environment or .env."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from farm.errors import ConfigError, RedisUnavailable

SECRET_NAME = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential)", re.I)


# Bounds of what config.yml may hold: YAML aliases can make a small text expand enormously (a
# "billion laughs"), and deep nesting exhausts the parser's recursion.
MAX_DEPTH = 32
EXPANSION_FLOOR = 256 * 1024   # bytes any config may expand to
EXPANSION_RATIO = 64           # beyond the floor: this many times the text's own size
WEEK_S = 7 * 86400


class Strict(BaseModel):
    # allow_inf_nan: `.inf` and `.nan` are YAML floats, never a usable timeout, price or limit
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RedisSettings(Strict):
    url: str | None = Field(None, description="Redis URL; unset = embedded redis-server")
    data_dir: str = Field(".farm", description="where the embedded Redis keeps its data")


class Timeouts(Strict):
    """Per-phase limits in seconds."""

    create: float = Field(120, gt=0, le=WEEK_S)
    ready: float = Field(60, gt=0, le=WEEK_S)
    setup: float = Field(600, gt=0, le=WEEK_S)
    run: float = Field(120, gt=0, le=WEEK_S)
    destroy: float = Field(60, gt=0, le=WEEK_S)
    task: float | None = Field(None, gt=0, le=WEEK_S, description="soft limit for a whole sample; default: "
                               "the sum of the phases plus 10 s")

    def task_soft_limit(self) -> float:
        """Soft time limit for one sample: every phase at its limit, plus slack for the harness."""
        if self.task is not None:
            return self.task
        return self.create + self.ready + self.setup + self.run + self.destroy + 10

    def task_hard_limit(self) -> float:
        return self.task_soft_limit() + self.destroy + 30


class Defaults(Strict):
    repetitions: int = Field(20, ge=1, le=10_000_000)
    warmup: int = Field(1, ge=0, le=1000)
    concurrency: int = Field(2, ge=1, le=1024, description="worker processes per provider")
    max_attempts: int = Field(3, ge=1, le=20, description="executions of one sample before it is failed")
    retries: int = Field(2, ge=0, le=10, description="retries of a transient create failure")
    backoff_s: float = Field(1.0, ge=0, le=300, description="first retry delay; doubles, with jitter")
    deadline_s: float | None = Field(None, gt=0, le=366 * 86400, description="finalize a run this long after it starts")
    lost_after_s: float = Field(30, gt=0, le=86400, description="re-send a task unclaimed this long and "
                                "no longer queued (its worker died holding it)")
    sweep_grace_s: float = Field(60, ge=0, le=WEEK_S, description="farm sweep deletes a sandbox of a live run "
                                 "only this long after its attempt was first seen dead (lease lapsed)")
    stall_after_s: float | None = Field(None, gt=0, le=WEEK_S, description="farm run/watch report the run "
                                        "stalled (exit 6) after this long with no sample committed; default: "
                                        "a sample's hard time limit + its lease + lost_after_s + 60 s")
    seed: int | None = None
    timeouts: Timeouts = Timeouts()


def _scenario_names(names: list[str] | None) -> list[str] | None:
    """Registered lifecycle scenarios (farm/scenarios.py), with a did-you-mean for a misspelt one."""
    if names is None:
        return None
    from farm import scenarios

    return list(scenarios.check_names(names))


class PlanDefaults(Strict):
    providers: list[str] = Field(["local"], min_length=1)
    snippets: list[str] = Field(["hello", "primes", "file_io"], min_length=1)
    scenarios: list[str] = Field(["cold"], min_length=1, description="lifecycle scenarios (docs/scenarios.md)")

    @field_validator("scenarios")
    @classmethod
    def _scenarios(cls, names: list[str] | None) -> list[str] | None:
        return _scenario_names(names)


class EnvVars(Strict):
    pass_to_sandbox: list[str] = Field(default_factory=list)

    @field_validator("pass_to_sandbox")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return names


class Statistics(Strict):
    """How results are computed and compared."""

    exact_limit: int = Field(100_000, ge=100, description="above this many values per series, use sketches")
    sketch_relative_accuracy: float = Field(0.01, gt=0, lt=0.5)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    compare_alpha: float = Field(0.05, gt=0, lt=0.5, description="false-discovery rate (Benjamini–Hochberg) "
                                 "across the rows of one comparison")
    compare_threshold: float = Field(0.02, ge=0, lt=1, description="smallest relative change in p50 worth a "
                                     "slower/faster verdict; inside it is equivalent")
    baseline_runs: int = Field(5, ge=1, le=100, description="runs in the rolling baseline for nightly runs")
    changepoint_alpha: float = Field(0.01, gt=0, lt=0.5, description="significance of a change point in a "
                                     "nightly series (E-divisive, permutation test); a flat series is "
                                     "flagged with about this probability")
    changepoint_permutations: int = Field(199, ge=19, le=9999, description="permutations per test; "
                                          "must allow a p-value as small as changepoint_alpha")
    changepoint_min_size: int = Field(4, ge=2, le=100, description="fewest runs on each side of a change "
                                      "point: a change shows once this many runs came after it")
    changepoint_runs: int = Field(365, ge=10, le=5000, description="recent runs scanned for nightly series")

    @model_validator(mode="after")
    def _permutations_reach_alpha(self) -> "Statistics":
        if 1 / (1 + self.changepoint_permutations) > self.changepoint_alpha:
            raise ValueError(f"changepoint_permutations {self.changepoint_permutations} cannot give a p-value "
                             f"as small as changepoint_alpha {self.changepoint_alpha}: use at least "
                             f"{int(-(-1 // self.changepoint_alpha)) - 1}")
        return self


class Pricing(Strict):
    """A provider's configured prices; cost figures are estimates from these, labelled as such."""

    per_hour: float | None = Field(None, ge=0, description="price per sandbox-hour")
    per_sandbox: float | None = Field(None, ge=0, description="price per sandbox created")
    currency: str = "USD"


class Schedule(Strict):
    """A named schedule: a benchmark run (or a sweep, or a site rebuild) fired by `farm beat`."""

    kind: Literal["run", "sweep", "publish"] = "run"
    cron: str | None = Field(None, description="crontab 'minute hour day-of-month month day-of-week'")
    every_s: float | None = Field(None, ge=1, le=366 * 86400, description="fixed interval instead of cron")
    timezone: str = "UTC"
    providers: list[str] | None = Field(None, min_length=1)
    snippets: list[str] | None = Field(None, min_length=1)
    scenarios: list[str] | None = Field(None, min_length=1, description="default: plan.scenarios")
    repetitions: int | None = Field(None, ge=1, le=10_000_000)
    warmup: int | None = Field(None, ge=0, le=1000)
    concurrency: int | None = Field(None, ge=1, le=1024)
    fail_on: list[str] = Field(default_factory=list, description="CI gates recorded with each run it starts "
                               "(the --fail-on syntax); farm report exits 5 when one is breached")
    out: str | None = Field(None, description="kind: publish: the site's folder (relative: to beat's working folder)")
    source: str | None = Field(None, description="kind: publish: only this schedule's runs (default: every schedule)")
    since_days: float = Field(90, gt=0, le=3660, description="kind: publish: scheduled runs this recent")
    stale_after_h: float = Field(36, gt=0, le=24 * 366, description="kind: publish: flag the site stale after")
    reports: int = Field(30, ge=0, le=10_000, description="kind: publish: newest run reports published")

    @field_validator("fail_on")
    @classmethod
    def _gates(cls, expressions: list[str]) -> list[str]:
        from farm.gates import parse

        try:
            return [parse(e).text for e in expressions]
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("scenarios")
    @classmethod
    def _scenarios(cls, names: list[str] | None) -> list[str] | None:
        return _scenario_names(names)

    @model_validator(mode="after")
    def _one_trigger(self) -> "Schedule":
        if (self.cron is None) == (self.every_s is None):
            raise ValueError("give exactly one of cron or every_s")
        if self.kind in ("sweep", "publish") and self.fail_on:
            raise ValueError(f"a {self.kind} has no results to gate: fail_on belongs to kind: run")
        if self.kind == "publish" and not self.out:
            raise ValueError("kind: publish needs out: the folder to write the site into")
        if self.cron is not None:
            from farm import cron

            cron.check(self.cron)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}: use an IANA name like Europe/Berlin") from None
        return self


class Beat(Strict):
    starting_deadline_s: float = Field(3600, gt=0, description="a run missed by more than this is skipped")


class FarmConfig(Strict):
    redis: RedisSettings = RedisSettings()
    defaults: Defaults = Defaults()
    plan: PlanDefaults = PlanDefaults()
    env_vars: EnvVars = EnvVars()
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    snippets_dir: str | None = None
    statistics: Statistics = Statistics()
    pricing: dict[str, Pricing] = Field(default_factory=dict)
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    beat: Beat = Beat()

    @field_validator("providers")
    @classmethod
    def _no_secrets(cls, providers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, settings in providers.items():
            if not isinstance(settings, dict):
                raise ValueError(f"providers.{name} must be a mapping of settings")
            for key in settings:
                if SECRET_NAME.search(str(key)):
                    raise ValueError(f"providers.{name}.{key} looks like a secret: set it in the "
                                     "environment or .env, never in config.yml")
            # each provider's own settings model: a bad setting fails here, before any task is sent
            from providers import UnknownProvider, validate_settings

            try:
                validate_settings(name, settings)
            except UnknownProvider as exc:
                raise ValueError(f"providers.{name}: {exc}") from None
        return providers

    def redis_url(self) -> str | None:
        """REDIS_URL from the environment wins over redis.url; None means embedded. REDIS_PASSWORD,
        when set, is added to a URL that has none, percent-encoded (any character is safe)."""
        url = os.environ.get("REDIS_URL") or self.redis.url or None
        return with_password(check_redis_url(url), os.environ.get("REDIS_PASSWORD")) if url else None


REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+socket")


def check_redis_url(url: str) -> str:
    """``url`` if it is a Redis URL (``redis+socket://`` spelled ``unix://``, as redis-py wants it);
    anything else would be read by Celery as another broker (``garbage`` → ``amqp://garbage``)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        from farm.redact import redact

        raise RedisUnavailable(f"cannot reach Redis at {redact(url)}: not a Redis URL (it must start with "
                               f"{', '.join(s + '://' for s in REDIS_SCHEMES)})")
    if scheme == "redis+socket":
        return "unix://" + url.split("://", 1)[1]
    return url


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` inserted (percent-encoded) unless it already carries one."""
    parts = urlsplit(url)
    if not password or parts.password is not None or not parts.hostname:
        return url
    user = quote(parts.username, safe="") if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{parts.netloc}"))


def _first_error(exc: ValidationError, model: type[BaseModel]) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        parent: Any = model
        for part in err["loc"][:-1]:
            field = parent.model_fields.get(str(part)) if isinstance(parent, type) else None
            parent = field.annotation if field else None
        known = list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {loc!r}{hint}; valid keys here: {', '.join(known)}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def parse_config(data: Any, source: str = "config") -> FarmConfig:
    """Validate already-parsed YAML; raise ConfigError with one line naming the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(data).__name__}")
    try:
        return FarmConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc, FarmConfig)}") from None


def config_path(explicit: str | None = None) -> Path | None:
    """--config, then FARM_CONFIG, then ./config.yml; None when none exists (built-in defaults)."""
    chosen = explicit or os.environ.get("FARM_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"config file {chosen} not found: pass an existing file to --config")
        return path
    default = Path("config.yml")
    return default if default.is_file() else None


def load_config(explicit: str | None = None) -> FarmConfig:
    """Load and validate config.yml (or defaults), after loading .env into the environment."""
    load_dotenv_file()
    path = config_path(explicit)
    if path is None:
        return FarmConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc.__class__.__name__}") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    check_size(data, len(text.encode("utf-8")), str(path))
    config = parse_config(data, str(path))
    # The data folder belongs with the config, not with whichever folder the command runs in.
    if not Path(config.redis.data_dir).is_absolute():
        config.redis.data_dir = str(path.resolve().parent / config.redis.data_dir)
    return config


def check_size(data: Any, text_bytes: int, source: str) -> None:
    """Reject YAML whose aliases expand it far beyond its text, or that nests deeper than MAX_DEPTH.
    Walks iteratively with a budget, so a bomb is stopped without ever being expanded."""
    budget = max(EXPANSION_FLOOR, EXPANSION_RATIO * text_bytes)
    used = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(node, dict):
            used += 2
            for key, value in node.items():
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            used += 2
            stack.extend((item, depth + 1) for item in node)
        else:
            used += len(str(node)) + 2
        if used > budget:
            raise ConfigError(f"{source}: expands to more than {budget:,} bytes (YAML aliases?): "
                              "write the values out instead of repeating anchors")


def load_dotenv_file() -> None:
    """Secrets from ./.env fill the environment; variables already set win."""
    env_file = Path(os.environ.get("FARM_ENV_FILE", ".env"))
    if env_file.is_file():
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)
