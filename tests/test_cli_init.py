"""farm init and shell completion through the real CLI (subprocesses)."""

import os
import stat

from farm.config import load_config
from tests.harness import farm_cli

SECRET = "sk-init-test-5f1d9c0a7b3e"


def test_init_writes_a_valid_commented_config_and_env_template_and_lists_keys_by_name(tmp_path):
    env = {"E2B_API_KEY": SECRET, "DAYTONA_API_KEY": "", "MORPH_API_KEY": ""}
    out = farm_cli("init", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout + out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  ")}
    assert lines["e2b"].split()[1:] == ["E2B_API_KEY", "set"]
    assert "DAYTONA_API_KEY not set" in lines["daytona"] and lines["local"].endswith("no key needed")

    config, dotenv = tmp_path / "config.yml", tmp_path / ".env"
    assert config.read_text().startswith("# Sandbox Farm configuration")
    parsed = load_config(str(config))  # valid as written
    assert parsed.plan.providers == ["local"] and parsed.redis.data_dir == str(tmp_path / ".farm")
    text = dotenv.read_text()
    assert "E2B_API_KEY=\n" in text and "MODAL_TOKEN_SECRET=\n" in text and SECRET not in text
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    listed = farm_cli("snippets", cwd=tmp_path)  # every command reads the files it wrote
    assert listed.returncode == 0 and "hello" in listed.stdout, listed.stderr

    config.write_text("plan: [broken\n")
    again = farm_cli("init", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.strip() == (
        f"farm: config.yml and .env already exist in {tmp_path}: nothing written (`farm init --force` overwrites)")
    assert config.read_text() == "plan: [broken\n"
    forced = farm_cli("init", "--force", cwd=tmp_path)  # a broken config does not stop its own repair
    assert forced.returncode == 0, forced.stderr
    assert load_config(str(config)).plan.providers == ["local"]


def test_init_never_writes_through_a_symlink(tmp_path):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep me")
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(elsewhere, work / ".env")
    assert farm_cli("init", cwd=work).returncode == 2  # a dangling or live link counts as existing
    assert farm_cli("init", "--force", cwd=work).returncode == 0
    assert elsewhere.read_text() == "keep me" and not (work / ".env").is_symlink()


def test_shell_completion_scripts_and_completions():
    cwd = os.getcwd()
    script = farm_cli(cwd=cwd, env={"_FARM_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "_farm_completion" in script.stdout and "complete " in script.stdout
    for shell in ("zsh", "fish"):
        other = farm_cli(cwd=cwd, env={"_FARM_COMPLETE": f"{shell}_source"})
        assert other.returncode == 0 and "farm" in other.stdout, other.stderr
    words = farm_cli(cwd=cwd, env={"_FARM_COMPLETE": "bash_complete", "COMP_WORDS": "farm ru", "COMP_CWORD": "1"})
    assert words.stdout.split() == ["plain,run", "plain,runs"], words.stdout
    flags = farm_cli(cwd=cwd, env={"_FARM_COMPLETE": "bash_complete", "COMP_WORDS": "farm runs --pr",
                                   "COMP_CWORD": "2"})
    assert "plain,--prune" in flags.stdout.split() and "plain,--provider" in flags.stdout.split(), flags.stdout
