"""HF-parity fixtures for falconry's Falcon (train/tests/fixtures/falcon-*).

Makes tiny random `FalconForCausalLM`s with HF transformers (CPU, f32) for the three fused-QKV
layouts, saves each as a HF folder (config.json + model.safetensors; the 40b style a second
time in 100 KB shards + model.safetensors.index.json) with input ids and the logits
transformers computes. `train/tests/hf_parity.rs` loads them and must match within 1e-4.

    python scripts/falcon_fixture.py                 # (re)write the fixtures
    python scripts/falcon_fixture.py --check DIR     # a folder falconry saved: load it in
                                                     # transformers, compare with DIR/falconry_logits.safetensors
    python scripts/falcon_fixture.py --eval          # (re)write the eval-tasks checkpoints

The eval-tasks checkpoints (`train/tests/fixtures/eval-*`, for `scripts/lm_eval_parity.py` and
`train/tests/eval_tasks.rs`) have Falcon's 65,024-id vocabulary so that the Falcon tokenizer
can feed them, but a width of 16, and are stored in bf16 (2 MB each): bf16 widens to f32
exactly, so transformers (`dtype=float32`) and falconry compute on the same weights.

Weights are drawn wider than HF's N(0, 0.02) init (std 0.3, LayerNorms around 1 with biases)
so that every tensor moves the logits and a transposed or mis-split weight cannot pass.
"""

import argparse
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import FalconConfig, FalconForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "train" / "tests" / "fixtures"

ARCHS = {
    # falcon-7b style: multi-query (one K/V head), one shared LayerNorm.
    "falcon-7b-style": dict(hidden_size=32, num_attention_heads=4, num_kv_heads=1, multi_query=True,
                            new_decoder_architecture=False),
    # falcon-40b style: grouped K/V heads, ln_attn + ln_mlp.
    "falcon-40b-style": dict(hidden_size=64, num_attention_heads=8, num_kv_heads=2, multi_query=True,
                             new_decoder_architecture=True),
    # falcon-rw style: neither (per-head q, k, v interleaved).
    "falcon-rw-style": dict(hidden_size=32, num_attention_heads=4, num_kv_heads=4, multi_query=False,
                            new_decoder_architecture=False),
}


# Falcon's vocabulary and context, width 16: multi-query (7b) and grouped K/V (40b) layouts.
EVAL_ARCHS = {
    "eval-falcon-mqa": dict(hidden_size=16, num_attention_heads=4, num_kv_heads=1, multi_query=True,
                            new_decoder_architecture=False),
    "eval-falcon-grouped": dict(hidden_size=16, num_attention_heads=4, num_kv_heads=2, multi_query=True,
                                new_decoder_architecture=True),
}


def random_model(kw, seed, vocab_size=96, max_positions=64):
    torch.manual_seed(seed)
    config = FalconConfig(vocab_size=vocab_size, num_hidden_layers=2, rope_theta=10000.0, bias=False,
                          alibi=False, parallel_attn=True, layer_norm_epsilon=1e-5,
                          max_position_embeddings=max_positions, **kw)
    model = FalconForCausalLM(config).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "layernorm" in pname or "ln_" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p) if pname.endswith("weight") else 0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.3)
    return config, model


def make_eval(name, kw, seed):
    _, model = random_model(kw, seed, vocab_size=65024, max_positions=2048)
    out = FIXTURES / name
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    print(f"{name}: {sum(p.numel() for p in model.parameters())} params (bf16)")


def make(name, kw, seed, max_shard_size="5GB"):
    config, model = random_model(kw, seed)
    out = FIXTURES / name
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True, max_shard_size=max_shard_size)
    ids = torch.randint(0, config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        logits = model(ids).logits.float()
    save_file({"input_ids": ids.to(torch.int64), "logits": logits.contiguous()}, out / "expected.safetensors",
              metadata={"format": "pt"})
    print(f"{name}: {sum(p.numel() for p in model.parameters())} params, logits {tuple(logits.shape)}, "
          f"|logits| max {logits.abs().max():.3f}")


def check(folder):
    folder = pathlib.Path(folder)
    model = FalconForCausalLM.from_pretrained(folder).eval()
    got = load_file(folder / "falconry_logits.safetensors")
    with torch.no_grad():
        logits = model(got["input_ids"].to(torch.int64)).logits.float()
    diff = (logits - got["logits"]).abs().max().item()
    print(json.dumps({"folder": str(folder), "max_abs_diff": diff, "shape": list(logits.shape)}))
    if diff > 1e-4:
        sys.exit(f"transformers' logits differ from falconry's by {diff}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="DIR", help="check a falconry-saved folder instead of writing fixtures")
    ap.add_argument("--eval", action="store_true", help="write the eval-tasks checkpoints instead")
    args = ap.parse_args()
    if args.check:
        check(args.check)
        return
    if args.eval:
        for i, (name, kw) in enumerate(EVAL_ARCHS.items()):
            make_eval(name, kw, seed=4321 + 10 * i)
        return
    for i, (name, kw) in enumerate(ARCHS.items()):
        make(name, kw, seed=1234 + 10 * i)
    # The 40b-style model again, in transformers' shards + index (as the hub's Falcon-7B/40B).
    make("falcon-40b-style-sharded", ARCHS["falcon-40b-style"], seed=1234 + 10, max_shard_size="100KB")


if __name__ == "__main__":
    main()
