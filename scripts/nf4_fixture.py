"""NF4 reference fixture for falconry's QLoRA quantizer (train/tests/fixtures/nf4/bnb.json).

Quantizes deterministic pseudo-normal tensors with bitsandbytes' own NF4 (CPU):
`quantize_4bit(x, blocksize=64, quant_type="nf4", compress_statistics=True)`, i.e. 4-bit
NormalFloat codes per block of 64 and the block absmax double-quantized to 8 bits (the
dynamic map) in blocks of 256 after subtracting their mean. `train/src/nf4.rs` must give the
same packed codes, the same 8-bit scales and the same dequantized values.

The inputs are not stored: both sides draw them from splitmix64 with exact arithmetic (a sum
of 12 uniforms k/2^24, minus 6, times a row scale), so the fixture stays small.

    python scripts/nf4_fixture.py      # needs torch and bitsandbytes
"""

import json
import pathlib

import torch
import bitsandbytes.functional as F

OUT = pathlib.Path(__file__).resolve().parent.parent / "train" / "tests" / "fixtures" / "nf4" / "bnb.json"
MASK = (1 << 64) - 1

# (rows, cols, seed): one row whose length is not a multiple of 64 (a short last block), and a
# matrix of 260 blocks (two scale blocks, the second short). Rows are kept a multiple of 64
# long otherwise: bitsandbytes' CPU dequantize_4bit assumes blocks do not cross rows (with
# 40 x 416 it disagrees with its own quantize_4bit by up to 13), as real weights never do.
CASES = [(1, 700, 1), (65, 256, 2)]


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def draw(rows, cols, seed):
    """Row r is N(0, 1)-like times (1 + r % 5), so blocks have different absmax."""
    state, out = seed, []
    for r in range(rows):
        for _ in range(cols):
            s = 0.0
            for _ in range(12):
                state, z = splitmix64(state)
                s += (z >> 40) / float(1 << 24)
            out.append((s - 6.0) * (1 + r % 5))
    return torch.tensor(out, dtype=torch.float32).reshape(rows, cols)


def f32_hex(t):
    return t.contiguous().float().numpy().tobytes().hex()


def main():
    cases = []
    for rows, cols, seed in CASES:
        x = draw(rows, cols, seed)
        packed, state = F.quantize_4bit(x, blocksize=64, quant_type="nf4", compress_statistics=True)
        deq = F.dequantize_4bit(packed, state)
        cases.append({
            "rows": rows, "cols": cols, "seed": seed,
            "input_sum": float(x.double().sum()),
            "packed": packed.reshape(-1).numpy().tobytes().hex(),
            "scales": state.absmax.numpy().tobytes().hex(),
            "scale_absmax": f32_hex(state.state2.absmax),
            "offset": f32_hex(state.offset.reshape(1)),
        })
        if rows * cols < 1000:  # the large case's values would make the fixture large
            cases[-1]["dequantized"] = f32_hex(deq)
        print(f"{rows}x{cols}: {state.absmax.numel()} blocks, max |x - deq| {(x - deq).abs().max():.4f}")
    fixture = {
        "bitsandbytes": __import__("bitsandbytes").__version__,
        "nf4_code": f32_hex(state.code),
        "dynamic_code": f32_hex(state.state2.code),
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
