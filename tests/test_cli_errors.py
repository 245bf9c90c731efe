"""Error messages reach every report format through the real CLI, not only the CSV (issue 20)."""

import json

from tests.harness import farm_cli

SECRET = "sk-cliux-test-1234567890"
BOOM = '# /// farm\n# name = "boom"\n# ///\nimport sys\nsys.exit("widget factory exploded: ' + SECRET + '")\n'


def test_failure_messages_in_table_json_markdown_and_html(tmp_path):
    snippets = tmp_path / "snips"
    snippets.mkdir()
    (snippets / "boom.py").write_text(BOOM)
    env = {"CLIUX_TEST_API_KEY": SECRET}
    run = farm_cli("run", "--snippets-dir", str(snippets), "--snippets", "boom", "-n", "2", "--warmup", "0",
                   cwd=tmp_path, env=env)
    assert "widget factory exploded" in run.stdout, run.stdout + run.stderr
    run_id = next(line.split()[1] for line in run.stdout.splitlines() if line.startswith("run "))

    table = farm_cli("report", run_id, cwd=tmp_path, env=env)
    assert table.returncode == 0, table.stderr
    (line,) = [ln for ln in table.stdout.splitlines() if "widget factory exploded" in ln]
    assert line.strip().startswith("local/boom snippet_failed ×2:") and SECRET not in table.stdout

    doc = json.loads(farm_cli("report", run_id, "--format", "json", cwd=tmp_path, env=env).stdout)
    assert doc["errors_by_class"] == {"local/boom": {"snippet_failed": 2}}
    (entry,) = doc["error_messages"]["local/boom"]["snippet_failed"]
    assert entry["count"] == 2 and "widget factory exploded" in entry["message"]
    assert SECRET not in json.dumps(doc)

    for fmt in ("html", "markdown"):
        out = farm_cli("report", run_id, "--format", fmt, "-o", "-", cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        assert "widget factory exploded" in out.stdout and SECRET not in out.stdout
