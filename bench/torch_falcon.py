"""PyTorch peer for falconry's trainer: the same Falcon (configs/model/*.toml), the same batch,
bf16 autocast on f32 weights, fused AdamW (0.9/0.95, decay 0.1 on matrices), clipping at 1.0.

    python bench/torch_falcon.py --model configs/model/falcon-124m.toml --seq 2048 \
        --micro 4 --accum 2 --steps 40 [--compile] [--data SHARDS] [--falconry SUMMARY.json]

Prints one JSON line (tokens/s, MFU, peak memory); with --falconry (the `metrics.jsonl` of
`falconry train` on the same config) also the Markdown table and the ratio.

The model is modeling_falcon.py's computation in nanoGPT's shape: fused QKV split as HF does
(multi-query or grouped), rotate_half RoPE, parallel residual, exact GELU, tied head,
attention through F.scaled_dot_product_attention (flash on H100/H200).
"""

import argparse
import json
import math
import pathlib
import time
import tomllib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.nh, self.hd = c["num_attention_heads"], c["hidden_size"] // c["num_attention_heads"]
        self.new_arch = c.get("new_decoder_architecture", False)
        self.nkv = c["num_kv_heads"] if self.new_arch else 1
        d = c["hidden_size"]
        self.query_key_value = nn.Linear(d, (self.nh + 2 * self.nkv) * self.hd, bias=False)
        self.dense = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        qkv = self.query_key_value(x)
        if self.new_arch:
            r = self.nh // self.nkv
            qkv = qkv.view(B, T, self.nkv, r + 2, self.hd)
            q = qkv[:, :, :, :r].reshape(B, T, self.nh, self.hd)
            k, v = qkv[:, :, :, r], qkv[:, :, :, r + 1]  # (B, T, nkv, hd)
        else:
            qkv = qkv.view(B, T, self.nh + 2, self.hd)
            q, k, v = qkv[:, :, :-2], qkv[:, :, -2:-1], qkv[:, :, -1:]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, hd)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.dense(y.transpose(1, 2).reshape(B, T, -1))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c.get("layer_norm_epsilon", 1e-5)
        self.two_ln = c.get("new_decoder_architecture", False)
        self.ln_attn = nn.LayerNorm(d, eps=eps)
        self.ln_mlp = nn.LayerNorm(d, eps=eps) if self.two_ln else None
        self.self_attention = Attention(c)
        self.dense_h_to_4h = nn.Linear(d, c["ffn_hidden_size"], bias=False)
        self.dense_4h_to_h = nn.Linear(c["ffn_hidden_size"], d, bias=False)

    def forward(self, x, cos, sin):
        a = self.ln_attn(x)
        m = self.ln_mlp(x) if self.two_ln else a
        return x + self.self_attention(a, cos, sin) + self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(m)))


class Falcon(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.h = nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        self.ln_f = nn.LayerNorm(c["hidden_size"], eps=c.get("layer_norm_epsilon", 1e-5))
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
        hd = c["hidden_size"] // c["num_attention_heads"]
        inv_freq = 1.0 / (c.get("rope_theta", 1e4) ** (torch.arange(0, hd, 2).float() / hd))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, ids, targets):
        T = ids.shape[1]
        freqs = torch.arange(T, device=ids.device).float()[:, None] * self.inv_freq[None]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(torch.bfloat16), emb.sin().to(torch.bfloat16)
        x = self.word_embeddings(ids)
        for block in self.h:
            x = block(x, cos, sin)
        logits = self.ln_f(x) @ self.word_embeddings.weight.T
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def num_params(c):
    d, h = c["hidden_size"], c["num_attention_heads"]
    kv = c["num_kv_heads"] if c.get("new_decoder_architecture") else 1
    qkv = (h + 2 * kv) * (d // h)
    ln = 2 * d * (2 if c.get("new_decoder_architecture") else 1)
    return c["vocab_size"] * d + c["num_hidden_layers"] * (d * qkv + d * d + 2 * d * c["ffn_hidden_size"] + ln) + 2 * d


def falconry_numbers(path, peak_flops):
    """tokens/s and MFU from `falconry train`'s metrics.jsonl (train steps after the first, which
    pays for kernel compilation and autotuning), or from a JSON summary."""
    if path.suffix != ".jsonl":
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            path = path.parent / "metrics.jsonl"
    rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    train = [r for r in rows if r["split"] == "train"][1:]
    tps = len(train) / sum(1.0 / r["tokens_per_sec"] for r in train)  # harmonic mean = tokens / time
    flops_per_token_over_peak = train[0]["mfu"] / train[0]["tokens_per_sec"]
    return {"tokens_per_sec": tps, "mfu": tps * flops_per_token_over_peak}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="configs/model/falcon-124m.toml")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10, help="steps left out of the timing")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--data", help="token shard folder (meta.json); random tokens without it")
    ap.add_argument("--peak-flops", type=float, default=989e12)
    ap.add_argument("--falconry", help="falconry train's metrics.jsonl, to print the comparison table")
    args = ap.parse_args()

    c = tomllib.loads(pathlib.Path(args.model).read_text())
    torch.manual_seed(0)
    dev = "cuda"
    model = Falcon(c).to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    step_fn = torch.compile(model) if args.compile else model

    if args.data:
        meta = json.loads((pathlib.Path(args.data) / "meta.json").read_text())
        tokens = np.concatenate([np.fromfile(pathlib.Path(args.data) / s["file"], dtype="<u2") for s in meta["shards"]])
    else:
        tokens = np.random.default_rng(0).integers(0, c["vocab_size"], 10_000_000, dtype=np.uint16)
    tokens = torch.from_numpy(tokens.astype(np.int64)).to(dev)
    gen = torch.Generator(device="cpu").manual_seed(1337)

    def batch():
        starts = torch.randint(0, len(tokens) - args.seq - 1, (args.micro,), generator=gen)
        w = torch.stack([tokens[s:s + args.seq + 1] for s in starts.tolist()])
        return w[:, :-1], w[:, 1:]

    tok_per_step = args.seq * args.micro * args.accum
    flops_per_token = 6 * num_params(c) + 12 * c["num_hidden_layers"] * c["hidden_size"] * args.seq
    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for step in range(args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.accum):
            x, y = batch()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = step_fn(x, y)
            (loss / args.accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    timed = times[args.warmup:]
    tps = tok_per_step * len(timed) / sum(timed)
    result = {
        "peer": "pytorch" + (" torch.compile" if args.compile else " eager"),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "params": num_params(c),
        "tokens_per_step": tok_per_step,
        "tokens_per_sec": round(tps),
        "mfu": tps * flops_per_token / args.peak_flops,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }
    print(json.dumps(result))
    if args.falconry:
        f = falconry_numbers(pathlib.Path(args.falconry), args.peak_flops)
        print(f"\n| trainer | tokens/s | MFU | ratio falconry / peer |\n|---|---|---|---|")
        print(f"| falconry (Burn 0.21, CUDA) | {f['tokens_per_sec']:,.0f} | {100 * f['mfu']:.1f}% | |")
        print(f"| {result['peer']} | {tps:,.0f} | {100 * result['mfu']:.1f}% | {f['tokens_per_sec'] / tps:.3f} |")
        print(f"\n{result['device']}, {c['num_hidden_layers']} x {c['hidden_size']}, seq {args.seq}, "
              f"{args.micro} x {args.accum} sequences/step, bf16")


if __name__ == "__main__":
    main()
