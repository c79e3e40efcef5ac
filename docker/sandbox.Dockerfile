# The image the docker sandbox backend runs notebooks in (grader/sandbox/docker.py).
#
#   docker build -f docker/sandbox.Dockerfile -t dgm-grader-sandbox:latest docker/
#
# It holds an interpreter and the libraries notebooks use, nothing of the grader: no grader code,
# no reference solutions, no rubrics. The grader's runner scripts are bound read-only at /opt/dgm
# and the job directory at /home/student when a container starts.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY sandbox-requirements.txt /tmp/sandbox-requirements.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && /opt/venv/bin/pip install -r /tmp/sandbox-requirements.txt \
 && /opt/venv/bin/python -m ipykernel install --prefix /opt/venv --name python3 \
 && rm /tmp/sandbox-requirements.txt \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} + \
 && mkdir -p /home/student /opt/dgm \
 && chown 65534:65534 /home/student

ENV PATH=/opt/venv/bin:/usr/bin:/bin \
    HOME=/home/student \
    IPYTHONDIR=/home/student/.ipython \
    MPLBACKEND=Agg \
    LANG=C.UTF-8

USER 65534:65534
WORKDIR /home/student
CMD ["python", "--version"]
