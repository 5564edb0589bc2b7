#!/usr/bin/env python3
"""Reads what `falconry export` wrote with each trainer's own reader and checks every document
against the token shards it came from (issue 11, "shards for other trainers").

    falconry export --input RUN/tokenize --output OUT/llmc --format llmc
    falconry export --input RUN/tokenize --output OUT/megatron --format megatron
    falconry export --input RUN/tokenize --output OUT/parquet --format parquet
    python scripts/check_export.py RUN/tokenize OUT

Needs numpy; the Megatron check needs megatron-core (and torch, which it imports), the Parquet
check HF `datasets`: `pip install numpy torch megatron-core datasets` in a virtual environment
(megatron-core 0.16.1 is the last for Python 3.11). A format whose reader is not installed is
reported as skipped, and the script fails if nothing was checked.

- llm.c: its Python trainer's shard loader (`_load_data_shard` in llm.c's `train_gpt2.py`:
  256 int32 of header, magic 20240520, version 1, the token count, then uint16 ids), restated
  below since llm.c is no package; its C `dataloader.h` reads the same header.
- Megatron-LM: `megatron.core.datasets.indexed_dataset.IndexedDataset(prefix)`, one
  sequence per document.
- HF: `datasets.load_dataset("parquet", data_files=...)`, column `input_ids`.
"""

import json
import sys
from pathlib import Path

import numpy as np


def expected_documents(shard_dir):
    """{split: [document ids, ...]} from meta.json and the shard files, EOS kept last."""
    meta = json.loads((shard_dir / "meta.json").read_text())
    dtype = np.dtype(meta.get("dtype", "uint16")).newbyteorder("<")
    eos = meta["eos_id"]
    docs = {}
    for shard in meta["shards"]:
        ids = np.fromfile(shard_dir / shard["file"], dtype=dtype)
        ends = np.flatnonzero(ids == eos) + 1
        docs.setdefault(shard["split"], []).extend(
            ids[a:b].tolist() for a, b in zip(np.r_[0, ends[:-1]], ends)
        )
    return docs


def load_llmc_shard(path):
    """llm.c train_gpt2.py's loader: header checks, then the uint16 ids."""
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(256 * 4), dtype=np.int32)
        assert header[0] == 20240520, f"{path}: magic number mismatch"
        assert header[1] == 1, f"{path}: unsupported version"
        ntok = header[2]
        tokens = np.frombuffer(f.read(), dtype=np.uint16)
    assert len(tokens) == ntok, f"{path}: {len(tokens)} tokens, header says {ntok}"
    return tokens


def check_llmc(out, docs):
    for split, want in docs.items():
        files = sorted((out / "llmc").glob(f"{split}_*.bin"))
        got = np.concatenate([load_llmc_shard(f) for f in files]).tolist()
        flat = [t for d in want for t in d]
        assert got == flat, f"llmc {split}: ids differ"
        print(f"llmc      {split}: {len(files)} files, {len(got)} tokens: ok")


def check_megatron(out, docs):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    for split, want in docs.items():
        ds = IndexedDataset(str(out / "megatron" / split))
        assert len(ds) == len(want), f"megatron {split}: {len(ds)} sequences, {len(want)} documents"
        for i, doc in enumerate(want):
            assert ds[i].tolist() == doc, f"megatron {split}: sequence {i} differs"
        assert ds.document_indices.tolist() == list(range(len(want) + 1))
        print(f"megatron  {split}: {len(ds)} sequences: ok")


def check_parquet(out, docs):
    import datasets

    for split, want in docs.items():
        files = sorted(str(p) for p in (out / "parquet").glob(f"{split}-*.parquet"))
        ds = datasets.load_dataset("parquet", data_files=files, split="train")
        got = ds["input_ids"]
        assert [list(x) for x in got] == want, f"parquet {split}: rows differ"
        print(f"parquet   {split}: {len(got)} rows: ok")


def main():
    shard_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    docs = expected_documents(shard_dir)
    checked = 0
    for name, check in [("llmc", check_llmc), ("megatron", check_megatron), ("parquet", check_parquet)]:
        if not (out / name).exists():
            print(f"{name}: no {out / name}, skipped")
            continue
        try:
            check(out, docs)
            checked += 1
        except ImportError as e:
            print(f"{name}: reader not installed ({e}), skipped")
    if checked == 0:
        sys.exit("nothing checked")


if __name__ == "__main__":
    main()
