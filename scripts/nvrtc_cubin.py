#!/usr/bin/env python3
"""nvrtc_cubin.py SOURCE.cu OUT.cubin [ARCH] — compiles one of vmc's kernel sources (`vmc compile --dump-kernels`)
with NVRTC, as vmc does (-default-device -std=c++17, no fast math), for sm_ARCH (default 90), and prints ptxas'
verbose lines. No GPU needed: libnvrtc.so.13 (or libnvrtc.so) must be loadable."""
import ctypes
import sys


def compile_source(path, arch="90"):
    """(ptxas' log, cubin bytes or None) of one kernel source compiled as vmc compiles it; exits without NVRTC."""
    lib = None
    for name in ("libnvrtc.so.13", "libnvrtc.so"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            pass
    if lib is None:
        sys.exit("nvrtc_cubin.py: libnvrtc.so.13 not found (add CUDA's lib64 to LD_LIBRARY_PATH)")
    src = open(path, "rb").read()
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), src, path.encode(), 0, None, None) != 0:
        sys.exit("nvrtc_cubin.py: nvrtcCreateProgram failed")
    opts = [b"-default-device", b"-std=c++17", f"--gpu-architecture=sm_{arch}".encode(), b"--ptxas-options=-v"]
    ok = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts)) == 0
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(prog, log)
    cubin = None
    if ok:
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(n))
        buf = ctypes.create_string_buffer(n.value)
        lib.nvrtcGetCUBIN(prog, buf)
        cubin = buf.raw
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return log.value.decode(errors="replace"), cubin


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    log, cubin = compile_source(sys.argv[1], sys.argv[3] if len(sys.argv) == 4 else "90")
    print(log, end="")
    if cubin is None:
        sys.exit(f"nvrtc_cubin.py: {sys.argv[1]} does not compile (log above)")
    open(sys.argv[2], "wb").write(cubin)


if __name__ == "__main__":
    main()
