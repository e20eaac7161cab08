#!/usr/bin/env bash
# Debian/Ubuntu packages the platform needs. Installs only what is missing.
#   scripts/system-deps.sh run    Redis (when none is on PATH), the fonts the training worker renders with and
#                                 jemalloc (the OCR worker's allocator)
#   scripts/system-deps.sh test   the same, plus Debian's chromium for the browser tests, gettext (msgfmt:
#                                 the check that the portal's compiled catalogues match their sources) and
#                                 poppler-utils (pdftotext: the searchable PDF export reads back as its text)
#                                 and postgresql (scripts/with-postgres.sh: the database tests run on it too)
# The font packages are listed once, beside the faces in distill/fonts.py: this asks the project's
# Python for them (`make` installs the virtualenv first; PY overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || { echo "no $PY: make install first (or set PY to a Python with requirements/train.txt)" >&2; exit 1; }
FONTS="$("$PY" -m distill font-packages)"
[ -n "$FONTS" ] || { echo "python -m distill font-packages printed nothing" >&2; exit 1; }
want="$FONTS libjemalloc2"  # jemalloc: the OCR worker's allocator (workers/launcher.py)
[ "${1:-run}" = "test" ] && want="$want chromium gettext poppler-utils postgresql"
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
for pkg in $want; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to apt-get install: ${need[*]}" >&2; exit 1; }
  SUDO=sudo
fi
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
