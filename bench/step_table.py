"""The training-step table of bench/gpu_bench.sh: falconry against PyTorch eager and
torch.compile on the same card, same config, same tokens.

    python bench/step_table.py OUT_DIR MODEL:MICRO:ACCUM ...
"""

import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
card = (out / "card.txt").read_text().split(",")[0].strip() if (out / "card.txt").exists() else "?"
print(f"\n{card}: training tokens/s, seq 2048, bf16 (falconry: steps 2.. of its run; PyTorch: after 10 warm-up steps)\n")
print("| model | micro x accum | falconry tokens/s | MFU | peak MiB | PyTorch eager | ratio | torch.compile | ratio |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for run in sys.argv[2:]:
    parts = run.split(":") + [""] * 3
    model, micro, accum, flags = parts[0], parts[1] or "4", parts[2] or "2", parts[3]
    tag = f"{model}-{micro}-{accum}" + (f"-{flags.replace(',', '-')}" if flags else "")
    label = model + (f" ({flags})" if flags else "")
    m = out / f"metrics-{tag}.jsonl"
    if not m.exists():
        print(f"| {label} | {micro} x {accum} | (no run) | | | | | | |")
        continue
    rows = [json.loads(l) for l in m.read_text().splitlines() if l.strip()]
    train = [r for r in rows if r["split"] == "train"][1:]
    tps = len(train) / sum(1 / r["tokens_per_sec"] for r in train)
    mfu = tps * train[0]["mfu"] / train[0]["tokens_per_sec"]
    mem = (out / f"mem-{tag}.txt").read_text().strip() if (out / f"mem-{tag}.txt").exists() else ""
    cells = []
    for suffix in ("", "-compiled"):
        p = out / f"torch-{tag}{suffix}.json"
        try:
            t = json.loads(p.read_text().splitlines()[-1])["tokens_per_sec"]
            cells += [f"{t:,.0f}", f"{tps / t:.2f}"]
        except (OSError, IndexError, ValueError, KeyError):
            cells += ["-", "-"]
    print(f"| {label} | {micro} x {accum} | {tps:,.0f} | {100 * mfu:.1f}% | {mem} | " + " | ".join(cells) + " |")
