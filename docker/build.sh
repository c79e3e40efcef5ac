#!/usr/bin/env bash
# `make docker-images`: the sandbox and server images, built without any image registry and without
# a path to a CUDA torch. The base comes from the Debian archive (debootstrap + docker import, once);
# Python packages from the wheelhouses in docker/wheels, which pip fills here and the builds read
# with --no-index. Set DGM_TORCH_INDEX=https://download.pytorch.org/whl/cpu where PyPI's torch is the CUDA
# build (machines without a local CPU wheel); the builds fail if a CUDA torch ever reaches them.
#
#   docker/build.sh            base (if missing), wheelhouses, sandbox and server images
#   DGM_BASE_IMAGE=python:3.11-slim docker/build.sh    on the official image instead of the Debian one
#   docker/build.sh postgres   also PostgreSQL from the Debian archive (for compose without a registry)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${DGM_BASE_IMAGE:-dgm-grader-base:bookworm}
PY=${PY:-.venv/bin/python}
export DOCKER_BUILDKIT=0  # the legacy builder: Debian's docker.io has no buildx

log() { printf '%s docker/build.sh: %s\n' "$(date +%T)" "$*" >&2; }
build() { docker build -q --build-arg BASE="$BASE" "$@" . >/dev/null; }
# image NAME DOCKERFILE NETWORK [STAGE...]: the image, its earlier stages tagged NAME:STAGE so that they
# stay the next build's cache (untagged, `docker image prune` would remove them).
image() {
  local name=$1 dockerfile=$2 network=$3 stage
  shift 3
  log "image $name:latest"
  for stage in "$@"; do build --network "$network" -f "$dockerfile" --target "$stage" -t "$name:$stage"; done
  build --network "$network" -f "$dockerfile" -t "$name:latest"
}

base_pid=
if [ "$BASE" = dgm-grader-base:bookworm ] && ! docker image inspect "$BASE" >/dev/null 2>&1; then
  log "base image $BASE from the Debian archive (debootstrap, about 3 minutes, beside the wheelhouses)"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  {
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
      bookworm "$root" http://deb.debian.org/debian >/dev/null
    tar -C "$root" -c . | docker import - "$BASE" >/dev/null
  } &
  base_pid=$!
fi

log "wheelhouses docker/wheels/server and docker/wheels/sandbox"
# Two wheelhouses, so that a new dependency of the server does not rebuild the sandbox image.
mkdir -p docker/wheels/server docker/wheels/sandbox
if [ -n "${DGM_TORCH_INDEX:-}" ]; then
  "$PY" -m pip download -qq --no-deps -d docker/wheels/server --index-url "$DGM_TORCH_INDEX" torch==2.13.0
fi
"$PY" -m pip download -qq -d docker/wheels/server --find-links docker/wheels/server -c constraints.txt \
  -r docker/sandbox-requirements.txt . 'setuptools>=68'
"$PY" -m pip download -qq -d docker/wheels/sandbox --no-index --find-links docker/wheels/server \
  -c constraints.txt -r docker/sandbox-requirements.txt
[ -z "$base_pid" ] || wait "$base_pid"

image dgm-grader-sandbox docker/sandbox.Dockerfile none build
image dgm-grader-server docker/server.Dockerfile host docker-cli build
if [ "${1:-}" = postgres ]; then
  image dgm-grader-postgres docker/postgres.Dockerfile host
fi
log "done"
