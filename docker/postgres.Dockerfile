# PostgreSQL from the Debian archive, for machines that reach no image registry (make docker-test sets
# DGM_POSTGRES_IMAGE to it); elsewhere compose.yaml uses the official postgres image. It reads the same
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB and keeps its data in /var/lib/postgresql/data.
ARG BASE=dgm-grader-base:bookworm
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres /var/run/postgresql
COPY docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin \
    PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
