"""Suites written for AI Sandbox Benchmark (AISB), run as farm snippets.

An AISB suite is a folder of ``tests/test_*.py`` (or bare ``test_*.py``) files whose ``test_*()``
functions take one of three forms, all accepted: (1) return ``{"config": {"env_vars", "packages",
"single_run"}, "code": "..."}``; (2) return the code string, marking themselves with attributes
``single_run`` / ``is_info_test`` (often set in their own body, so read after the call); (3) either,
under a module-level ``TEST_META = {slug, description, single_run, info_test}`` whose slug names the
snippet. TEST_META wins over attributes, attributes over config.

The code prints its timing as a JSON object between ``--- BENCHMARK TIMING DATA ---`` and ``--- END
BENCHMARK TIMING DATA ---`` (``internal_execution_time_ms`` plus optional extra metrics). The generated
snippet runs the code unchanged and prints ``FARM_TIMING execution <ms>`` for
``internal_execution_time_ms`` and ``FARM_TIMING <name> <ms>`` for any other positive ``<name>_ms`` or
``<name>_time_ms`` number (0 is AISB's "not measured"); with no block, or no such number in it, it
reports no internal time (AISB's own providers then estimate one; the farm never does).

Loading never runs the suite: its files are parsed and each test's return value is computed
statically (farm/snippets/static_eval.py) — literals, f-strings, string and list operations and
calls of helpers whose bodies are of that kind. A test that needs its code to run to say what it
returns (``os.environ``, an unknown call, a loop) is skipped with a one-line warning, and so is a file
that does not parse and a test whose code is a syntax error (one broken file never sinks a suite; what
was skipped is listed by ``farm snippets``). The helpers
``tests.test_utils`` and ``tests.test_sandbox_utils`` are the suite's own when it has them (read
the same way), else the compatible ones below.
"""

from __future__ import annotations

import ast
import logging
import textwrap
from pathlib import Path
from typing import Any, Callable

from farm.errors import ConfigError
from farm.redact import redact
from farm.requirements import BadRequirement, check_requirements
from farm.snippets import HEADER, MAX_SNIPPET_BYTES, NAME, Skipped, Snippet
from farm.snippets.aisb_helpers import HELPER_EXPORTS
from farm.snippets.aisb_wrapper import parse_aisb_timing, wrap_code  # noqa: F401 (parse_aisb_timing: the suite's API)
from farm.snippets.files import read_regular, regular_files
from farm.snippets.static_eval import MAX_STEPS, NotStatic, Opaque, Scope, StaticFunction, call_static, evaluate

HELPERS = ("test_utils", "test_sandbox_utils")
NOT_TESTS = frozenset({"test_utils.py", "test_sandbox_utils.py", "test_template.py"})  # as AISB skips them
CONFIG_KEYS = ("env_vars", "packages", "single_run", "is_info_test", "info_test")
META_KEYS = ("slug", "description", "single_run", "info_test")


# --- finding a suite without running it --------------------------------------------------------
class Unparsable(ConfigError):
    """A suite file, or the code a test returns, that is not valid Python: skipped, never fatal."""


def _defines_tests(path: Path) -> bool:
    try:
        tree = ast.parse(read_regular(path), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return True  # a test_*.py that cannot be read is still one of the suite's files: load_suite says so
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
               for node in tree.body)


def find_tests(directory: Path) -> tuple[Path, list[Path]] | None:
    """The folder holding AISB test files and the files (``tests/`` first), or None."""
    for folder in (directory / "tests", directory):
        if not folder.is_dir():
            continue
        candidates = regular_files(sorted(folder.glob("test_*.py")))
        files = [p for p in candidates if p.name not in NOT_TESTS and _defines_tests(p)]
        if files:
            return folder, files
    return None


def is_aisb_suite(directory: Path) -> bool:
    """True for an AISB-style folder; a folder with any farm-format snippet is not one."""
    for path in directory.glob("*.py"):
        try:
            if HEADER.search(read_regular(path, errors="replace")):
                return False
        except OSError:
            continue
    return find_tests(directory) is not None


