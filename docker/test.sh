#!/usr/bin/env bash
# `make docker-test`: the docker backend and the compose stack on a real Docker engine (as root).
#
# It starts a private dockerd on its own socket (DOCKER_HOST is set for this script's children only,
# so nothing else on the machine sees an engine or changes backend), builds the images with
# docker/build.sh, runs the sandbox tests against the engine, grades the solved hw1 and a fixture with
# --sandbox docker, then brings up docker/compose.yaml (PostgreSQL, the server, two workers) and checks
# that an upload is graded by a worker to the CLI's score. On exit it stops and removes everything it
# started (containers, volumes, networks, the engine, its socket and pid files). The engine's images
# stay in $DGM_DOCKER_TEST_STATE (default /var/lib/dgm-docker-test) as the next run's build cache: they
# are built from pinned local inputs and only ever run by this script; delete the directory to start cold.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${DGM_DOCKER_TEST_STATE:-/var/lib/dgm-docker-test}
RUN=/run/dgm-docker-test
PY=.venv/bin/python
export DOCKER_HOST=unix://$RUN/docker.sock

log() { printf '%s docker-test: %s\n' "$(date +%T)" "$*" >&2; }
compose() { docker-compose -p dgm-docker-test -f docker/compose.yaml "$@"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "make docker-test starts its own dockerd: run it as root" >&2
  exit 1
fi
scripts/need-packages dockerd:docker.io debootstrap:debootstrap docker-compose:docker-compose
if [ -e "$RUN/dockerd.pid" ] && kill -0 "$(cat "$RUN/dockerd.pid")" 2>/dev/null; then
  echo "another make docker-test is running (dockerd $(cat "$RUN/dockerd.pid"))" >&2
  exit 1
fi

stop() {
  local status=$?
  set +e
  if [ -n "${COMPOSE_UP:-}" ]; then
    [ "$status" -eq 0 ] || compose logs --tail 40 >&2
    compose down -v --timeout 30 >/dev/null 2>&1
  fi
  [ -z "${solved:-}" ] || kill "$solved" 2>/dev/null  # a grading still running after a failure
  docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1  # sandbox containers a failure left behind
  docker image prune -f >/dev/null 2>&1  # earlier builds' images; the tagged ones are the cache
  if [ -n "${dockerd:-}" ]; then
    kill "$dockerd" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$dockerd" 2>/dev/null || break; sleep 0.2; done
  fi
  # dockerd leaves its default network namespace mounted under the exec root.
  awk -v run="$RUN" 'index($2, run) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$RUN"
  rmdir /sys/fs/cgroup/*/dgm-docker-test 2>/dev/null  # the --cgroup-parent, empty once containers are gone
  log "stopped (engine state kept in $STATE: $(du -sh "$STATE" 2>/dev/null | cut -f1))"
  exit "$status"
}
trap stop EXIT

log "private dockerd on $DOCKER_HOST"
mkdir -p "$RUN" "$STATE"
# No default bridge and no iptables rules: sandboxes run with --network none, image builds with the
# host's network, and compose's own network needs neither, so the machine's network is left as it was.
dockerd --host "$DOCKER_HOST" --data-root "$STATE/engine" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
  --bridge none --iptables=false --ip-masq=false --cgroup-parent dgm-docker-test >"$STATE/dockerd.log" 2>&1 &
dockerd=$!
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info --format 'engine {{.ServerVersion}}, {{.Driver}}, cgroup v{{.CgroupVersion}}' >&2 \
  || { tail "$STATE/dockerd.log" >&2; exit 1; }

docker/build.sh postgres

log "sandbox tests against the engine"
"$PY" -m pytest -q -p no:cacheprovider tests/grader/sandbox/test_sandbox_docker_engine.py \
  tests/grader/sandbox/test_sandbox_docker.py tests/grader/sandbox/test_sandbox_detect.py

out=$RUN/out
mkdir -p "$out"
log "grading the solved hw1 and a fixture with --sandbox docker (side by side)"
fixture=pixelcnn_mask_b_first_layer.ipynb
grade() { .venv/bin/dgm-grader grade "$1" --assignment hw1 --sandbox docker --json "$2" >"$2.log" 2>&1; }
grade reference_solutions/notebooks/hw1.ipynb "$out/hw1.json" &
solved=$!
grade "tests/fixtures/hw1/$fixture" "$out/fixture.json" || { cat "$out/fixture.json.log" >&2; exit 1; }
wait "$solved" || { cat "$out/hw1.json.log" >&2; exit 1; }
"$PY" docker/checks.py report "$out/hw1.json"
"$PY" docker/checks.py report "$out/fixture.json" --fixture "$fixture"
auto=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["auto_total"])' "$out/hw1.json")

log "compose: PostgreSQL, the server and two workers"
DGM_SECRET_KEY=$("$PY" -c 'import secrets; print(secrets.token_hex(32))')
DGM_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DOCKER_GID=$(stat -c %g "$RUN/docker.sock")
export DGM_SECRET_KEY DGM_PORT DOCKER_GID DOCKER_SOCKET=$RUN/docker.sock DGM_JOBS_DIR=$RUN/jobs \
  DGM_POSTGRES_IMAGE=dgm-grader-postgres:latest
install -d -o 10001 -m 0700 "$DGM_JOBS_DIR"
COMPOSE_UP=1
compose up -d
answers() { "$PY" -c "import urllib.request as r; r.urlopen('http://127.0.0.1:$DGM_PORT/healthz', timeout=2)" 2>/dev/null; }
for _ in $(seq 120); do answers && break; sleep 1; done
answers || { echo "docker-test: the server did not answer within 2 minutes" >&2; exit 1; }
password=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(16))')
echo "$password" | compose exec -T server dgm-grader users add student1 --role student --password-stdin \
  >"$out/users-add.log" 2>&1 || { cat "$out/users-add.log" >&2; exit 1; }
"$PY" docker/checks.py upload "http://127.0.0.1:$DGM_PORT" reference_solutions/notebooks/hw1.ipynb \
  --user student1 --password "$password" --auto "$auto"
workers=$(compose ps -q worker | wc -l)
[ "$workers" -eq 2 ] || { echo "docker-test: $workers workers running, expected 2" >&2; exit 1; }
compose logs --no-color worker >"$out/workers.log"
grep -q "grading submission" "$out/workers.log" || { echo "docker-test: no worker logged the grading" >&2; exit 1; }
log "passed: hw1 $auto automatic points from the CLI and from a compose worker"
