#!/usr/bin/env bash
# check_models.sh — the model-zoo test: runs check_models.py (parameter totals, golden state-dict names, tags,
# one verified graph per ablation knob) against a vmc binary. Usage: check_models.sh VMC ROOT [GROUP...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/check_models.py" "$@"
