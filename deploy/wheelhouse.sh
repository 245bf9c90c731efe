#!/usr/bin/env bash
# Build deploy/wheelhouse: the farm's wheel and every dependency as wheels for the image's Python,
# pinned by deploy/constraints.txt, so `docker build` installs with no network at all.
#   deploy/wheelhouse.sh [EXTRAS]     EXTRAS: comma-separated pip extras (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/in-image.sh
extras=${1:-all}
rm -rf deploy/wheelhouse && mkdir -p deploy/wheelhouse
python3 -m pip wheel -q --no-deps --wheel-dir deploy/wheelhouse .   # pure Python: any Python builds it
run_in_base "/tmp/v/bin/pip wheel -q --wheel-dir /out/wheelhouse -c /src/deploy/constraints.txt \
    \"\$(ls /out/wheelhouse/sandbox_farm-*.whl)[$extras]\""
echo "deploy/wheelhouse: $(ls deploy/wheelhouse | wc -l) wheels for sandbox-farm[$extras]"
