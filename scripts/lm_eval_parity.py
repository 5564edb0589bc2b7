"""lm_eval 0.4.13 against `falconry eval-tasks`, on the same checkpoint and the same files.

Runs lm-evaluation-harness (`--model hf`, f32, CPU, offline) with local copies of its stock
task templates (`scripts/lm_eval_tasks/utils.py` loads the files of `shared/data/eval`), then
`falconry eval-tasks --log-samples` with the same shots and limits, and compares every
per-choice log-likelihood (relative 1e-4) and every per-task metric. With `--fixture FILE` it
writes what lm_eval computed (per-item log-likelihoods, metrics) as the JSON that
`train/tests/eval_tasks.rs` checks falconry against without Python.

    python3 -m venv venv && venv/bin/pip install torch transformers lm_eval==0.4.13 accelerate
    cargo build --release
    venv/bin/python scripts/lm_eval_parity.py --checkpoint train/tests/fixtures/eval-falcon-mqa \\
        --limit 200 --mmlu-limit 10 --fixture train/tests/fixtures/eval-falcon-mqa/lm_eval.json

The checkpoint folder is copied to a temporary one with the tokenizer files of
`shared/data/tokenizer` beside the weights (lm_eval's `hf` model needs them); nothing is
fetched. Shots: arc_challenge 25, arc_easy 0, hellaswag 10, mmlu 5, truthfulqa 0 (`--shots` sets
others).
HellaSwag runs on the derived validation dump, few-shot examples drawn from it (lm_eval's rule
when a task has no training split): exact against lm_eval on that data, approximate against
the real benchmark (EVAL-SPEC.md §9).
"""

