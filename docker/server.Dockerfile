# The course server and its grading workers (same image, different commands; see compose.yaml).
#
#   docker build -f docker/server.Dockerfile -t dgm-grader-server:latest .
#
# Workers grade in sandbox containers (DGM_SANDBOX=docker, image docker/sandbox.Dockerfile) through the
# host's Docker engine, so the image carries the docker CLI; the server itself never runs student code.
FROM docker:27-cli AS docker-cli

FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY grader ./grader
COPY server ./server
COPY reference_solutions ./reference_solutions
COPY assignments ./assignments
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && PIP_CONSTRAINT=constraints.txt pip install . \
 && useradd --system --uid 10001 --home-dir /var/lib/dgm dgm \
 && mkdir -p /var/lib/dgm \
 && chown dgm:dgm /var/lib/dgm

# DGM_HOME holds uploads (shared by the server and all workers) and, without PostgreSQL, the database.
ENV DGM_HOME=/var/lib/dgm \
    DGM_ASSIGNMENTS_DIR=/app/assignments

USER dgm
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["dgm-grader", "serve", "--host", "0.0.0.0", "--port", "8000"]
