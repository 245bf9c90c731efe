"""Run the hostile snippets through the worker's per-sample code (workers/measure.py) as the uid
this process has; prints one JSON object: snippet -> sample fields. Used by test_hostile_snippets.py
to try the attacks under a non-root farm (``setpriv`` to an unprivileged uid)."""

import json
import sys
from pathlib import Path

from hostile_snippets import hostile_snippets
from providers.base import SandboxSpec
from providers.local import LocalProvider
from workers.measure import measure


def main(folder: str, python: str, limits: str) -> None:
    env = json.loads(Path(folder, "env.json").read_text())
    provider = LocalProvider({"python": python, "limits": json.loads(limits)})
    timeouts = {"create": 60, "ready": 60, "setup": 120, "run": 180, "destroy": 60}
    results = {"facts": provider.facts()}
    for snippet in hostile_snippets(env["HOSTILE_EVILPKG"]):
        spec = SandboxSpec(labels={"farm": "sandbox-farm", "farm-snippet": snippet.name})
        results[snippet.name] = measure(provider, spec, snippet, env, timeouts)
    print(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