# --- loading: the suite's source is read, never run ------------------------------------------
log = logging.getLogger("farm.snippets")


def load_suite(directory: Path, skipped: list[Skipped] | None = None) -> dict[str, Snippet]:
    """Every test of an AISB suite whose code can be known without running it, as a farm Snippet;
    ConfigError naming the file for an unsupported feature. Nothing of the suite is imported or
    executed. A test whose return value needs its code to run, a file that does not parse and a test
    whose code is a syntax error are skipped with a one-line warning and appended to ``skipped``."""
    found = find_tests(directory)
    if found is None:
        raise ConfigError(f"{directory}: no AI Sandbox Benchmark tests (tests/test_*.py with test_*() functions)")
    folder, files = found
    root = (folder.parent if folder.name == "tests" else folder).resolve()
    left_out: list[Skipped] = []

    def skip(where: str, reason: str, said: str = "{}") -> None:
        left_out.append(Skipped(where, _one_line(reason, 300)))
        log.warning(_one_line(f"farm: warning: {where} skipped, never run: " + said.format(reason)))

    helpers = {name: _helper_scope(folder, name, root, skip) for name in HELPERS}
    snippets: dict[str, Snippet] = {}
    tests_seen = 0
    for path in files:
        try:
            records = _read_file(path.resolve(), root, helpers)
        except Unparsable as exc:
            tests_seen += 1
            skip(_relative(path.resolve(), root), str(exc), "{} (the file does not parse: none of its tests imported)")
            continue
        for record in records:
            if "error" in record:
                raise ConfigError(_one_line(f"{record['file']}: {record['error']}"))
            tests_seen += 1
            where = f"{record['file']}::{record['function']}"
            if "skip" in record:
                skip(where, record["skip"], "its code is not known without running it ({})")
                continue
            try:
                snippet = to_snippet(record, root)
            except Unparsable as exc:
                skip(where, str(exc))
                continue
            if snippet.name in snippets:
                raise ConfigError(f"{record['file']}::{record['function']}: snippet name {snippet.name!r} is also "
                                  f"used by {snippets[snippet.name].extra['test']}: names must be unique (TEST_META "
                                  "slugs, or test function names without one)")
            snippets[snippet.name] = snippet
    if skipped is not None:
        skipped.extend(left_out)
    if not snippets:
        raise ConfigError(f"{directory}: none of its {tests_seen} tests returns code the farm can read without "
                          "running it (the warnings above say why)")
    return snippets


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


MAX_SUITE_FILE_BYTES = 1 << 20


def _parse(path: Path) -> ast.Module:
    try:
        if path.stat().st_size > MAX_SUITE_FILE_BYTES:
            raise Unparsable(f"{path.name}: larger than {MAX_SUITE_FILE_BYTES >> 20} MiB: not a test file")
        return ast.parse(read_regular(path), filename=str(path))
    except SyntaxError as exc:
        raise Unparsable(f"{path.name}: line {exc.lineno}: Python syntax error: {exc.msg}") from None
    except ValueError as exc:  # UnicodeDecodeError, or a NUL byte in the source
        raise Unparsable(f"{path.name}: not Python source: {exc.__class__.__name__}") from None
    except OSError as exc:
        raise Unparsable(f"{path.name}: cannot read: {exc.__class__.__name__}") from None


def _helper_scope(folder: Path, name: str, root: Path, skip: Callable[..., None]) -> Scope:
    """The suite's own helper module, read statically; else the farm's compatible helpers. A helper
    that does not parse binds nothing: the tests that import from it are skipped, the rest load."""
    own = folder / f"{name}.py"
    if own.is_file():
        scope = Scope({})
        try:
            tree = _parse(own)
        except Unparsable as exc:
            skip(_relative(own.resolve(), root), str(exc), "{} (a helper module: the tests importing from it "
                 "are skipped too)")
            return scope
        _bind_module(tree, scope, {}, own.name)
        return scope
    return Scope(HELPER_EXPORTS[name]())


