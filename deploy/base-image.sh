#!/usr/bin/env bash
# Build the farm's base image without any registry: a minimal Debian bookworm made by mmdebstrap
# from the Debian mirror this host's apt already uses, imported with `docker import`.
#   deploy/base-image.sh [--force]      -> image sandbox-farm-base:bookworm
# It holds Python 3.11, bubblewrap (the local provider's sandbox), redis-server (the compose
# Redis), tini (PID 1 that reaps and forwards signals) and CA certificates.
set -euo pipefail
IMAGE=${FARM_BASE_IMAGE:-sandbox-farm-base:bookworm}
if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE exists (use --force to rebuild)"; exit 0
fi
command -v mmdebstrap >/dev/null || { echo "base-image.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
# The host's own apt sources: no mirror name is written here.
sources=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -s "$f" ] && grep -qE '^(URIs:|deb )' "$f" && { sources=$f; break; }
done
[ -n "$sources" ] || { echo "base-image.sh: no Debian apt sources found on this host" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mmdebstrap --quiet --variant=apt --components=main \
    --include=python3,python3-venv,bubblewrap,redis-server,tini,ca-certificates,procps \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    bookworm "$tmp/base.tar" "$sources"
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tmp/base.tar" "$IMAGE" >/dev/null
echo "built $IMAGE"
