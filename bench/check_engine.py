"""The CUDA engine's loss and gradients against transformers' FalconForCausalLM.

    python bench/check_engine.py OUT

OUT is what `engine_check OUT ...` wrote: `model/` (a HF folder), `windows.bin` ([B, T + 1]
u16 token windows), `grads.safetensors` and `engine.json` (the engine's bf16 loss and weight
gradients). Here transformers computes the same mean cross-entropy and gradients in float32,
and again under bf16 autocast (the error PyTorch's own mixed precision makes); every engine
tensor must be within 4x the autocast error or 2e-2 of the float32 reference, whichever is
larger. Prints a table; exits 1 on failure.
"""

import json
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import FalconForCausalLM

out = pathlib.Path(sys.argv[1])
rep = json.loads((out / "engine.json").read_text())
B, T = rep["batch"], rep["seq"]
win = torch.from_numpy(np.fromfile(out / "windows.bin", dtype="<u2").astype(np.int64)).view(B, T + 1).cuda()
ids, targets = win[:, :-1], win[:, 1:]


def run(autocast):
    model = FalconForCausalLM.from_pretrained(out / "model", torch_dtype=torch.float32).cuda()
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
    loss.backward()
    grads = {n: p.grad.detach().double() for n, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


def activations():
    """Rel. error of the engine's residual stream (block inputs) and logits against f32."""
    acts = {k: v.cuda().double() for k, v in load_file(out / "activations.safetensors").items()}
    model = FalconForCausalLM.from_pretrained(out / "model", torch_dtype=torch.float32).cuda()
    with torch.no_grad():
        res = model(input_ids=ids, output_hidden_states=True)
    hs = res.hidden_states
    rows = [(f"x.{i} (block {i} input)", rel(acts[f"x.{i}"], hs[i].reshape(-1, hs[i].shape[-1]).double()))
            for i in range(len(hs) - 1)]
    rows.append(("logits", rel(acts["logits"], res.logits.reshape(-1, res.logits.shape[-1]).double())))
    return rows


rel = lambda a, b: ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
act_rows = activations() if (out / "activations.safetensors").exists() else []
ref_loss, ref = run(False)
amp_loss, amp = run(True)
ours = {k: v.cuda().double() for k, v in load_file(out / "grads.safetensors").items()}
print(f"{torch.cuda.get_device_name()}: {rep['model']} B{B} T{T}")
print(f"loss: engine {rep['loss']:.6f} (eval pass {rep['eval_loss']:.6f}), transformers f32 {ref_loss:.6f}, autocast bf16 {amp_loss:.6f}")
failed = []
for name, e in act_rows:
    print(f"activation {name}: rel. error {e:.2e}")
    if e > 2e-2:
        failed.append(name)
print("| tensor | engine vs f32 | autocast vs f32 | ok |\n|---|---:|---:|---|")
loss_ok = abs(rep["loss"] - ref_loss) <= max(4 * abs(amp_loss - ref_loss), 2e-3 * ref_loss)
if not loss_ok:
    failed.append("loss")
for name in sorted(ours):
    key = name if name in ref else name.removeprefix("transformer.")
    e, a = rel(ours[name], ref[key]), rel(amp[key], ref[key])
    ok = e <= max(4 * a, 2e-2)
    if not ok:
        failed.append(name)
    print(f"| {name} | {e:.2e} | {a:.2e} | {'yes' if ok else 'NO'} |")
missing = [k for k in ref if k not in ours and ("transformer." + k) not in ours]
if missing:
    failed.append(f"missing {missing}")
print(f"fwd+bwd {rep['fwd_bwd_ms']:.2f} ms, {rep['tokens_per_sec_fwd_bwd']:,.0f} tokens/s, {rep['tflops_fwd_bwd']:.0f} TFLOP/s; "
      f"AdamW steps on one batch: {', '.join(f'{l:.3f}' for l in rep['step_losses'])}")
if any(b >= a for a, b in zip(rep["step_losses"], rep["step_losses"][1:])):
    failed.append("loss did not fall under AdamW")
if failed:
    print("FAILED:", failed)
    sys.exit(1)
print("engine check passed")
