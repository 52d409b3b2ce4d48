#!/usr/bin/env bash
# Debian packages the tests need beyond Python wheels. Installs only what is missing, and only
# when running as root (CI and fresh kiosks); otherwise says what to install.
set -euo pipefail
needed=()
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || needed+=("$pkg")
done
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "note: install these Debian packages for the full test suite: sudo apt-get install ${needed[*]}" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${needed[@]}"
