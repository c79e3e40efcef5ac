# The image the docker sandbox backend runs notebooks in (grader/sandbox/docker.py). Built by
# `make docker-images` (docker/build.sh), from the repository root:
#
#   docker build -f docker/sandbox.Dockerfile --build-arg BASE=dgm-grader-base:bookworm -t dgm-grader-sandbox:latest .
#
# It holds an interpreter and the libraries notebooks use, nothing of the grader: no grader code,
# no reference solutions, no rubrics. The grader's runner scripts are bound read-only at /opt/dgm
# and the job directory at /home/student when a container starts. setpriv (util-linux, in every
# Debian base) switches the orchestrator and the student's kernel to their uids.
#
# pip sees only the wheelhouse docker/wheels/sandbox (CPU torch), so no CUDA build can slip in; the import
# check below fails the build if one ever did.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
COPY docker/wheels/sandbox /wheels
COPY docker/sandbox-requirements.txt /tmp/sandbox-requirements.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -q --no-cache-dir --no-index --find-links /wheels -r /tmp/sandbox-requirements.txt \
 && /opt/venv/bin/python -c "import torch; assert torch.version.cuda is None, torch.__version__" \
 && /opt/venv/bin/python -m ipykernel install --prefix /opt/venv --name python3 \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
RUN mkdir -p /home/student /opt/dgm \
 && chown 65534:65534 /home/student

ENV PATH=/opt/venv/bin:/usr/bin:/bin \
    HOME=/home/student \
    IPYTHONDIR=/home/student/.ipython \
    MPLBACKEND=Agg \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1

USER 65534:65534
WORKDIR /home/student
CMD ["python", "--version"]
