#!/usr/bin/env bash
# Stand-in base images for a machine whose Docker cannot reach Docker Hub but reaches Debian's
# mirror and PyPI (this project's development machines): python:3.11-slim-bookworm from a
# debootstrap of Debian 12 with its Python 3.11, and Redis 7 and PostgreSQL 15 from Debian's
# packages with small entrypoints that do what the official images' do for docker/compose.yaml.
# A machine that reaches Docker Hub needs none of this. Run as root, from the repository root:
#   docker/offline/build-bases.sh
# Certificates in /usr/local/share/ca-certificates (a TLS-inspecting egress proxy's, say) are
# copied into the base, so that pip and apt inside the builds trust what the host trusts.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DOCKER="${DOCKER:-docker}"
ROOTFS="$(mktemp -d /tmp/ocr-rootfs-XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
command -v debootstrap >/dev/null || { echo "needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
debootstrap --variant=minbase --include=python3,python3-pip,python-is-python3,ca-certificates \
  bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
rm -f "$ROOTFS"/usr/lib/python3.11/EXTERNALLY-MANAGED "$ROOTFS"/var/cache/apt/archives/*.deb
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" update-ca-certificates >/dev/null
fi
tar -C "$ROOTFS" -c . | "$DOCKER" import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - python:3.11-slim-bookworm
"$DOCKER" build -q -t ocr-offline/redis:7-bookworm -f "$HERE/redis.Dockerfile" "$HERE"
"$DOCKER" build -q -t ocr-offline/postgres:15-bookworm -f "$HERE/postgres.Dockerfile" "$HERE"
