"""PEFT-parity fixtures for falconry's LoRA adapters (train/tests/fixtures/lora/*).

Puts a HF `peft` LoRA on transformers' FalconForCausalLM for two of the tiny fixture
checkpoints (train/tests/fixtures/falcon-*), with random non-zero A and B (a fresh adapter's
B is zero and would test nothing), saves it with `save_pretrained` (adapter_config.json +
adapter_model.safetensors) and the logits peft computes, and those of the merged model.
`train/tests/lora.rs` loads each folder into falconry (within 1e-4), and writes the adapter
back out, which must equal peft's tensors and config.

    python scripts/lora_fixture.py                 # (re)write the fixtures
    python scripts/lora_fixture.py --check DIR     # an adapter folder falconry wrote: load it with
        --base CHECKPOINT                          # peft onto CHECKPOINT, compare with
                                                   # DIR/falconry_logits.safetensors
"""

import argparse
import json
import os
import pathlib
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import FalconForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Relative to ROOT, so that base_model_name_or_path in the fixtures names no machine's folder.
FIXTURES = pathlib.Path("train") / "tests" / "fixtures"

# name: (base checkpoint, r, alpha, targets). alpha / r = 3, not 1 or 2, so a wrong scale shows;
# the 40b-style adapter leaves two projections without one.
ADAPTERS = {
    "peft-7b-style": ("falcon-7b-style", 4, 12, ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]),
    "peft-40b-style": ("falcon-40b-style", 2, 6, ["query_key_value", "dense_4h_to_h"]),
}


def make(name, base, r, alpha, targets, seed):
    torch.manual_seed(seed)
    model = FalconForCausalLM.from_pretrained(FIXTURES / base).eval()
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config).eval()
    with torch.no_grad():
        for pname, p in peft_model.named_parameters():
            if "lora_" in pname:
                p.normal_(0.0, 0.2)
    out = FIXTURES / "lora" / name
    peft_model.save_pretrained(out)
    (out / "README.md").unlink(missing_ok=True)
    ids = load_file(FIXTURES / base / "expected.safetensors")["input_ids"]
    with torch.no_grad():
        logits = peft_model(ids).logits.float()
        merged = peft_model.merge_and_unload()(ids).logits.float()
    save_file({"input_ids": ids, "logits": logits.contiguous(), "merged_logits": merged.contiguous()},
              out / "expected.safetensors", metadata={"format": "pt"})
    print(f"{name}: |logits| max {logits.abs().max():.3f}, merged vs adapted {(merged - logits).abs().max():.2e}")


def check(folder, base):
    folder = pathlib.Path(folder)
    model = FalconForCausalLM.from_pretrained(base).eval()
    model = PeftModel.from_pretrained(model, folder).eval()
    got = load_file(folder / "falconry_logits.safetensors")
    with torch.no_grad():
        logits = model(got["input_ids"].to(torch.int64)).logits.float()
    diff = (logits - got["logits"]).abs().max().item()
    print(json.dumps({"folder": str(folder), "max_abs_diff": diff, "shape": list(logits.shape)}))
    if diff > 1e-4:
        sys.exit(f"peft's logits differ from falconry's by {diff}")


def main():
    os.chdir(ROOT)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="DIR", help="check a falconry-written adapter instead of writing fixtures")
    ap.add_argument("--base", metavar="CHECKPOINT", help="the base checkpoint of --check")
    args = ap.parse_args()
    if args.check:
        if not args.base:
            ap.error("--check needs --base")
        check(args.check, args.base)
        return
    for seed, (name, spec) in enumerate(ADAPTERS.items()):
        make(name, *spec, seed=seed)


if __name__ == "__main__":
    main()
