"""The data folder follows --config, not the current folder; read-only commands create none (issue 20).
Real `python -m farm` processes with the embedded Redis."""

from tests.harness import farm_cli


def test_data_dir_is_beside_the_config_and_read_only_commands_create_none(tmp_path):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    config = repo / "config.yml"
    config.write_text("plan:\n  providers: [local]\n")

    run = farm_cli("--config", str(config), "run", "--snippets", "hello", "-n", "1", "--warmup", "0",
                   cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    run_id = next(line.split()[1] for line in run.stdout.splitlines() if line.startswith("run "))
    assert (repo / ".farm").is_dir() and not (elsewhere / ".farm").exists()

    report = farm_cli("--config", "../repo/config.yml", "report", run_id, cwd=elsewhere)
    assert report.returncode == 0 and run_id in report.stdout, report.stderr

    for args in (["runs"], ["report", run_id], ["compare", run_id, run_id],
                 ["history", "--provider", "local", "--snippet", "hello"]):
        out = farm_cli(*args, cwd=elsewhere)
        assert out.returncode != 0 and "no runs recorded yet" in out.stderr, (args, out.stderr)
        assert not (elsewhere / ".farm").exists(), args
