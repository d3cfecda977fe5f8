#!/usr/bin/env bash
# gpu_carry.sh [REV...] — assembles gpu-carry/, the folder carried to a GPU machine (which has no compiler tools
# for vmc's front end): this working tree's Release build of vmc, tests/test_cuda_exec and tests/test_scan_gpu, the
# Fashion-MNIST files gpu_check.sh trains on, and for each REV (a commit) its own vmc in gpu-carry/REV/vmc, built in
# a temporary worktree, for same-run comparisons (scripts/bench_ab.sh 'new=gpu-carry/vmc' 'old=gpu-carry/REV/vmc').
# Then on the GPU machine: bash scripts/gpu_check.sh gpu-carry (everything) or scripts/bench_ab.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=$root/${GPU_CARRY_DIR:-gpu-carry}   # GPU_CARRY_DIR: another folder name (a second carry beside one in use)
build() {   # source folder, build folder, targets...
    local src=$1 bld=$2
    shift 2
    [ -f "$bld/build.ninja" ] || cmake -S "$src" -B "$bld" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
    ninja -C "$bld" "$@" > /dev/null
}
build "$root" "$root/build-rel" vmc test_cuda_exec test_scan_gpu
mkdir -p "$out/tests"
cp build-rel/vmc "$out/"
cp build-rel/tests/test_cuda_exec build-rel/tests/test_scan_gpu "$out/tests/"
fm=/usr/share/datasets/fashion-mnist
if [ -d "$fm" ]; then mkdir -p "$out/fmnist" && cp "$fm"/*-ubyte.gz "$out/fmnist/"; fi
for rev in "$@"; do
    sha=$(git rev-parse --short "$rev^{commit}")
    wt=$(mktemp -d)
    git worktree add -q --detach "$wt" "$sha"
    build "$wt" "$wt/build-rel" vmc
    mkdir -p "$out/$rev"
    cp "$wt/build-rel/vmc" "$out/$rev/vmc"
    git worktree remove --force "$wt"
    echo "gpu-carry/$rev/vmc: $sha"
done
# keep the carried folder out of git status (run's carry argument names it)
ex="/$(basename "$out")/"
grep -qx "$ex" .git/info/exclude 2>/dev/null || { mkdir -p .git/info && echo "$ex" >> .git/info/exclude; }
du -sh "$out"
echo "carry: [\"$(basename "$out")\"]"
