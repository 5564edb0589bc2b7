"""Loaders of the local benchmark files for lm_eval 0.4.13 (`custom_dataset`), offline.

Each returns the HF dataset's schema, so the stock templates of `lm_eval/tasks/` apply
unchanged (EVAL-SPEC.md §7.1). `custom_dataset` is called with `dataset_kwargs` and the task's
`metadata` as keyword arguments, hence `**_`.
"""

import csv
import json
import re

import datasets


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def arc(train, test, **_):
    """ARC jsonl (AI2's release) -> HF `allenai/ai2_arc` rows."""

    def row(r):
        q = r["question"]
        return {
            "id": r["id"],
            "question": q["stem"],
            "choices": {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]},
            "answerKey": r["answerKey"],
        }

    return datasets.DatasetDict({
        "train": datasets.Dataset.from_list([row(r) for r in _read_jsonl(train)]),
        "test": datasets.Dataset.from_list([row(r) for r in _read_jsonl(test)]),
    })


def mmlu(dev, test, **_):
    """HF `cais/mmlu` CSV export (header `question,choice0..3,answer`) -> its rows, all strings
    kept as strings (the HF csv builder would turn "0" or "NA" into other types)."""

    def rows(path):
        with open(path, encoding="utf-8", newline="") as f:
            return [{"question": r["question"],
                     "choices": [r["choice0"], r["choice1"], r["choice2"], r["choice3"]],
                     "answer": int(r["answer"])} for r in csv.DictReader(f)]

    return datasets.DatasetDict({"dev": datasets.Dataset.from_list(rows(dev)),
                                 "test": datasets.Dataset.from_list(rows(test))})


def truthfulqa(mc_task, **_):
    """TruthfulQA v0 `mc_task.json` -> HF `truthful_qa/multiple_choice` rows (key order is the
    choice order)."""
    with open(mc_task, encoding="utf-8") as f:
        data = json.load(f)

    def targets(d):
        return {"choices": list(d.keys()), "labels": list(d.values())}

    return datasets.DatasetDict({"validation": datasets.Dataset.from_list(
        [{"question": r["question"], "mc1_targets": targets(r["mc1_targets"]),
          "mc2_targets": targets(r["mc2_targets"])} for r in data])})


def preprocess(text):
    """lm_eval/tasks/hellaswag/utils.py, verbatim."""
    text = text.strip()
    # NOTE: Brackets are artifacts of the WikiHow dataset portion of HellaSwag.
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def hellaswag_text(path, **_):
    """The derived HellaSwag validation dump (6 lines per item: `label: ctx`, gold, 4 endings)
    -> rows of the processed schema (`query`, `choices`, `label`), each line through lm-eval's
    `preprocess`. `ind` keeps rows distinct, as the real dataset's are, for the sampler's
    eval-doc exclusion. Only a validation split: few-shot examples come from it (approximate)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert len(lines) % 6 == 0, f"{path}: {len(lines)} lines, not 6 per item"
    rows = []
    for i in range(0, len(lines), 6):
        rows.append({"ind": i // 6, "query": preprocess(lines[i]),
                     "choices": [preprocess(e) for e in lines[i + 2:i + 6]], "label": str(int(lines[i + 1]))})
    return datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows)})


def process_results_mc2(doc, results):
    """lm_eval/tasks/truthfulqa/utils.py, verbatim (`!function` resolves beside the YAML)."""
    import numpy as np

    ll, _ = zip(*results)
    ll = np.array(ll)
    probs = np.exp(ll)
    probs_norm = probs / np.sum(probs)
    labels = np.array(doc["mc2_targets"]["labels"])
    pm_true = np.sum(probs_norm[labels == 1])
    return {"acc": pm_true}
