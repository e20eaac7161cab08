# PostgreSQL 15 from Debian 12's package (docker/offline/build-bases.sh), initialised on first
# start from POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB as the official image does.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENTRYPOINT ["/bin/sh", "/usr/local/bin/postgres-entrypoint.sh"]
