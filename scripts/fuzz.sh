#!/usr/bin/env bash
# fuzz.sh — builds the parser/evaluator fuzzer (clang, libFuzzer + ASan + UBSan) in build-fuzz and runs it for
# N seconds (default 60) from a seed corpus of every .vmc file in models/ and tests/dsl/. Exits non-zero on a
# crash, a leak, a sanitizer report or a hang (-timeout=10); the failing input is left in build-fuzz/.
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-fuzz"
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DVMC_FUZZ=ON \
      -DCMAKE_C_FLAGS="$san" >/dev/null
ninja -C "$build" -j"${VMC_JOBS:-2}" fuzz_parse
corpus="$build/fuzz-corpus"
mkdir -p "$corpus"
find "$root/models" "$root/tests/dsl" -name '*.vmc' -print0 | while IFS= read -r -d '' f; do
    cp "$f" "$corpus/seed_$(echo "$f" | md5sum | cut -c1-12).vmc"
done
cd "$build"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ./tests/fuzz_parse -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus"
