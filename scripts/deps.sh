#!/usr/bin/env bash
# deps.sh — install the Debian packages vmc needs, only those that are missing (idempotent, quiet when done).
set -euo pipefail
pkgs=(build-essential cmake ninja-build flex bison clang libclang-rt-dev pkg-config zlib1g-dev
      libopenblas-dev libturbojpeg0-dev libpng-dev libcairo2-dev dataset-fashion-mnist python3 python3-pil)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
