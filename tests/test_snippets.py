"""The snippet library's declarations, FARM_FACT parsing, env-var allow-listing and extra folders.

No sandbox runs here (tests/test_snippet_library.py runs every snippet through a real worker); the
`farm snippets` check runs the real CLI in a subprocess. Nothing is faked.
"""

import re

import pytest

from farm.errors import ConfigError
from farm.snippets import (LIBRARY_DIR, TIMING_LINE, check_env_vars, library, load_extra_dir,
                           parse_facts, parse_snippet)
from tests.harness import farm_cli

# The library the issue asks for: name -> (packages, repeatable, needs)
EXPECTED = {
    "hello": ((), True, ()),
    "list_directory": ((), True, ()),
    "primes": ((), True, ()),
    "cpu_intensive": ((), True, ()),
    "memory_alloc": ((), True, ()),
    "file_io": ((), True, ()),
    "sqlite_ops": ((), True, ()),
    "startup_time": ((), True, ()),
    "package_install": ((), True, ("network",)),
    "fft_numpy": (("numpy", "scipy"), True, ()),
    "fft_multiprocess": (("numpy",), True, ()),
    "system_info": ((), False, ()),
    "network_egress": ((), True, ("network",)),
    "stability": ((), False, ()),
}


def test_library_has_every_snippet_with_its_declared_packages_and_flags():
    lib = library()
    assert set(lib) == set(EXPECTED)
    for name, (packages, repeatable, needs) in EXPECTED.items():
        s = lib[name]
        assert (s.packages, s.repeatable, s.needs) == (packages, repeatable, needs), name
        assert len(s.description) > 20, name
        assert s.source.endswith(f"{name}.py"), "file name and snippet name agree"


def test_library_code_prints_only_valid_timing_phases_and_never_names_a_registry_host():
    for path in sorted(LIBRARY_DIR.glob("*.py")):
        text = path.read_text()
        parse_snippet(text, str(path))
        for phase in re.findall(r'FARM_TIMING (\w+|\{[^}]+\})', text):
            if not phase.startswith("{"):
                assert TIMING_LINE.match(f"FARM_TIMING {phase} 1.0"), (path.name, phase)
        for host in ("pypi.org", "pythonhosted", "files.", "registry.npmjs"):
            assert host not in text, f"{path.name} names {host}"


def test_farm_snippets_cli_lists_the_library(tmp_path):
    result = farm_cli("snippets", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(EXPECTED) <= set(lines)
    assert "[packages: numpy, scipy]" in lines["fft_numpy"] and "(repeatable)" in lines["fft_numpy"]
    assert "(once)" in lines["system_info"] and "needs network" in lines["network_egress"]


def test_parse_facts_reads_fact_lines_and_ignores_everything_else(monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "s3cr3t-value-123")
    out = ("noise\nFARM_FACT cpu_count 4\nFARM_FACT distro Debian GNU/Linux 12 (bookworm)  \n"
           "FARM_FACT Upper nope\nFARM_FACT memory_total_bytes\nFARM_FACT cpu_count 8\n"
           "  FARM_FACT indented no\nFARM_FACT token s3cr3t-value-123\nFARM_FACT os Linux")
    assert parse_facts(out) == {"cpu_count": "8", "distro": "Debian GNU/Linux 12 (bookworm)",
                                "token": "***", "os": "Linux"}
    assert parse_facts("") == {} and parse_facts(None) == {}
    many = "\n".join(f"FARM_FACT k{i} {i}" for i in range(100))
    assert len(parse_facts(many)) == 64
    assert len(parse_facts("FARM_FACT long " + "x" * 1000)["long"]) == 200


def test_check_env_vars_requires_allow_listed_names():
    snippet = parse_snippet('# /// farm\n# name = "x"\n# ///\nprint(1)\n', "x.py")
    needy = type(snippet)(name="needy", code="print(1)", extra={"env_vars": ["MY_VAR", "OTHER"]})
    check_env_vars([snippet, needy], ["MY_VAR", "OTHER"])
    with pytest.raises(ConfigError) as err:
        check_env_vars([needy], ["MY_VAR"])
    assert "'needy'" in str(err.value) and "OTHER" in str(err.value) and "pass_to_sandbox" in str(err.value)


def test_extra_folder_of_farm_snippets_overrides_by_name_and_bad_folders_say_why(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "hello.py").write_text('# /// farm\n# name = "hello"\n# description = "mine"\n# ///\nprint(2)\n')
    (good / "extra_one.py").write_text('# /// farm\n# name = "extra_one"\n# ///\nprint(3)\n')
    lib = library(good)
    assert lib["hello"].description == "mine" and "extra_one" in lib and "primes" in lib

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="has no snippets: expected"):
        load_extra_dir(empty)
    with pytest.raises(ConfigError, match="does not exist"):
        load_extra_dir(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "script.py").write_text("print(1)\n")
    with pytest.raises(ConfigError, match=r"script\.py: no '# /// farm' header"):
        load_extra_dir(plain)
