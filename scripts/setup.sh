#!/usr/bin/env bash
# setup.sh — first command on a fresh Debian machine: installs the missing packages (deps.sh), builds vmc in
# ./build (RelWithDebInfo) and runs the default job (default_job.sh). Extra arguments go to default_job.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/deps.sh"
JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$ROOT/build" -j"$JOBS" vmc
bash "$ROOT/scripts/default_job.sh" "$@"
