"""Issue 14's peer: LoRA / QLoRA with PyTorch + peft on the config `falconry finetune` runs.

    python bench/peft_finetune.py make --output DIR --tokenizer TOKDIR [--preset 7b]
        a random-init Falcon in HF layout (bf16, transformers' shards + index, as the hub
        stores Falcon-7B) with the tokenizer files beside it: real weights cannot be fetched
        on the GPU machine, and memory and speed do not depend on their values
    python bench/peft_finetune.py train --checkpoint DIR [--quantize nf4] [--steps 12] [--batch 1]
        peft LoRA on every projection (r 64, alpha 16, dropout 0.1, as
        configs/finetune/falcon-7b-qlora.toml), AdamW lr 2e-4, bf16, rows of seq 512 drawn from
        the vocabulary; `--quantize nf4` holds the base through bitsandbytes (QLoRA's 4-bit NF4,
        double quantization, bf16 compute) and fails clearly where bitsandbytes does not import.
        Prints one JSON line: tokens/s after two warm-up steps, torch's peak allocated and
        reserved MiB.
"""

import argparse
import json
import pathlib
import shutil
import sys
import time

# bench/kernels.py would shadow the `kernels` package transformers imports.
sys.path = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]

import torch  # noqa: E402
from transformers import FalconConfig, FalconForCausalLM  # noqa: E402

PRESETS = {
    # tiiuae/falcon-7b (configs/model/falcon-7b.toml)
    "7b": dict(hidden_size=4544, num_hidden_layers=32, num_attention_heads=71, num_kv_heads=1,
               multi_query=True, new_decoder_architecture=False),
    # a small one to try the script on a CPU
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=1,
                 multi_query=True, new_decoder_architecture=False),
}
TARGETS = ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]


def make(args):
    config = FalconConfig(vocab_size=65024, parallel_attn=True, bias=False, alibi=False,
                          layer_norm_epsilon=1e-5, rope_theta=10000.0, max_position_embeddings=2048,
                          **PRESETS[args.preset])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = FalconForCausalLM(config).to(torch.bfloat16)
    out = pathlib.Path(args.output)
    model.save_pretrained(out, safe_serialization=True)  # 5 GB shards past 5 GB
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copy(pathlib.Path(args.tokenizer) / name, out / name)
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"made": str(out), "params": n, "files": sorted(p.name for p in out.iterdir())}))


def train(args):
    from peft import LoraConfig, get_peft_model

    kwargs = dict(dtype=torch.bfloat16)
    if args.quantize == "nf4":
        from transformers import BitsAndBytesConfig  # needs bitsandbytes
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
    torch.cuda.reset_peak_memory_stats()
    model = FalconForCausalLM.from_pretrained(args.checkpoint, device_map={"": 0}, **kwargs)
    model.config.use_cache = False
    lora = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.1, target_modules=TARGETS, bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4,
                            betas=(0.9, 0.999), weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    times = []
    for step in range(args.steps):
        ids = torch.randint(0, 65024, (args.batch, args.seq_len + 1), generator=gen).cuda()
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = model(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 0.3)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    timed = times[2:] or times
    print(json.dumps({
        "peer": "pytorch+peft" + (" +bitsandbytes nf4" if args.quantize == "nf4" else " bf16"),
        "torch": torch.__version__, "batch": args.batch, "seq_len": args.seq_len,
        "steps": args.steps, "loss_last": loss.item(),
        "tokens_per_sec": args.batch * args.seq_len * len(timed) / sum(timed),
        "peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
        "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--output", required=True)
    m.add_argument("--tokenizer", required=True, help="folder with the Falcon tokenizer files")
    m.add_argument("--preset", default="7b", choices=sorted(PRESETS))
    t = sub.add_parser("train")
    t.add_argument("--checkpoint", required=True)
    t.add_argument("--quantize", choices=["nf4"])
    t.add_argument("--steps", type=int, default=12)
    t.add_argument("--batch", type=int, default=1)
    t.add_argument("--seq-len", type=int, default=512)
    args = ap.parse_args()
    (make if args.cmd == "make" else train)(args)


if __name__ == "__main__":
    main()
