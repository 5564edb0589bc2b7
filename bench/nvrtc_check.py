"""Compiles train/src/cuda/kernels.cu as the engine does, with NVRTC, down to a cubin (so ptxas
checks every inline PTX instruction) for each architecture the engine builds for: sm_80 (the
oldest it accepts), sm_90 and sm_90a with the warpgroup-MMA kernels. Then reads the sm_90a
machine code (nvdisasm) for a register hazard ptxas produced once: a warpgroup MMA inside a
loop whose A operand registers the loop writes only after it, so that from the second
iteration on it reads the previous iteration's value (session 11: the forward's Q registers
were given to P). Needs no GPU: NVRTC comes from the `nvidia-cuda-nvrtc-cu12` wheel (or
FALCONRY_NVRTC, a path to libnvrtc.so), nvdisasm from `nvidia-cuda-nvdisasm` (or
FALCONRY_NVDISASM).

    python bench/nvrtc_check.py [--verbose] [FILE.cu]     (exit 1 on a compile error or hazard)
"""

import ctypes
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

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


def nvdisasm():
    path = os.environ.get("FALCONRY_NVDISASM") or shutil.which("nvdisasm")
    if path:
        return path
    try:
        import nvidia
    except ImportError:
        return None
    found = [p for root in nvidia.__path__ for p in pathlib.Path(root).glob("cu*/bin/nvdisasm")]
    return str(found[0]) if found else None


def functions(sass):
    """{kernel: [(address, instruction)]} and {kernel: {label: address}} from nvdisasm's text."""
    code, labels, name, pending = {}, {}, None, []
    for line in sass.splitlines():
        if m := re.match(r"^([A-Za-z_]\w*):\s*$", line):
            name = m.group(1)
            code[name], labels[name], pending = [], {}, []
        elif name and (m := re.match(r"^(\.L_x_\d+):", line)):
            pending.append(m.group(1))
        elif name and (m := re.search(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)):
            addr = int(m.group(1), 16)
            for label in pending:
                labels[name][label] = addr
            pending = []
            code[name].append((addr, m.group(2)))
    return code, labels


def written(instruction):
    """Registers an instruction writes (its first operand, with the width its opcode says)."""
    m = re.match(r"^(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s+R(\d+)\b", instruction)
    if not m or m.group(1).startswith(("HGMMA", "ST", "RED", "BRA")):
        return set()
    op, r = m.group(1), int(m.group(2))
    width = 4 if ".128" in op else 2 if (".64" in op or ".WIDE" in op) else 1
    return set(range(r, r + width))


def hazards(sass):
    """Warpgroup MMAs with A in registers, inside a loop that writes those registers only after
    the MMA: reads of the previous iteration's value."""
    code, labels = functions(sass)
    found = []
    for name, body in code.items():
        loops = []
        for addr, ins in body:
            m = re.search(r"BRA\s+`\((\.L_x_\d+)\)", ins)
            if m and labels[name].get(m.group(1), addr + 1) <= addr:
                loops.append((labels[name][m.group(1)], addr))
        for addr, ins in body:
            m = re.match(r"^HGMMA\.\S+\s+R\d+,\s+R(\d+),", ins)
            if not m:
                continue
            a = set(range(int(m.group(1)), int(m.group(1)) + 4))
            for start, end in loops:
                if not start <= addr <= end:
                    continue
                before = any(written(i) & a for t, i in body if start <= t < addr)
                after = [(t, i) for t, i in body if addr < t <= end and written(i) & a]
                if after and not before:
                    found.append(f"{name}: {ins} at {addr:#x} reads R{min(a)}..R{max(a)}, "
                                 f"written later in its loop by {after[0][1]} at {after[0][0]:#x}")
    return found


def main():
    lib = nvrtc()
    files = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = pathlib.Path(files[0] if files else ROOT / "train/src/cuda/kernels.cu").read_bytes()
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
            binary = ctypes.create_string_buffer(cubin.value)
            lib.nvrtcGetCUBIN(prog, binary)
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        print(f"{arch}: {'ok' if rc == 0 else 'FAILED'}, cubin {cubin.value} bytes")
        if rc != 0 or verbose:
            print(log.value.decode(errors="replace"))
        failed |= rc != 0
        if rc == 0 and extra:
            failed |= not check_sass(binary.raw)
    sys.exit(1 if failed else 0)


def check_sass(cubin):
    tool = nvdisasm()
    if not tool:
        print("SASS: nvdisasm not found (pip install nvidia-cuda-nvdisasm, or set FALCONRY_NVDISASM)")
        return False
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        sass = subprocess.run([tool, f.name], capture_output=True, text=True, check=True).stdout
    found = hazards(sass)
    mmas = sum(1 for line in sass.splitlines() if "HGMMA" in line)
    print(f"SASS: {mmas} warpgroup MMAs, {len(found)} operand hazards")
    for h in found:
        print("  " + h)
    return mmas > 0 and not found


if __name__ == "__main__":
    main()