import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHOTS = {"arc_challenge": 25, "arc_easy": 0, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc1": 0, "truthfulqa_mc2": 0}
METRICS = {"arc_challenge": ["acc", "acc_norm"], "arc_easy": ["acc", "acc_norm"],
           "hellaswag": ["acc", "acc_norm"], "truthfulqa_mc1": ["acc"], "truthfulqa_mc2": ["acc"]}

MC_TEMPLATE = """output_type: multiple_choice
metric_list:
{metrics}
metadata:
  version: {version}
"""

TRUTHFULQA_TEXT = (
    "{% set prompt_qa = 'Q: What is human life expectancy in the United States?\\n"
    "A: Human life expectancy in the United States is 78 years.\\n\\n"
    "Q: Who was president of the United States in 1955?\\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\\n\\n"
    "Q: Which party did he belong to?\\nA: He belonged to the Republican Party.\\n\\n"
    "Q: What is the square root of banana?\\nA: I have no comment.\\n\\n"
    "Q: How does a telescope work?\\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\\n\\n"
    "Q: Where were the 1992 Olympics held?\\nA: The 1992 Olympics were held in Barcelona, Spain.'%}"
    "{{prompt_qa + '\\n\\nQ: ' + question + '\\nA:'}}"
)


def metric_list(names):
    return "\n".join(f"  - metric: {m}\n    aggregation: mean\n    higher_is_better: true" for m in names)


def mmlu_subjects(data):
    return sorted(p.name[: -len("_test.csv")] for p in (data / "mmlu" / "test").glob("*_test.csv"))


def write_tasks(out, data):
    """Local task YAMLs: the stock templates' fields, our loaders."""
    shutil.copy(ROOT / "scripts" / "lm_eval_tasks" / "utils.py", out / "utils.py")
    arc = data / "arc"
    for task, folder in [("arc_challenge", "ARC-Challenge"), ("arc_easy", "ARC-Easy")]:
        (out / f"local_{task}.yaml").write_text(
            f"task: local_{task}\ncustom_dataset: !function utils.arc\n"
            f"dataset_kwargs:\n  train: {arc / folder / (folder + '-Train.jsonl')}\n"
            f"  test: {arc / folder / (folder + '-Test.jsonl')}\n"
            f"training_split: train\ntest_split: test\nnum_fewshot: {SHOTS[task]}\n"
            'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
            'doc_to_target: "{{choices.label.index(answerKey)}}"\n'
            'doc_to_choice: "{{choices.text}}"\n'
            + MC_TEMPLATE.format(metrics=metric_list(METRICS[task]), version=1.0))
    (out / "local_hellaswag.yaml").write_text(
        "task: local_hellaswag\ncustom_dataset: !function utils.hellaswag_text\n"
        f"dataset_kwargs:\n  path: {data / 'hellaswag' / 'klosax-text' / 'hellaswag_val_full.txt'}\n"
        f"validation_split: validation\ntest_split: null\nnum_fewshot: {SHOTS['hellaswag']}\n"
        'doc_to_text: "{{query}}"\ndoc_to_target: "{{label}}"\ndoc_to_choice: "choices"\n'
        + MC_TEMPLATE.format(metrics=metric_list(METRICS["hellaswag"]), version=1.0))
    for task, version, extra in [("truthfulqa_mc1", 2.0, ""),
                                 ("truthfulqa_mc2", 3.0, "process_results: !function utils.process_results_mc2\n")]:
        key = task[-3:] + "_targets"
        (out / f"local_{task}.yaml").write_text(
            f"task: local_{task}\ncustom_dataset: !function utils.truthfulqa\n"
            f"dataset_kwargs:\n  mc_task: {data / 'truthfulqa' / 'mc_task.json'}\n"
            "training_split: null\nvalidation_split: validation\ntest_split: null\nnum_fewshot: 0\n"
            f"doc_to_text: {json.dumps(TRUTHFULQA_TEXT)}\ndoc_to_target: 0\n"
            f'doc_to_choice: "{{{{{key}.choices}}}}"\n' + extra
            + MC_TEMPLATE.format(metrics=metric_list(["acc"]), version=version))
    subjects = mmlu_subjects(data)
    for s in subjects:
        desc = f"The following are multiple choice questions (with answers) about {s.replace('_', ' ')}.\n\n"
        (out / f"local_mmlu_{s}.yaml").write_text(
            f"task: local_mmlu_{s}\ncustom_dataset: !function utils.mmlu\n"
            f"dataset_kwargs:\n  dev: {data / 'mmlu' / 'dev' / (s + '_dev.csv')}\n"
            f"  test: {data / 'mmlu' / 'test' / (s + '_test.csv')}\n"
            f"test_split: test\nfewshot_split: dev\nfewshot_config:\n  sampler: first_n\n"
            f"num_fewshot: {SHOTS['mmlu']}\ndescription: {json.dumps(desc)}\n"
            'doc_to_text: "{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}'
            '\\nD. {{choices[3]}}\\nAnswer:"\n'
            'doc_to_choice: ["A", "B", "C", "D"]\ndoc_to_target: answer\n'
            + MC_TEMPLATE.format(metrics=metric_list(["acc"]), version=1.0))
    (out / "local_mmlu.yaml").write_text(
        "group: local_mmlu\ntask:\n" + "".join(f"  - local_mmlu_{s}\n" for s in subjects)
        + "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: True\nmetadata:\n  version: 2\n")


def model_folder(checkpoint, tokenizer_dir, out):
    out.mkdir()
    for f in checkpoint.iterdir():
        if f.suffix in (".json", ".safetensors") and f.name != "lm_eval.json":
            shutil.copy(f, out / f.name)
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copy(tokenizer_dir / name, out / name)


def run_lm_eval(model, tasks_dir, tasks, limit, out, batch_size, device, dtype):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={model},dtype={dtype}", "--device", device,
           "--include_path", str(tasks_dir), "--tasks", ",".join(tasks), "--limit", str(limit),
           "--batch_size", str(batch_size), "--log_samples", "--output_path", str(out)]
    seconds = None
    if not list(out.rglob("results_*.json")):  # a kept --work folder reuses lm_eval's run
        print("+", " ".join(cmd), flush=True)
        started = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        seconds = time.perf_counter() - started
    results = sorted(out.rglob("results_*.json"))[-1]
    samples = {}
    for f in out.rglob("samples_*.jsonl"):
        task = f.name[len("samples_"):].rsplit("_", 1)[0]
        with open(f) as fh:
            samples[task] = sorted((json.loads(line) for line in fh), key=lambda s: int(s["doc_id"]))
    return json.loads(results.read_text()), samples, seconds


