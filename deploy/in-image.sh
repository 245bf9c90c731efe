# Sourced: run_in_base CMD... runs a shell command with the base image's own Python (the one the
# farm image will have), with this host's network and pip cache, the repository at /src (read-only)
# and deploy/ writable at /out. Wheels and locks are resolved where they will be installed.
BASE_IMAGE=${FARM_BASE_IMAGE:-sandbox-farm-base:bookworm}
run_in_base() {
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || { echo "no $BASE_IMAGE: run deploy/base-image.sh first" >&2; exit 2; }
    local cache=${PIP_CACHE_DIR:-$HOME/.cache/pip}
    mkdir -p "$cache"
    docker run --rm --network host -u "$(id -u):$(id -g)" -e HOME=/tmp -e PIP_CACHE_DIR=/pipcache \
        -e PIP_DISABLE_PIP_VERSION_CHECK=1 -v "$cache:/pipcache" -v "$PWD:/src:ro" -v "$PWD/deploy:/out" \
        -v /etc/ssl/certs:/etc/ssl/certs:ro "$BASE_IMAGE" sh -ec "python3 -m venv /tmp/v; $*"
}
