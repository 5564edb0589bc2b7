#!/usr/bin/env python3
"""Per-core speed of datatrove 0.10.1's MinHash signature step (MinhashDedupSignature), the
peer of falconry-dedup's signature benchmark (dedup/examples/bench.rs).

Documents: N (default 2000) mixes of 4-11 random sentences of the extraction-bench articles,
like falconry's SyntheticCorpus (seeded). One process, one thread; prints a Markdown row per
preset with docs/s after start-up (spaCy tokenizer loaded, first document done).

Run: /work/main/.venv/bin/python scripts/bench_datatrove_minhash.py [N] [DATA_DIR]
"""

import json
import os
import random
import re
import sys
import tempfile
import time

from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
from datatrove.utils.hashing import HashConfig


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    data_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    with open(os.path.join(data_dir, "extraction-bench", "ground-truth.json")) as f:
        truth = json.load(f)
    sentences = [s.strip() for page in sorted(truth) for s in re.split(r"(?<=[.!?\n])", truth[page]["articleBody"])
                 if len(s.split()) >= 3]
    rng = random.Random(7)
    docs = [" ".join(rng.choice(sentences) for _ in range(4 + rng.randrange(8))) for _ in range(n)]
    words = sum(len(d.split()) for d in docs) / n
    print(f"datatrove MinhashDedupSignature, {n} docs, mean {words:.0f} words, one thread\n")
    print("| preset | hashes | docs/s (after start-up) | docs/s (with start-up) |")
    print("|---|---|---|---|")
    for name, (b, r) in {"fineweb": (14, 8), "dclm": (93, 15), "refinedweb": (450, 20)}.items():
        config = MinhashConfig(n_grams=5, num_buckets=b, hashes_per_bucket=r, seed=1, hash_config=HashConfig(precision=64))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            step = MinhashDedupSignature(output_folder=tmp, config=config, language="en")
            data = [Document(text=d, id=str(i)) for i, d in enumerate(docs)]
            t1 = None
            def gen():
                nonlocal t1
                for i, d in enumerate(data):
                    if i == 1:
                        t1 = time.perf_counter()
                    yield d
            step.run(gen(), rank=0, world_size=1)
            t2 = time.perf_counter()
        print(f"| {name} {b}x{r} | {b * r} | {(n - 1) / (t2 - t1):.0f} | {n / (t2 - t0):.0f} |", flush=True)


if __name__ == "__main__":
    main()