def _imported(node: ast.ImportFrom | ast.Import, helpers: dict[str, Scope]) -> dict[str, Any]:
    """Names an import binds: helper names from the helper modules, dedent, else opaque."""
    bound: dict[str, Any] = {}
    if isinstance(node, ast.ImportFrom):
        module = (node.module or "").split(".")[-1]
        for alias in node.names:
            name = alias.asname or alias.name
            if module in helpers and alias.name in helpers[module].names:
                bound[name] = helpers[module].names[alias.name]
            elif node.module == "textwrap" and alias.name == "dedent":
                bound[name] = textwrap.dedent
            else:
                bound[name] = Opaque(f"imported from {node.module or '.'}")
    else:
        for alias in node.names:
            bound[(alias.asname or alias.name).split(".")[0]] = Opaque(f"the module {alias.name}")
    return bound


def _bind_module(tree: ast.Module, scope: Scope, helpers: dict[str, Scope], where: str) -> None:
    """Bind a module's top-level names without running it: functions, static values, imports."""
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            scope.names.update(_imported(stmt, helpers))
        elif isinstance(stmt, ast.FunctionDef):
            scope.names[stmt.name] = StaticFunction(stmt, scope)
        elif isinstance(stmt, ast.AsyncFunctionDef):
            scope.names[stmt.name] = Opaque("an async function")
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            try:
                value = evaluate(stmt.value, Scope({}, parent=scope, budget=[MAX_STEPS]))
            except NotStatic as exc:
                value = Opaque(f"set by code that would have to run ({exc})")
            for target in targets:
                if isinstance(target, ast.Name):
                    scope.names[target.id] = value
                elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                      and isinstance(scope.names.get(target.value.id), StaticFunction)):
                    scope.names[target.value.id].attrs[target.attr] = value  # test_x.single_run = True
        # every other statement (calls, loops, prints) is never run, and binds nothing


def _read_file(path: Path, root: Path, helpers: dict[str, Scope]) -> list[dict[str, Any]]:
    """One test file's tests as records: values, ``skip`` (not static) or ``error`` (unsupported)."""
    rel = _relative(path, root)
    tree = _parse(path)
    scope = Scope({})
    _bind_module(tree, scope, helpers, rel)
    meta = scope.names.get("TEST_META")
    if isinstance(meta, Opaque):
        return [{"file": rel, "error": f"TEST_META is not a literal: {meta.what}"}]
    module_doc = ast.get_docstring(tree) or ""
    records = []
    for fname, func in sorted(scope.names.items()):
        if not fname.startswith("test_") or any(fname == h for h in HELPERS):
            continue
        where = f"{rel}::{fname}"
        if isinstance(func, Opaque) and func.what == "an async function":
            return [{"file": where, "error": "async test functions are not supported: return the code directly"}]
        if not isinstance(func, StaticFunction) or func.scope is not scope:
            if isinstance(func, Opaque):
                records.append({"file": rel, "function": fname, "skip": func.what})
            continue  # helpers imported from elsewhere are not this file's tests
        node = func.node
        required = node.args.args[:len(node.args.args) - len(node.args.defaults)]
        if required:
            return [{"file": where, "error": f"test functions must take no arguments (it needs {required[0].arg!r})"}]
        if node.decorator_list:
            records.append({"file": rel, "function": fname, "skip": f"line {node.lineno}: decorated"})
            continue
        try:
            result = call_static(func, [], {})
        except NotStatic as exc:
            records.append({"file": rel, "function": fname, "skip": str(exc)})
            continue
        if isinstance(result, dict):
            extra = sorted(set(result) - {"config", "code"})
            if extra:
                return [{"file": where, "error": f"returned key {extra[0]!r}: only 'config' and 'code' are supported"}]
            config, code = result.get("config"), result.get("code")
        elif isinstance(result, str):
            config, code = {}, result
        else:
            return [{"file": where, "error": f"returned {type(result).__name__}: expected a dict with 'config' "
                                             "and 'code', or the code as a string"}]
        doc = (ast.get_docstring(node) or module_doc).strip().splitlines()
        records.append({"file": rel, "function": fname, "meta": meta, "config": config, "code": code,
                        "doc": doc[0] if doc else "",
                        "attrs": {k: v for k, v in func.attrs.items() if k in ("single_run", "is_info_test", "info_test")}})
    return records


