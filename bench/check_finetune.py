"""The CUDA engine's LoRA / QLoRA gradients against transformers + peft.

    python bench/check_finetune.py OUT

OUT is what `finetune_check OUT` wrote: per model shape a HF folder `model/` (and `model-nf4/`,
its projections after the NF4 round trip, what a QLoRA base multiplies by), a PEFT folder
`adapter/`, `windows.bin` ([B, T + 1] u16), `mask.bin` ([B, T] f32, 1 = trained target) and
per case the engine's masked loss and adapter gradients (`<case>.safetensors`). Here peft on
transformers' FalconForCausalLM computes the same masked mean cross-entropy and gradients in
float32, and again under bf16 autocast (PyTorch's own mixed-precision error); each engine
gradient must be within 4x the autocast error or 3e-2 of the float32 one, whichever is larger.
Prints a table; exits 1 on failure.
"""

import json
import pathlib
import sys

import numpy as np
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import FalconForCausalLM

out = pathlib.Path(sys.argv[1])
rel = lambda a, b: ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def reference(d, base, B, T, autocast):
    win = torch.from_numpy(np.fromfile(d / "windows.bin", dtype="<u2").astype(np.int64)).view(B, T + 1).cuda()
    mask = torch.from_numpy(np.fromfile(d / "mask.bin", dtype="<f4")).view(B, T).cuda()
    model = FalconForCausalLM.from_pretrained(d / base, torch_dtype=torch.float32).cuda()
    model = PeftModel.from_pretrained(model, d / "adapter", is_trainable=True)
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=win[:, :-1]).logits
    ce = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), win[:, 1:].reshape(-1), reduction="none")
    loss = (ce * mask.reshape(-1)).sum() / mask.sum()
    loss.backward()
    grads = {n.replace(".default", ""): p.grad.detach().double()
             for n, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


failed = []
print(f"{torch.cuda.get_device_name()}: engine adapter gradients vs peft (f32; autocast bf16 for scale)")
print(f"{'case':28} {'loss engine':>12} {'peft f32':>10} {'worst grad err':>15} {'autocast err':>13}  tensors")
for c in json.loads((out / "cases.json").read_text()):
    d = out / c["dir"]
    ref_loss, ref = reference(d, c["base"], c["batch"], c["seq"], False)
    _, amp = reference(d, c["base"], c["batch"], c["seq"], True)
    ours = {k: v.cuda().double() for k, v in load_file(d / f"{c['case']}.safetensors").items()}
    loss = ours.pop("loss").item()
    if set(ours) != set(ref):
        failed.append(f"{c['dir']} {c['case']}: tensors differ: {sorted(set(ours) ^ set(ref))[:4]}")
        continue
    worst, worst_amp = 0.0, 0.0
    for name, want in ref.items():
        err, amp_err = rel(ours[name], want), rel(amp[name], want)
        worst, worst_amp = max(worst, err), max(worst_amp, amp_err)
        if err > max(4 * amp_err, 3e-2):
            failed.append(f"{c['dir']} {c['case']} {name}: rel. error {err:.2e} (autocast {amp_err:.2e})")
    if abs(loss - ref_loss) > 2e-2:
        failed.append(f"{c['dir']} {c['case']}: loss {loss:.5f} vs {ref_loss:.5f}")
    print(f"{c['dir'] + ' ' + c['case']:28} {loss:12.5f} {ref_loss:10.5f} {worst:15.2e} {worst_amp:13.2e}  {len(ref)}")
for f in failed:
    print("FAIL", f)
sys.exit(1 if failed else 0)
