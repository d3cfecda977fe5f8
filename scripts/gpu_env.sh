# gpu_env.sh — sourced by the GPU scripts (gpu_check.sh, scan_profile.sh) with their build folder in $B: puts
# $B/lib (libraries the machine lacks) and CUDA 13's cuBLASLt and NVRTC, from wherever the toolkit or a Python wheel
# put them when the loader lacks them, on the library path.
[ -d "$B/lib" ] && export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for lib in libcublasLt.so.13 libnvrtc.so.13; do
  ldconfig -p 2>/dev/null | grep -q "$lib" && continue
  p=$(find /usr/local /opt /usr/lib -name "$lib" 2>/dev/null | head -1)
  [ -n "$p" ] && export LD_LIBRARY_PATH="$(dirname "$p")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
