#!/usr/bin/env python3
"""Cluster near-duplicates with datatrove's MinHash (0.10.1) at RefinedWeb's preset (450 x 20)
and write the documents and datatrove's clusters as a fixture for falconry-dedup's agreement test.

Documents: the first 50 article bodies (by page id) of shared/data/extraction-bench's ground
truth, cut to 250 words, each with 5 copies where a fraction f of the words is replaced by
other words of the same article (f = 0, 0.005, 0.01, 0.02, 0.05, 0.15: exact Jaccard of
5-gram shingles about 1, 0.95, 0.9, 0.82, 0.63, 0.28). Seeded, so the fixture is reproducible.

Run: /work/main/.venv/bin/python scripts/minhash_datatrove.py [DATA_DIR] [OUT.jsonl]
Output (JSON lines): {"id", "text", "datatrove_cluster"}; -1 = in no cluster.
"""

import json
import os
import random
import struct
import sys
import tempfile

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupSignature,
)
from datatrove.utils.hashing import HashConfig

FRACTIONS = [0.0, 0.005, 0.01, 0.02, 0.05, 0.15]


def make_docs(data_dir):
    with open(os.path.join(data_dir, "extraction-bench", "ground-truth.json")) as f:
        truth = json.load(f)
    rng = random.Random(20231)
    docs = []
    for page in sorted(truth)[:50]:
        words = truth[page]["articleBody"].split()[:250]
        for fi, frac in enumerate(FRACTIONS):
            copy = list(words)
            for pos in rng.sample(range(len(words)), round(frac * len(words))):
                copy[pos] = rng.choice(words)
            docs.append({"id": f"{page[:12]}-{fi}", "text": " ".join(copy)})
    return docs


def main():
    data_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(__file__), "..", "dedup", "tests", "fixtures", "datatrove_minhash.jsonl")
    docs = make_docs(data_dir)
    config = MinhashConfig(n_grams=5, num_buckets=450, hashes_per_bucket=20, seed=1,
                           hash_config=HashConfig(precision=64))
    with tempfile.TemporaryDirectory() as tmp:
        def reader(data=None, rank=0, world_size=1):
            for i, d in enumerate(docs):
                yield Document(text=d["text"], id=d["id"])

        for pipeline in (
            [reader, MinhashDedupSignature(output_folder=f"{tmp}/sigs", config=config, language="en")],
            [MinhashDedupBuckets(input_folder=f"{tmp}/sigs", output_folder=f"{tmp}/buckets", config=config)],
            [MinhashDedupCluster(input_folder=f"{tmp}/buckets", output_folder=f"{tmp}/clusters", config=config,
                                 save_cluster_id=True)],
        ):
            tasks = config.num_buckets if isinstance(pipeline[0], MinhashDedupBuckets) else 1
            LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=2,
                                  logging_dir=f"{tmp}/logs-{len(os.listdir(tmp))}").run()
        labels = [-1] * len(docs)
        path = f"{tmp}/clusters/000000.clusters"
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            for doc, cluster in struct.iter_unpack("<II", data):
                labels[doc] = cluster
    with open(out, "w") as f:
        for d, label in zip(docs, labels):
            f.write(json.dumps({"id": d["id"], "text": d["text"], "datatrove_cluster": label}) + "\n")
    print(f"{len(docs)} docs, {len(set(l for l in labels if l >= 0))} clusters -> {out}")


if __name__ == "__main__":
    main()
