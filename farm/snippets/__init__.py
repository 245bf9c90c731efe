"""Snippets: the Python programs measured inside sandboxes.

A snippet is a Python file that starts with a declared header in the PEP 723 style:

    # /// farm
    # name = "primes"
    # description = "Count primes below 200,000 (CPU-bound)"
    # packages = []          # installed in the separately timed setup phase, never in the run
    # repeatable = true      # false: run once per provider whatever --repetitions says
    # needs = []             # host features the provider must offer, e.g. ["network"]
    # ///

A snippet may report its own measured section by printing lines of the form
``FARM_TIMING <phase> <milliseconds>``; each becomes a phase ``internal.<phase>`` in the results.
A snippet that finds a precondition missing (say, no network) prints ``FARM_SKIP <reason>`` and
exits 0: the sample is recorded as ``skipped`` with that reason, never as a zero. A snippet that
reports facts about its environment (the library's ``system_info``) prints ``FARM_FACT <key> <value>``
lines; ``parse_facts`` reads them, and the run records them per provider.

``--snippets-dir`` also accepts a suite written for AI Sandbox Benchmark: see ``farm.snippets.compat``.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from farm.errors import ConfigError
from farm.requirements import BadRequirement, check_requirements
from farm.snippets.files import NotRegular, log, read_regular

LIBRARY_DIR = Path(__file__).parent / "library"
HEADER = re.compile(r"^# /// farm\s*$(?P<body>.*?)^# ///\s*$", re.M | re.S)
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
KNOWN_NEEDS = frozenset({"network"})
FACT_LINE = re.compile(r"^FARM_FACT[ \t]+(?P<key>[a-z][a-z0-9_.]{0,47})[ \t]+(?P<value>\S[^\n]*?)[ \t]*$", re.M)
MAX_FACTS, MAX_FACT_CHARS = 64, 200
TIMING_LINE = re.compile(r"^FARM_TIMING\s+(?P<phase>[A-Za-z0-9_.-]{1,40})\s+(?P<ms>[0-9]+(?:\.[0-9]+)?)\s*$", re.M)
MAX_SNIPPET_BYTES = 256 * 1024


@dataclass(frozen=True)
class Snippet:
    name: str
    code: str
    description: str = ""
    packages: tuple[str, ...] = ()
    repeatable: bool = True
    needs: tuple[str, ...] = ()
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()[:16]

    def to_manifest(self) -> dict[str, Any]:
        data = asdict(self)
        data["packages"] = list(self.packages)
        data["needs"] = list(self.needs)
        data["digest"] = self.digest
        return data

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> "Snippet":
        return cls(name=data["name"], code=data["code"], description=data.get("description", ""),
                   packages=tuple(data.get("packages", ())), repeatable=data.get("repeatable", True),
                   needs=tuple(data.get("needs", ())), source=data.get("source", ""),
                   extra=data.get("extra", {}))


def parse_internal_timings(output: str) -> dict[str, float]:
    """``FARM_TIMING phase ms`` lines the snippet printed; nothing is invented when there are none."""
    return {m["phase"]: float(m["ms"]) for m in TIMING_LINE.finditer(output or "")}


def parse_facts(output: str) -> dict[str, str]:
    """``FARM_FACT key value`` lines as {key: value}: strings, last one wins, secrets redacted."""
    from farm.redact import redact

    facts: dict[str, str] = {}
    for m in FACT_LINE.finditer(output or ""):
        if m["key"] in facts or len(facts) < MAX_FACTS:
            facts[m["key"]] = redact(m["value"].strip())[:MAX_FACT_CHARS]
    return facts


def check_env_vars(snippets: Iterable[Snippet], allowed: Iterable[str]) -> None:
    """Every environment variable a snippet names (``extra["env_vars"]``) must be allow-listed."""
    allowed = set(allowed)
    for snippet in snippets:
        missing = [name for name in snippet.extra.get("env_vars", ()) if name not in allowed]
        if missing:
            raise ConfigError(f"snippet {snippet.name!r} needs environment variable {missing[0]}: add it to "
                              "env_vars.pass_to_sandbox in config.yml (only listed variables reach sandboxes)")


def parse_snippet(text: str, source: str) -> Snippet:
    """Parse one snippet file; raise ConfigError naming the file and the problem."""
    if len(text.encode()) > MAX_SNIPPET_BYTES:
        raise ConfigError(f"{source}: snippet is larger than {MAX_SNIPPET_BYTES // 1024} KiB")
    match = HEADER.search(text)
    if not match:
        raise ConfigError(f"{source}: no '# /// farm' header: start the file with the header "
                          "described in farm/snippets/__init__.py")
    body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                     for line in match["body"].strip("\n").splitlines())
    try:
        meta = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: header is not valid TOML: {exc}") from None
    unknown = set(meta) - {"name", "description", "packages", "repeatable", "needs"}
    if unknown:
        raise ConfigError(f"{source}: unknown header key {sorted(unknown)[0]!r}; valid: "
                          "name, description, packages, repeatable, needs")
    name = meta.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{source}: header 'name' must be lower-case letters, digits, '_', '-' or '.'")
    packages = meta.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) and p.strip() for p in packages):
        raise ConfigError(f"{source}: header 'packages' must be a list of package names")
    try:
        packages = check_requirements(packages, allowed_url_prefixes=None)
    except BadRequirement as exc:
        raise ConfigError(f"{source}: header 'packages': {exc}") from None
    needs = meta.get("needs", [])
    if not isinstance(needs, list) or not set(needs) <= KNOWN_NEEDS:
        raise ConfigError(f"{source}: header 'needs' must be a list drawn from {sorted(KNOWN_NEEDS)}")
    repeatable = meta.get("repeatable", True)
    if not isinstance(repeatable, bool):
        raise ConfigError(f"{source}: header 'repeatable' must be true or false")
    try:
        ast.parse(text, filename=source)
    except SyntaxError as exc:
        raise ConfigError(f"{source}: line {exc.lineno}: Python syntax error: {exc.msg}") from None
    return Snippet(name=name, code=text, description=str(meta.get("description", "")),
                   packages=tuple(packages), repeatable=repeatable, needs=tuple(needs), source=source)


def load_dir(directory: Path) -> dict[str, Snippet]:
    """Every ``*.py`` snippet in a folder, by name; duplicate names are an error."""
    if not directory.is_dir():
        raise ConfigError(f"snippets folder {directory} does not exist")
    found: dict[str, Snippet] = {}
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            text = read_regular(path)
        except NotRegular:
            log.warning("farm: warning: skipping %s: not a regular file", path)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read snippet: {exc.__class__.__name__}") from None
        snippet = parse_snippet(text, str(path))
        if snippet.name in found:
            raise ConfigError(f"{path}: snippet name {snippet.name!r} is also used by {found[snippet.name].source}")
        found[snippet.name] = snippet
    return found


@dataclass(frozen=True)
class Skipped:
    """A test of a suite that was not imported (one broken file never sinks the suite), and why."""
    where: str   # "tests/test_x.py::test_y", or the file when it could not be parsed at all
    reason: str  # one line


def library(extra_dir: str | Path | None = None, skipped: list[Skipped] | None = None) -> dict[str, Snippet]:
    """The built-in library, plus (overriding by name) the snippets in ``extra_dir``; what a suite
    there could not import is appended to ``skipped`` (each also logged as a one-line warning)."""
    snippets = load_dir(LIBRARY_DIR)
    if extra_dir:
        snippets.update(load_extra_dir(Path(extra_dir), skipped))
    return snippets


def load_extra_dir(directory: Path, skipped: list[Skipped] | None = None) -> dict[str, Snippet]:
    """A user folder: farm-format snippets, or a suite written for AI Sandbox Benchmark."""
    from farm.snippets import compat

    if not directory.is_dir():
        raise ConfigError(f"snippets folder {directory} does not exist")
    if compat.is_aisb_suite(directory):
        return compat.load_suite(directory, skipped)
    if not any(directory.glob("*.py")):
        raise ConfigError(f"snippets folder {directory} has no snippets: expected *.py files with a "
                          "'# /// farm' header, or AI Sandbox Benchmark tests (tests/test_*.py)")
    return load_dir(directory)


def select(available: dict[str, Snippet], names: Iterable[str] | None) -> list[Snippet]:
    """Pick snippets by name ('all' for everything); unknown names get a "did you mean"."""
    wanted = list(names or [])
    if wanted == ["all"]:
        return [available[n] for n in sorted(available)]
    chosen = []
    for name in wanted:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown snippet {name!r}{hint}; known: {', '.join(sorted(available))}")
        if available[name] not in chosen:
            chosen.append(available[name])
    if not chosen:
        raise ConfigError("no snippets selected: pass --snippets NAME[,NAME] or --snippets all")
    return chosen
