"""falconry's CUDA kernels against PyTorch, on fresh random inputs every run.

    python bench/kernels.py [--seq 2048] [--batch 8] [--heads 12] [--kv 1] [--out FILE.json]

Compiles `train/src/cuda/kernels.cu` with NVRTC through CuPy (the same source and compiler
falconry's engine uses), runs each kernel on random data, compares it with a float32 PyTorch
reference (relative L2 error) and times it against the PyTorch operation a Falcon training step
would use in its place (SDPA flash attention, F.layer_norm, F.gelu, cross-entropy, fused AdamW).
Prints one table with the card's name; exits 1 if any error is over its bound. Needs a GPU,
torch and cupy.
"""

import argparse
import json
import math
import os
import pathlib
import sys

import cupy
import numpy as np
import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
dev = "cuda"
bf = torch.bfloat16


def compile_module():
    src = (ROOT / "train/src/cuda/kernels.cu").read_text()
    major, minor = torch.cuda.get_device_capability()
    # As the engine: sm_90a on Hopper, for the warpgroup-MMA (`_wg`) kernels.
    arch = f"sm_{major}{minor}" + ("a" if HOPPER else "")
    opts = ("--std=c++17", f"--gpu-architecture={arch}") + (("-DHAS_WGMMA=1",) if HOPPER else ())
    return cupy.RawModule(code=src, options=opts)


# FALCONRY_MMA_SYNC=1 leaves the `_wg` kernels out, as it does in the engine.
HOPPER = torch.cuda.get_device_capability() == (9, 0) and os.environ.get("FALCONRY_MMA_SYNC", "0") in ("", "0")


MOD = None


