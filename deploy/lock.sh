#!/usr/bin/env bash
# Regenerate deploy/constraints.txt: every distribution `sandbox-farm[all]` installs in the image,
# pinned, resolved by the image's own Python (markers such as python_full_version differ from a host's).
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/in-image.sh
tmp=$(mktemp -d -p deploy); trap 'rm -rf "$tmp"' EXIT
python3 -m pip wheel -q --no-deps --wheel-dir "$tmp" .
run_in_base "/tmp/v/bin/pip install -q --dry-run --ignore-installed --report /out/$(basename "$tmp")/report.json \
    \"\$(ls /out/$(basename "$tmp")/sandbox_farm-*.whl)[all]\""
python3 - "$tmp/report.json" > deploy/constraints.txt <<'PY'
import json, sys
print("# The lock for images: exact versions of everything sandbox-farm[all] installs, resolved by")
print("# the image's Python. Regenerate after changing pyproject.toml: deploy/lock.sh")
for item in sorted(json.load(open(sys.argv[1]))["install"], key=lambda i: i["metadata"]["name"].lower()):
    if item["metadata"]["name"].lower().replace("_", "-") != "sandbox-farm":
        print(f"{item['metadata']['name']}=={item['metadata']['version']}")
PY
echo "deploy/constraints.txt: $(grep -vc '^#' deploy/constraints.txt) pinned distributions"
