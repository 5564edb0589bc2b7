"""Compiles train/src/cuda/kernels.cu as the engine does, with NVRTC, down to a cubin (so ptxas
checks every inline PTX instruction) for each architecture the engine builds for: sm_80 (the
oldest it accepts), sm_90 and sm_90a with the warpgroup-MMA kernels. Needs no GPU: NVRTC comes
from the `nvidia-cuda-nvrtc-cu12` wheel (or FALCONRY_NVRTC, a path to libnvrtc.so).

    python bench/nvrtc_check.py [--verbose]     (exit 1 on any compile error)
"""

import ctypes
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARCHS = [("sm_80", []), ("sm_90", []), ("sm_90a", ["-DHAS_WGMMA=1"])]


def nvrtc():
    path = os.environ.get("FALCONRY_NVRTC")
    if not path:
        try:
            import nvidia.cuda_nvrtc
        except ImportError:
            sys.exit("NVRTC not found: pip install nvidia-cuda-nvrtc-cu12 (or set FALCONRY_NVRTC)")
        lib = pathlib.Path(nvidia.cuda_nvrtc.__path__[0]) / "lib"
        path = str(sorted(lib.glob("libnvrtc.so.*"))[0])
    return ctypes.CDLL(path)


def main():
    lib = nvrtc()
    src = (ROOT / "train/src/cuda/kernels.cu").read_bytes()
    verbose = "--verbose" in sys.argv
    failed = False
    for arch, extra in ARCHS:
        prog = ctypes.c_void_p()
        assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"kernels.cu", 0, None, None) == 0
        opts = [b"--std=c++17", f"--gpu-architecture={arch}".encode()] + [e.encode() for e in extra]
        if verbose:
            opts.append(b"--ptxas-options=-v")
        rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        cubin = ctypes.c_size_t()
        if rc == 0:
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(cubin))
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        print(f"{arch}: {'ok' if rc == 0 else 'FAILED'}, cubin {cubin.value} bytes")
        if rc != 0 or verbose:
            print(log.value.decode(errors="replace"))
        failed |= rc != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