def launch(name, grid, block, args, shared=0):
    """Launches kernel `name`; tensors go as pointers, ints as int32, floats as float32
    (np.int64 for the kernels' `long`)."""
    packed = []
    for a in args:
        if isinstance(a, torch.Tensor):
            packed.append(np.uint64(a.data_ptr()))
        elif isinstance(a, np.generic):
            packed.append(a)
        elif isinstance(a, int):
            packed.append(np.int32(a))
        elif isinstance(a, float):
            packed.append(np.float32(a))
        elif a is None:
            packed.append(np.uint64(0))
        else:
            raise TypeError(type(a))
    f = MOD.get_function(name)
    if shared > 48 * 1024:
        f.max_dynamic_shared_size_bytes = shared
    f(grid, (block,), tuple(packed), shared_mem=shared)


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def time_ms(fn, reps=20):
    """Median of `reps` timed runs after warm-up (CUDA events)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


ROWS = []
FAILED = []


def row(name, err, bound, ours_ms, peer, peer_ms, work=None, unit=""):
    ok = err <= bound and math.isfinite(err)
    if not ok:
        FAILED.append(name)
    rate = lambda ms: f"{work / ms / 1e9:.3g} {unit}" if work else ""  # work per ms / 1e9: T/s
    ROWS.append(dict(kernel=name, rel_err=err, bound=bound, ok=ok, ms=ours_ms, rate=rate(ours_ms),
                     peer=peer, peer_ms=peer_ms, peer_rate=rate(peer_ms) if peer_ms else "",
                     speedup=(peer_ms / ours_ms) if peer_ms else None))


def check_attention(B, H, KV, T):
    HD = 64
    scale = 1 / math.sqrt(HD)
    q = torch.randn(B, H, T, HD, device=dev, dtype=bf)
    k = torch.randn(B, KV, T, HD, device=dev, dtype=bf)
    v = torch.randn(B, KV, T, HD, device=dev, dtype=bf)
    # f32 reference, K/V heads repeated for their query heads.
    qf, kf, vf = (x.float().requires_grad_() for x in (q, k, v))
    r = H // KV
    kr, vr = kf.repeat_interleave(r, 1), vf.repeat_interleave(r, 1)
    s = (qf @ kr.transpose(-1, -2)) * scale
    mask = torch.ones(T, T, device=dev, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    ref_lse = torch.logsumexp(s, -1)
    ref = (torch.softmax(s, -1) @ vr)  # [B, H, T, HD]
    ref_o = ref.transpose(1, 2)
    dout = torch.randn(B, T, H, HD, device=dev, dtype=bf)
    ref_o.backward(dout.float())
    flops = 4 * B * H * T * T * HD / 2  # causal
    qs, ks, vs = (x.detach().clone().requires_grad_() for x in (q, k, v))
    sdpa = lambda: F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=True)
    sdpa_ms = time_ms(sdpa)
    # attn_fwd2 takes two query heads of a K/V group per warp (the engine's choice when it can).
    # `_wg`: the same with Hopper's warpgroup MMAs (the engine's choice on compute capability 9.0).
    for name, heads in [("attn_fwd", 1), ("attn_fwd2", 2), ("attn_fwd_wg", 1), ("attn_fwd2_wg", 2)]:
        if (H // KV) % heads or (name.endswith("_wg") and not HOPPER):
            continue
        o = torch.full((B, T, H, HD), float("nan"), device=dev, dtype=bf)
        lse = torch.full((B, H, T), float("nan"), device=dev)
        fwd = lambda: launch(name, (T // 64, H // heads, B), 128, [q, k, v, o, lse, H, KV, T, scale])
        fwd()
        torch.cuda.synchronize()
        row(f"{name} B{B} H{H} KV{KV} T{T}", max(rel(o, ref_o), rel(lse, ref_lse)), 1e-2,
            time_ms(fwd), "SDPA (bf16)", sdpa_ms, flops, "TFLOP/s")

    # The backward from the reference forward, so that each kernel is checked on its own.
    o, lse = ref_o.detach().to(bf).contiguous(), ref_lse.detach().contiguous()
    out = sdpa()
    g = dout.transpose(1, 2)
    sdpa_bwd = lambda: torch.autograd.grad(out, (qs, ks, vs), g, retain_graph=True)
    sdpa_bwd_ms = time_ms(sdpa_bwd)
    delta = torch.full((B, H, T), float("nan"), device=dev)
    dq = torch.empty(q.shape, device=dev)
    dk = torch.empty(k.shape, device=dev)
    dv = torch.empty(v.shape, device=dev)
    args = [q, k, v, dout, lse, delta]

    for name in ["attn_bwd"] + (["attn_bwd_wg"] if HOPPER else []):
        def bwd():
            launch("attn_bwd_delta", ((B * T * H + 7) // 8,), 256, [o, dout, delta, B, H, T])
            dq.zero_()
            dk.zero_()
            dv.zero_()
            launch(name, (T // 64, H, B), 128, args + [dq, dk, dv, H, KV, T, scale])

        bwd()
        torch.cuda.synchronize()
        err = max(rel(dq, qf.grad), rel(dk, kf.grad), rel(dv, vf.grad))
        row(f"{name} B{B} H{H} KV{KV} T{T}", err, 1.5e-2, time_ms(bwd), "SDPA backward (bf16)",
            sdpa_bwd_ms, 2.5 * flops, "TFLOP/s")


def check_wgmma():
    """The three matrix-descriptor forms of the `_wg` attention kernels, on their own."""
    a = torch.randn(64, 64, device=dev, dtype=bf)
    b = torch.randn(64, 64, device=dev, dtype=bf)
    out = torch.full((3, 64, 64), float("nan"), device=dev)
    launch("wg_check", (1,), 128, [a, b, out])
    torch.cuda.synchronize()
    af, bf_ = a.float(), b.float()
    for i, (what, ref) in enumerate([("a b^T", af @ bf_.T), ("a b", af @ bf_), ("a^T b", af.T @ bf_)]):
        row(f"wgmma descriptors: {what}", rel(out[i], ref), 1e-5, None, "", None)


def check_layernorm(N, d, two=False):
    """One LayerNorm, or with `two` a two-LayerNorm block's pair over the same x (one kernel
    each way, x read once)."""
    sets = 2 if two else 1
    x = torch.randn(N, d, device=dev) * 3 + 1
    wbs = [torch.cat([torch.randn(d, device=dev) * 0.1 + 1, torch.randn(d, device=dev) * 0.1]) for _ in range(sets)]
    ys = [torch.full((N, d), float("nan"), device=dev, dtype=bf) for _ in range(sets)]
    wb2, y2 = (wbs[1], ys[1]) if two else (None, None)
    mean, rstd = torch.empty(N, device=dev), torch.empty(N, device=dev)
    eps = 1e-5
    f = lambda: launch("layernorm_fwd", ((N + 7) // 8,), 256, [x, wbs[0], ys[0], wb2, y2, mean, rstd, N, d, eps])
    f()
    name = f"N{N} d{d}" + (" two" if two else "")
    xr = x.clone().requires_grad_()
    params = [(wb[:d].clone().requires_grad_(), wb[d:].clone().requires_grad_()) for wb in wbs]
    refs = [F.layer_norm(xr, (d,), w, b, eps) for w, b in params]
    xb = x.clone()
    peer = lambda: [F.layer_norm(xb, (d,), wb[:d], wb[d:], eps).to(bf) for wb in wbs]
    row(f"layernorm_fwd {name}", max(rel(y, ref) for y, ref in zip(ys, refs)), 8e-3, time_ms(f),
        "F.layer_norm + cast", time_ms(peer), N * d * (4 + 2 * sets), "TB/s")
    dys = [torch.randn(N, d, device=dev) for _ in range(sets)]
    torch.autograd.backward(refs, dys)
    dy2 = dys[1] if two else None
    chunks = min(128, N)  # as the engine: row chunks of the weight and bias gradients
    dres = torch.randn(N, d, device=dev)
    base = dres.clone()
    dres16 = torch.empty(N, d, device=dev, dtype=bf)
    width = 2 * d * sets
    partial = torch.empty(chunks, width, device=dev)
    grads = torch.full((width,), float("nan"), device=dev)

    def bwd():
        dres.copy_(base)
        launch("layernorm_bwd", ((N + 7) // 8,), 256, [dys[0], dy2, x, mean, rstd, wbs[0], wb2, dres, dres16, N, d])
        launch("layernorm_wb", ((d + 127) // 128, chunks), 256,
               [dys[0], dy2, x, mean, rstd, partial, N, d, (N + chunks - 1) // chunks])
        launch("reduce_rows", ((width + 255) // 256,), 256, [partial, grads, chunks, width, 0])

    bwd()
    torch.cuda.synchronize()
    err = rel(dres - base, xr.grad)
    for i, (w, b) in enumerate(params):
        err = max(err, rel(grads[2 * d * i:2 * d * i + d], w.grad), rel(grads[2 * d * i + d:2 * d * (i + 1)], b.grad))
    err16 = rel(dres16, dres)  # bf16 rounding of the copy
    xp = x.clone().requires_grad_()
    ps = [(wb[:d].clone().requires_grad_(), wb[d:].clone().requires_grad_()) for wb in wbs]
    outs = [F.layer_norm(xp, (d,), w, b, eps) for w, b in ps]
    inputs = (xp,) + tuple(t for p in ps for t in p)
    peer = lambda: torch.autograd.grad(outs, inputs, dys, retain_graph=True)
    row(f"layernorm_bwd {name}", err, 1e-4, time_ms(bwd), "layer_norm backward", time_ms(peer))
    row(f"layernorm_bwd bf16 copy {name}", err16, 8e-3, None, "", None)


def check_gelu(n):
    h = torch.randn(n, device=dev, dtype=bf) * 2
    g = torch.full_like(h, float("nan"))
    f = lambda: launch("gelu_fwd", ((n // 8 + 255) // 256,), 256, [h, g, np.int64(n)])
    f()
    ref = F.gelu(h.float())
    row(f"gelu_fwd n{n}", rel(g, ref), 8e-3, time_ms(f), "F.gelu (bf16)", time_ms(lambda: F.gelu(h)), n * 4, "TB/s")
    dg0 = torch.randn(n, device=dev, dtype=bf)
    dg = dg0.clone()
    hr = h.float().requires_grad_()
    F.gelu(hr).backward(dg0.float())

    def bwd():
        dg.copy_(dg0)
        launch("gelu_bwd", ((n // 8 + 255) // 256,), 256, [h, dg, np.int64(n)])

    bwd()
    hp = h.clone().requires_grad_()
    out = F.gelu(hp)
    row(f"gelu_bwd n{n}", rel(dg, hr.grad), 8e-3, time_ms(bwd), "gelu backward",
        time_ms(lambda: torch.autograd.grad(out, hp, dg0, retain_graph=True)), n * 6, "TB/s")


def check_cross_entropy(B, T, V):
    N = B * T
    # u16 token ids as the kernels read them (int16 holds the same bits).
    win = torch.randint(0, V, (B, T + 1), device=dev, dtype=torch.int32).to(torch.int16)
    logits0 = (torch.randn(N, V, device=dev) * 2).to(bf)
    logits = logits0.clone()
    loss = torch.full((N,), float("nan"), device=dev)
    scale = 1.0 / N

    # Timed on its own output (finite logits too): one read and one write of [N, V] bf16.
    f = lambda: launch("cross_entropy", (N,), 1024, [logits, win, np.uint64(0), loss, T, V, scale])
    f()
    torch.cuda.synchronize()
    targets = win[:, 1:].to(torch.int64).reshape(-1) & 0xFFFF
    lr = logits0.float().requires_grad_()
    ref = F.cross_entropy(lr, targets, reduction="none")
    ref.mean().backward()
    err = max(rel(loss, ref), rel(logits, lr.grad))
    logits_ms = time_ms(f)
    lp = logits0.clone().requires_grad_()

    def peer():
        l = F.cross_entropy(lp.float(), targets)
        torch.autograd.grad(l, lp)

    row(f"cross_entropy+grad N{N} V{V}", err, 1e-2, logits_ms, "F.cross_entropy(f32) + backward",
        time_ms(peer), N * V * 2 * 2, "TB/s")


def check_rope(B, T, H, KV, layout):
    HD = 64
    N, S = B * T, H + 2 * KV
    qkv = torch.randn(N, S * HD, device=dev, dtype=bf)
    q = torch.full((B, H, T, HD), float("nan"), device=dev, dtype=bf)
    k = torch.full((B, KV, T, HD), float("nan"), device=dev, dtype=bf)
    v = torch.full_like(k, float("nan"))
    inv = 1.0 / (10000.0 ** (torch.arange(0, HD, 2, device=dev).float() / HD))
    fr = torch.arange(T, device=dev).float()[:, None] * inv[None]
    cos, sin = fr.cos().contiguous(), fr.sin().contiguous()
    n_thr = N * S * 4
    f = lambda: launch("rope_split", ((n_thr + 255) // 256,), 256, [qkv, q, k, v, cos, sin, B, T, H, KV, layout])
    f()
    x = qkv.float().view(B, T, S, HD)
    if layout == 0:
        rq, rk, rv = x[:, :, :H], x[:, :, H:H + KV], x[:, :, H + KV:]
    elif layout == 1:
        r = H // KV
        g = x.view(B, T, KV, r + 2, HD)
        rq, rk, rv = g[:, :, :, :r].reshape(B, T, H, HD), g[:, :, :, r], g[:, :, :, r + 1]
    else:
        g = x.view(B, T, H, 3, HD)
        rq, rk, rv = g[:, :, :, 0], g[:, :, :, 1], g[:, :, :, 2]
    c = torch.cat([cos, cos], -1)[None, None]
    s = torch.cat([sin, sin], -1)[None, None]
    rot = lambda t: torch.cat([-t[..., 32:], t[..., :32]], -1)
    ap = lambda t: t * c + rot(t) * s
    rq, rk, rv = ap(rq.transpose(1, 2)), ap(rk.transpose(1, 2)), rv.transpose(1, 2)
    err = max(rel(q, rq), rel(k, rk), rel(v, rv))
    dq, dk, dv = (torch.randn_like(x, dtype=torch.float32) for x in (q, k, v))
    dqkv = torch.full_like(qkv, float("nan"))
    g = lambda: launch("rope_merge", ((n_thr + 255) // 256,), 256, [dq, dk, dv, dqkv, cos, sin, B, T, H, KV, layout])
    g()
    # Adjoint check: <rope_split(x), dy> == <x, rope_merge(dy)>, relative to |x| |rope_merge(dy)|
    # (the inner product itself is a sum of random signs and can be near zero).
    lhs = (rq * dq.float()).sum() + (rk * dk.float()).sum() + (rv * dv.float()).sum()
    rhs = (x.reshape(N, -1) * dqkv.float()).sum()
    err = max(err, abs((lhs - rhs) / (x.norm() * dqkv.float().norm())).item())
    row(f"rope_split/merge layout{layout} H{H} KV{KV}", err, 1e-2, time_ms(f), "", None)


def check_adamw(n):
    p = torch.randn(n, device=dev)
    g = torch.randn(n, device=dev) * 0.01
    m, v = torch.randn(n, device=dev) * 1e-3, torch.rand(n, device=dev) * 1e-5
    p16 = torch.empty(n, device=dev, dtype=bf)
    sumsq = (g.double() ** 2).sum().float().reshape(1)
    lr, b1, b2, eps, wd, t, clip = 6e-4, 0.9, 0.95, 1e-8, 0.1, 7, 1.0
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    pr, mr, vr = p.clone(), m.clone(), v.clone()
    norm = sumsq.sqrt().item()
    gs = g * (clip / (norm + 1e-6) if norm > clip else 1.0)
    mr = b1 * mr + (1 - b1) * gs
    vr = b2 * vr + (1 - b2) * gs * gs
    pr = pr * (1 - lr * wd) - lr * (mr / bc1) / ((vr / bc2).sqrt() + eps)
    launch("adamw", (1056,), 256, [p, p16, g, m, v, np.int64(n), lr, b1, b2, eps, wd, bc1, bc2, sumsq, clip])
    err = max(rel(p, pr), rel(m, mr), rel(v, vr), rel(p16, pr))
    row(f"adamw n{n}", err, 4e-3, None, "", None)
    ps = [torch.randn(n, device=dev, requires_grad=True)]
    opt = torch.optim.AdamW(ps, lr=lr, fused=True)
    ps[0].grad = g.clone()
    fn = lambda: launch("adamw", (1056,), 256, [p, p16, g, m, v, np.int64(n), lr, b1, b2, eps, wd, bc1, bc2, sumsq, clip])
    ROWS[-1].update(ms=time_ms(fn), peer="torch AdamW(fused)", peer_ms=time_ms(opt.step))
    ROWS[-1]["speedup"] = ROWS[-1]["peer_ms"] / ROWS[-1]["ms"]


def check_sum(n):
    x = torch.randn(n, device=dev)
    partial = torch.empty(1024, device=dev)
    out = torch.full((4,), float("nan"), device=dev)
    launch("sum_partial", (1024,), 256, [x, np.int64(n), 1, partial])
    launch("sum_final", (1,), 1024, [partial, 1024, out, 2])
    row(f"sum of squares n{n}", rel(out[2:3], (x.double() ** 2).sum().reshape(1)), 1e-5, None, "", None)


def check_embed(B, T, V, d):
    win = torch.randint(0, V, (B, T + 1), device=dev, dtype=torch.int32).to(torch.int16)
    wte = torch.randn(V, d, device=dev)
    x = torch.full((B * T, d), float("nan"), device=dev)
    total = B * T * d
    launch("embed_fwd", ((total + 255) // 256,), 256, [win, wte, x, T, d, np.int64(total)])
    ids = win[:, :-1].to(torch.int64).reshape(-1) & 0xFFFF
    err = rel(x, wte[ids])
    dx = torch.randn(B * T, d, device=dev)
    dw = torch.zeros(V, d, device=dev)
    launch("embed_bwd", ((total + 255) // 256,), 256, [win, dx, dw, T, d, np.int64(total)])
    ref = torch.zeros(V, d, device=dev).index_add_(0, ids, dx)
    row(f"embed fwd/bwd V{V} d{d}", max(err, rel(dw, ref)), 1e-5, None, "", None)


def check_nf4(d_out, d_in):
    """NF4 dequantization against the same layout decoded with torch ops (random tables: the
    kernel takes the level and scale tables as inputs)."""
    n = d_out * d_in
    blocks = (n + 63) // 64
    packed = torch.randint(0, 256, ((n + 1) // 2,), device=dev, dtype=torch.uint8)
    scales = torch.randint(0, 256, (blocks,), device=dev, dtype=torch.uint8)
    scale_absmax = torch.rand((blocks + 255) // 256, device=dev)
    levels, dynamic = torch.randn(16, device=dev), torch.randn(256, device=dev)
    offset = 0.03
    out = torch.full((n,), float("nan"), device=dev, dtype=bf)
    f = lambda: launch("nf4_dequant", (132 * 16,), 256,
                       [packed, scales, scale_absmax, levels, dynamic, offset, out, np.int64(n)])
    f()
    codes = torch.stack([packed >> 4, packed & 15], 1).reshape(-1)[:n].long()
    block = torch.arange(n, device=dev) // 64
    absmax = dynamic[scales.long()] * scale_absmax[torch.arange(blocks, device=dev) // 256] + offset
    ref = levels[codes] * absmax[block]
    row(f"nf4_dequant {d_out}x{d_in}", rel(out, ref), 8e-3, time_ms(f), "same decode in torch ops",
        time_ms(lambda: levels[codes] * absmax[block]), n * 2.5, "TB/s")


def check_dropout(n, p):
    """LoRA's dropout: the forward's mask drops about p, scales the kept by 1 / (1 - p), and
    the backward applies the same mask."""
    x = torch.randn(n, device=dev).to(bf)
    u = torch.empty(n, device=dev, dtype=bf)
    seed = np.int64(0x1234_5678_9ABC)
    launch("dropout_fwd", (132 * 16,), 256, [x, u, np.int64(n), p, seed])
    kept = u != 0
    t = torch.randn(n, device=dev)
    dst = torch.zeros(n, device=dev)
    launch("dropout_bwd", (132 * 16,), 256, [t, dst, 0, np.int64(n), p, seed])
    err = max(rel(u[kept], (x[kept].float() / (1 - p)).to(bf)), rel(dst, t * kept / (1 - p)),
              abs((1 - kept.float().mean().item()) - p) / p)
    row(f"dropout fwd/bwd p{p} n{n}", err, 1e-2, None, "", None)


def main():
    global MOD
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--attention-only", action="store_true", help="check and time attention only")
    a = ap.parse_args()
    torch.manual_seed(int.from_bytes(__import__("os").urandom(4), "little"))
    MOD = compile_module()
    B, T, H = a.batch, a.seq, a.heads
    if HOPPER:
        check_wgmma()
    check_attention(B, H, a.kv, T)
    check_attention(8, 32, 1, 2048)  # falcon-1b's shape
    check_attention(2, 16, 2, 512)
    check_attention(1, 4, 4, 256)
    if not a.attention_only:
        check_others(B, T)
    report(a.out)


def check_others(B, T):
    check_layernorm(B * T, 768)
    check_layernorm(B * T, 1024, two=True)  # falcon-350m's blocks
    check_layernorm(100, 136)  # a partial row chunk and column block
    check_gelu(B * T * 3072)
    check_cross_entropy(max(1, B // 2), T, 65024)
    check_cross_entropy(1, 256, 50304)  # falcon-rw's vocabulary: a partial last chunk
    for layout, (h, kv) in [(0, (12, 1)), (1, (16, 2)), (2, (4, 4))]:
        check_rope(2, 256, h, kv, layout)
    check_adamw(122_000_000)
    check_adamw(1_000_003)  # a scalar tail
    check_sum(10_000_000)
    check_embed(2, 256, 65024, 768)
    check_nf4(18176, 4544)  # falcon-7b's dense_h_to_4h
    check_nf4(3, 37)  # half a byte and a partial block at the end
    check_dropout(4_000_001, 0.1)


def report(out):
    name = torch.cuda.get_device_name()
    print(f"\n{name}, torch {torch.__version__}, cupy {cupy.__version__}: falconry kernels vs PyTorch\n")
    print("| kernel | rel. error (bound) | falconry ms | rate | PyTorch | PyTorch ms | rate | speed-up |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for r in ROWS:
        ms = f"{r['ms']:.3f}" if r["ms"] else ""
        pms = f"{r['peer_ms']:.3f}" if r["peer_ms"] else ""
        sp = f"{r['speedup']:.2f}x" if r["speedup"] else ""
        flag = "" if r["ok"] else " FAIL"
        print(f"| {r['kernel']} | {r['rel_err']:.2e} ({r['bound']:.0e}){flag} | {ms} | {r['rate']} | {r['peer']} | {pms} | {r['peer_rate']} | {sp} |")
    if out:
        pathlib.Path(out).write_text(json.dumps(dict(device=name, rows=ROWS), indent=1))
    if FAILED:
        print("FAILED:", ", ".join(FAILED))
        sys.exit(1)


if __name__ == "__main__":
    main()
