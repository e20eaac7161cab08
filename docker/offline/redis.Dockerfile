# Redis 7 from Debian 12's package (docker/offline/build-bases.sh).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*
COPY redis-entrypoint.sh /usr/local/bin/redis-entrypoint.sh
WORKDIR /data
ENTRYPOINT ["/bin/sh", "/usr/local/bin/redis-entrypoint.sh"]
CMD ["redis-server"]
