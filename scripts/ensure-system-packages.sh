#!/usr/bin/env bash
# Install the Debian packages the test suite starts (idempotent; needs root or sudo).
set -euo pipefail
packages=(postgresql redis-server dovecot-imapd chromium fonts-thai-tlwg libpython3.11-testsuite swaks)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "==> installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start system-wide services; the tests run their own private instances.
for svc in postgresql redis-server dovecot; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
