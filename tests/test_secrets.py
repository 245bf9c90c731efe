"""A canary secret in the environment never reaches Redis, logs, reports or sandboxes."""

from farm.report import render
from farm.snippets import parse_snippet
from tests.harness import Farm, redis_text

CANARY = "canary-7d1e0c9b-secret-value"
ALLOWED_SECRET = "allowed-but-redacted-5512aa"


def test_canary_secret_never_leaks(tmp_path):
    env = {"DAYTONA_API_KEY": CANARY, "E2B_API_KEY": CANARY, "SOME_TOKEN": CANARY,
           "SERVICE_TOKEN": ALLOWED_SECRET, "PLAIN_SETTING": "visible-value"}
    config = {"env_vars": {"pass_to_sandbox": ["PLAIN_SETTING", "SERVICE_TOKEN", "NOT_SET_ANYWHERE"]}}
    dump = parse_snippet('# /// farm\n# name = "envdump"\n# ///\n'
                         "import os\nfor k, v in sorted(os.environ.items()):\n    print(f'{k}={v}')\n"
                         "raise SystemExit(f'failing on purpose with {os.environ[\"SERVICE_TOKEN\"]}')\n",
                         "envdump.py")
    with Farm(tmp_path, config=config) as farm:
        worker = farm.worker("local", concurrency=1, env=env)
        run_id = farm.start_run(["local"], [dump, *farm.snippets("hello")], repetitions=2)
        farm.wait(run_id)
        samples = farm.store.samples(run_id)
        everything = redis_text(farm.store)
        reports = "\n".join(render(farm.store, run_id, fmt) for fmt in ("table", "json", "markdown", "csv"))
        log = worker.log()

    dumps = [s for s in samples if s["snippet"] == "envdump"]
    assert len(dumps) == 2 and all(s["error_class"] == "snippet_failed" for s in dumps)
    output = dumps[0]["output"]
    assert "PLAIN_SETTING=visible-value" in output            # allow-listed: passed in
    assert "SERVICE_TOKEN=***" in output                       # allow-listed secret: redacted in records
    assert "DAYTONA_API_KEY" not in output and "SOME_TOKEN" not in output  # not allow-listed: never passed
    assert "NOT_SET_ANYWHERE" not in output
    assert "***" in dumps[0]["error"] and ALLOWED_SECRET not in dumps[0]["error"]
    for text, where in ((everything, "redis"), (reports, "reports"), (log, "worker log")):
        assert CANARY not in text, where
        assert ALLOWED_SECRET not in text, where
    assert "farm:run:" in everything and run_id in reports and "visible-value" in everything