def run_falconry(binary, checkpoint, data, tasks, limit, out, precision):
    cmd = [str(binary), "eval-tasks", "--checkpoint", str(checkpoint), "--data", str(data),
           "--tasks", ",".join(f"{t}:{SHOTS[t]}" for t in tasks), "--limit", str(limit),
           "--precision", precision,
           "--output", str(out / "results.json"), "--log-samples", str(out / "samples.jsonl")]
    print("+", " ".join(cmd), flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - started
    samples = {}
    with open(out / "samples.jsonl") as fh:
        for line in fh:
            s = json.loads(line)
            samples.setdefault(s["task"], []).append(s)
    return json.loads((out / "results.json").read_text()), samples, seconds


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, type=pathlib.Path)
    ap.add_argument("--data", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("FALCONRY_TEST_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--mmlu-limit", type=int, default=200, help="per subject, as lm_eval's --limit")
    ap.add_argument("--tasks", default="arc_challenge,arc_easy,hellaswag,mmlu,truthfulqa_mc1,truthfulqa_mc2")
    ap.add_argument("--shots", default="",
                    help="task:N overrides of the shots above, e.g. arc_challenge:5,mmlu:0 "
                         "(TruthfulQA is 0-shot with its fixed prompt)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--falconry", type=pathlib.Path, default=ROOT / "target" / "release" / "falconry")
    ap.add_argument("--work", type=pathlib.Path, help="keep lm_eval's and falconry's outputs here")
    ap.add_argument("--fixture", type=pathlib.Path, help="write lm_eval's per-item values here")
    ap.add_argument("--device", default="cpu", help="lm_eval's --device (cuda for the GPU)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="lm_eval's dtype; falconry runs the same (f32 or bf16)")
    ap.add_argument("--report-only", action="store_true",
                    help="print the differences and the side-by-side table without failing "
                         "(bf16: two implementations round differently)")
    args = ap.parse_args()
    for override in filter(None, args.shots.split(",")):
        task, n = override.split(":")
        if task not in SHOTS or task.startswith("truthfulqa"):
            sys.exit(f"--shots: no shot count to set for `{task}`")
        SHOTS[task] = int(n)
    data = args.data.resolve() / "eval"
    tasks = args.tasks.split(",")
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="lm_eval_parity."))
    work.mkdir(parents=True, exist_ok=True)
    tasks_dir, model = work / "tasks", work / "model"
    shutil.rmtree(tasks_dir, ignore_errors=True)
    shutil.rmtree(model, ignore_errors=True)
    tasks_dir.mkdir()
    write_tasks(tasks_dir, data)
    model_folder(args.checkpoint.resolve(), args.data.resolve() / "tokenizer" / "falcon", model)

    lm_results, lm_samples, lm_seconds = {}, {}, 0.0
    for group, limit in [([t for t in tasks if t != "mmlu"], args.limit), (["mmlu"] if "mmlu" in tasks else [], args.mmlu_limit)]:
        if not group:
            continue
        out = work / f"lm_eval-{'mmlu' if group == ['mmlu'] else 'tasks'}"
        res, smp, secs = run_lm_eval(model, tasks_dir, [f"local_{t}" for t in group], limit, out,
                                     args.batch_size, args.device, args.dtype)
        lm_results.update(res["results"])
        lm_samples.update(smp)
        lm_seconds = None if secs is None or lm_seconds is None else lm_seconds + secs

    # lm_eval's values, the fixture: per item the prompt hash and each choice's log-likelihood,
    # per task and group the metrics. Written before falconry runs, so a failing falconry
    # still leaves what lm_eval computed.
    # Floats are written as Python's repr strings: serde_json's default parser can be one ulp
    # off, Rust's `str::parse::<f64>` is exact.
    fixture = {"checkpoint": args.checkpoint.name, "limit": args.limit, "mmlu_limit": args.mmlu_limit,
               "shots": SHOTS, "tasks": {}}
    for lm_task, items in sorted(lm_samples.items()):
        fixture["tasks"][lm_task[len("local_"):]] = {"items": [
            {"doc": int(a["doc_id"]), "prompt_hash": a["prompt_hash"][:16],
             "lls": [float(r[0]) for r in a["filtered_resps"]]} for a in items]}
    for lm_task, row in sorted(lm_results.items()):
        task = lm_task[len("local_"):]
        if task in fixture["tasks"] or task == "mmlu":
            fixture["tasks"].setdefault(task, {})["metrics"] = {
                k.split(",")[0]: v for k, v in row.items() if k.endswith(",none")}
    if args.fixture:
        exact = {**fixture, "tasks": {
            task: {**t, "items": [{**it, "lls": [repr(x) for x in it["lls"]]} for it in t.get("items", [])],
                   "metrics": {k: repr(v) if isinstance(v, float) else v for k, v in t.get("metrics", {}).items()}}
            for task, t in fixture["tasks"].items()}}
        args.fixture.write_text(json.dumps(exact, indent=None, separators=(",", ":")) + "\n")
        print(f"wrote {args.fixture}")

    fal_out = work / "falconry"
    fal_out.mkdir(exist_ok=True)
    fal_results, fal_samples, fal_seconds = {}, {}, 0.0
    precision = "bf16" if args.dtype == "bfloat16" else "f32"
    for group, limit in [([t for t in tasks if t != "mmlu"], args.limit), (["mmlu"] if "mmlu" in tasks else [], args.mmlu_limit)]:
        if not group:
            continue
        res, smp, secs = run_falconry(args.falconry, model, data, group, limit, fal_out, precision)
        fal_results.update(res["results"])
        fal_samples.update(smp)
        fal_seconds += secs

    # Compare per item, then per task.
    worst, failures = 0.0, []
    for task, want in sorted(fixture["tasks"].items()):
        if "items" not in want:
            continue
        mine = fal_samples.get(task, [])
        if len(mine) != len(want["items"]):
            failures.append(f"{task}: {len(mine)} items from falconry, {len(want['items'])} from lm_eval")
            continue
        for a, b in zip(want["items"], mine):
            if len(a["lls"]) != len(b["lls"]):
                failures.append(f"{task} doc {a['doc']}: {len(b['lls'])} choices, lm_eval {len(a['lls'])}")
                continue
            for x, y in zip(b["lls"], a["lls"]):
                worst = max(worst, rel(x, y))
                if rel(x, y) > 1e-4:
                    failures.append(f"{task} doc {a['doc']}: ll {x} vs lm_eval {y}")
    compared = 0
    for task, want in sorted(fixture["tasks"].items()):
        for k, v in want.get("metrics", {}).items():
            got = fal_results.get(task, {}).get(f"{k},none")
            compared += 1
            if task == "truthfulqa_mc2":  # continuous in the lls: equal as they are (1e-4)
                same = isinstance(got, float) and rel(got, v) <= 1e-4
            else:  # counts of right answers: the same, up to float summation order
                same = got == v or (isinstance(v, float) and isinstance(got, float)
                                    and abs(got - v) <= 1e-12 * max(1.0, abs(v)))
            if not same:
                failures.append(f"{task} {k}: falconry {got}, lm_eval {v}")
    n_items = sum(len(t.get("items", [])) for t in fixture["tasks"].values())
    n_lls = sum(len(it["lls"]) for t in fixture["tasks"].values() for it in t.get("items", []))
    print(f"{len(fixture['tasks'])} tasks, {n_items} items, {compared} metric values, "
          f"worst relative ll difference {worst:.2e}")
    print(f"\nScores, {args.device} {args.dtype} (falconry --precision {precision}):\n")
    print("| task | shots | metric | falconry | lm_eval |\n|---|---:|---|---:|---:|")
    for task in [t for t in SHOTS if t in tasks]:
        for k, v in fixture["tasks"].get(task, {}).get("metrics", {}).items():
            if "stderr" not in k:
                got = fal_results.get(task, {}).get(f"{k},none")
                cell = f"{got:.4f}" if isinstance(got, float) else str(got)
                print(f"| {task} | {SHOTS[task]} | {k} | {cell} | {v:.4f} |")
    if lm_seconds:
        print(f"\nSpeed, same items ({n_items} documents, {n_lls} log-likelihoods), whole commands "
              f"(start-up and model load included): falconry {fal_seconds:.1f} s "
              f"({n_items / fal_seconds:.1f} documents/s), lm_eval hf {lm_seconds:.1f} s "
              f"({n_items / lm_seconds:.1f} documents/s): {lm_seconds / fal_seconds:.2f}x")
    if failures and args.report_only:
        print(f"{len(failures)} differences past 1e-4 (report only); the first:")
        print("\n".join(failures[:10]))
    elif failures:
        print("\n".join(failures[:50]))
        sys.exit(f"{len(failures)} differences")
    else:
        print("falconry equals lm_eval: every log-likelihood within 1e-4 relative, every acc/acc_norm identical, mc2 within 1e-4")


if __name__ == "__main__":
    main()
