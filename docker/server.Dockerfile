# The course server and its grading workers (same image, different commands; see compose.yaml).
# Built by `make docker-images` (docker/build.sh), from the repository root, after the sandbox image:
#
#   docker build -f docker/server.Dockerfile --build-arg BASE=dgm-grader-base:bookworm --network host \
#     -t dgm-grader-server:latest .
#
# Workers grade in sandbox containers (DGM_SANDBOX=docker, image docker/sandbox.Dockerfile) through the
# host's Docker engine, so the image carries the docker client (taken from Debian's docker.io package;
# the engine itself stays out); the server itself never runs student code. Python packages come from
# the wheelhouse docker/wheels/server only (CPU torch).
ARG BASE=python:3.11-slim
# The sandbox image's build stage (docker/build.sh tags it): its venv already holds torch and the notebook
# libraries, so only the server's own dependencies are installed on top.
ARG SANDBOX_BUILD=dgm-grader-sandbox:build

FROM ${BASE} AS docker-cli
RUN apt-get update -q \
 && cd /tmp && apt-get download -q docker.io \
 && dpkg-deb -x docker.io_*.deb /x \
 && test -x /x/usr/bin/docker

# The dependencies first (from pyproject.toml), so that a change to the code reinstalls only the code.
FROM ${SANDBOX_BUILD} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels/server PIP_CONSTRAINT=/src/constraints.txt
COPY docker/wheels/server /wheels/server
COPY pyproject.toml constraints.txt /src/
RUN python -c "import tomllib; print(*tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /src/requirements.txt \
 && /opt/venv/bin/pip install -q -r /src/requirements.txt \
 && /opt/venv/bin/python -c "import torch; assert torch.version.cuda is None, torch.__version__"
COPY README.md /src/
COPY grader /src/grader
COPY server /src/server
COPY reference_solutions /src/reference_solutions
RUN /opt/venv/bin/pip install -q --no-deps /src \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM ${BASE}
COPY --from=docker-cli /x/usr/bin/docker /usr/local/bin/docker
COPY --from=build /opt/venv /opt/venv
COPY assignments /app/assignments
RUN useradd --system --uid 10001 --home-dir /var/lib/dgm dgm \
 && mkdir -p /var/lib/dgm \
 && chown dgm:dgm /var/lib/dgm

# DGM_HOME holds uploads (shared by the server and all workers) and, without PostgreSQL, the database.
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DGM_HOME=/var/lib/dgm \
    DGM_ASSIGNMENTS_DIR=/app/assignments

USER dgm
WORKDIR /var/lib/dgm
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["dgm-grader", "serve", "--host", "0.0.0.0", "--port", "8000"]
