"""Scores a text with a falconry checkpoint in HF transformers, as `falconry eval` does.

`falconry eval --checkpoint DIR --input FILE --tokenizer FILE` prints
`{"tokens", "loss", "perplexity"}`: the mean next-token loss over the text, in
non-overlapping windows of min(max_position_embeddings, 2048) predictions, in f32. This script
loads the same folder with `FalconForCausalLM.from_pretrained`, scores the same windows and
compares with falconry's line (given as --falconry), so a checkpoint trained on the GPU is shown
to be a transformers checkpoint computing the same function.

Usage: python bench/check_checkpoint.py --checkpoint DIR --input FILE --tokenizer FILE
           --falconry EVAL.json [--tolerance 1e-3]
"""

import argparse
import json
import math

import torch
from tokenizers import Tokenizer
from transformers import FalconForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--falconry", required=True, help="falconry eval's JSON line")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="relative, on the loss")
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = FalconForCausalLM.from_pretrained(args.checkpoint, torch_dtype=torch.float32)
    model = model.to(device).eval()
    ids = Tokenizer.from_file(args.tokenizer).encode(open(args.input).read()).ids
    seq_len = min(model.config.max_position_embeddings, 2048)

    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, seq_len):
            window = torch.tensor(ids[start : start + seq_len + 1], device=device)[None]
            logits = model(window[:, :-1]).logits.float()
            loss = torch.nn.functional.cross_entropy(
                logits[0], window[0, 1:], reduction="sum"
            )
            total += loss.item()
            count += window.shape[1] - 1
    ours = json.load(open(args.falconry))
    loss = total / count
    report = {
        "tokens": count,
        "loss": loss,
        "perplexity": math.exp(loss),
        "falconry": ours,
        "relative_difference": abs(loss - ours["loss"]) / abs(loss),
    }
    report["ok"] = count == ours["tokens"] and report["relative_difference"] <= args.tolerance
    print(json.dumps(report))
    raise SystemExit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
