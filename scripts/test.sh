#!/usr/bin/env bash
# test.sh — the whole test suite, as CI runs it: a normal build with every test (gpu tests skip without a GPU),
# the cpu tests again under AddressSanitizer + UndefinedBehaviorSanitizer (all but those labelled kernel_emulation:
# compiles of emulated kernel instances, whose generators nvrtc_templates runs there), and the parser fuzzer for 60 s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j"$jobs"

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVMC_SANITIZE=ON >/dev/null
ninja -C build-asan -j"$jobs"

echo "== fuzz the parser and checker (${VMC_FUZZ_SECONDS:-60} s)"
bash scripts/fuzz.sh "${VMC_FUZZ_SECONDS:-60}"

echo "== cpu tests under sanitizers"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L cpu -LE kernel_emulation --output-on-failure -j"$jobs" --timeout 900

echo "== all tests"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900
