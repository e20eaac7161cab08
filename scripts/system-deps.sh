#!/usr/bin/env bash
# Debian/Ubuntu packages the platform needs. Installs only what is missing.
#   scripts/system-deps.sh run    Redis (when none is on PATH) and the fonts the training worker renders with
#   scripts/system-deps.sh test   the same, plus Debian's chromium for the browser tests
set -euo pipefail
FONTS="fonts-noto-cjk fonts-noto-cjk-extra fonts-wqy-zenhei fonts-smiley-sans fonts-dejavu-core fonts-liberation2 fonts-hanazono\
  fonts-cns11643-sung fonts-seto fonts-cwtex-heib fonts-vlgothic fonts-ipaexfont-mincho fonts-ipaexfont-gothic\
  fonts-horai-umefont fonts-cwtex-kai fonts-cwtex-ming fonts-cwtex-fs fonts-cwtex-yen fonts-cns11643-kai"
want="$FONTS"
[ "${1:-run}" = "test" ] && want="$want chromium"
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