def _one_line(text: str, limit: int = 400) -> str:
    """One redacted line: a suite's exception text may quote anything, secrets included."""
    return " ".join(redact(str(text)).split())[:limit]


def _flag(name: str, value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {name} must be True or False, not {value!r}"[:300])
    return value


def to_snippet(record: dict[str, Any], root: Path) -> Snippet:
    """Validate one loaded test and build its Snippet; unsupported features raise ConfigError."""
    where = f"{record['file']}::{record['function']}"
    meta = record.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise ConfigError(f"{record['file']}: TEST_META must be a dict, not {type(meta).__name__}")
    meta = meta or {}
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise ConfigError(f"{record['file']}: TEST_META key {unknown[0]!r} is not supported; "
                          f"supported: {', '.join(META_KEYS)}")
    config = record.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: 'config' must be a dict, not {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{where}: config key {unknown[0]!r} is not supported by the farm; "
                          f"supported: {', '.join(CONFIG_KEYS)}")
    packages = config.get("packages") or []
    if not isinstance(packages, list) or not all(isinstance(p, str) and p.strip() for p in packages):
        raise ConfigError(f"{where}: config 'packages' must be a list of package names")
    try:
        packages = check_requirements(packages, allowed_url_prefixes=None)
    except BadRequirement as exc:
        raise ConfigError(f"{where}: config 'packages': {exc}") from None
    env_vars = config.get("env_vars") or []
    if not isinstance(env_vars, list) or not all(isinstance(v, str) and v.isidentifier() for v in env_vars):
        raise ConfigError(f"{where}: config 'env_vars' must be a list of environment variable names")

    attrs = record.get("attrs") or {}
    single = next((_flag(f"{src} single_run", v, where) for src, v in (
        ("TEST_META", meta.get("single_run")), ("attribute", attrs.get("single_run")),
        ("config", config.get("single_run"))) if v is not None), False)
    info = next((_flag(f"{src} info flag", v, where) for src, v in (
        ("TEST_META", meta.get("info_test")), ("attribute", attrs.get("is_info_test")),
        ("attribute", attrs.get("info_test")), ("config", config.get("is_info_test")),
        ("config", config.get("info_test"))) if v is not None), False)

    function = record["function"]
    name = meta.get("slug") or (function[len("test_"):] if function.startswith("test_") else function)
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{where}: snippet name {name!r} (from the {'TEST_META slug' if meta.get('slug') else 'function name'})"
                          " must be lower-case letters, digits, '_', '-' or '.'")
    code = record.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ConfigError(f"{where}: returned no code")
    if len(code.encode()) > MAX_SNIPPET_BYTES:
        raise ConfigError(f"{where}: code is larger than {MAX_SNIPPET_BYTES // 1024} KiB")
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise Unparsable(f"the code it returns has a Python syntax error at line {exc.lineno}: "
                         f"{exc.msg}") from None
    except ValueError as exc:  # a NUL byte in the code
        raise Unparsable(f"the code it returns is not Python source: {exc}") from None
    description = meta.get("description") or record.get("doc") or ""
    return Snippet(name=name, code=wrap_code(code, where, info), description=_one_line(description, 200),
                   packages=tuple(p.strip() for p in packages), repeatable=not (single or info),
                   source=f"{root / record['file']}::{function}",
                   extra={"format": "aisb", "test": where, "env_vars": list(env_vars), "info": info})
