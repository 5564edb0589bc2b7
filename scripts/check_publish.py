#!/usr/bin/env python3
"""Checks a folder written by `falconry publish` with the readers users have: HuggingFace
`datasets` (through the card's front matter and as plain Parquet), pyarrow and duckdb agree on
the row count and the RefinedWeb columns, and the card's num_examples matches.

Run: /work/main/.venv/bin/python scripts/check_publish.py DATASET_DIR
"""
import glob
import os
import sys

import datasets
import duckdb
import pyarrow.parquet as pq
import yaml

COLUMNS = ["content", "url", "timestamp", "dump", "segment", "image_urls", "id", "language", "language_score"]


def main():
    root = sys.argv[1]
    card = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    front = yaml.safe_load(card.split("---\n")[1])
    expected = front["dataset_info"]["splits"][0]["num_examples"]
    files = sorted(glob.glob(os.path.join(root, "data", "*.parquet")))
    table = pq.read_table(files)
    assert table.num_rows == expected, (table.num_rows, expected)
    assert table.column_names == COLUMNS, table.column_names
    groups = [pq.ParquetFile(f).metadata.num_row_groups for f in files]
    plain = datasets.load_dataset("parquet", data_dir=os.path.join(root, "data"), split="train")
    assert plain.num_rows == expected and plain.column_names == COLUMNS, plain
    carded = datasets.load_dataset(root, split="train")
    assert carded.num_rows == expected and carded.column_names == COLUMNS, carded
    n = duckdb.sql(f"select count(*) from read_parquet('{root}/data/*.parquet')").fetchall()[0][0]
    assert n == expected, n
    print(f"ok: {expected} rows in {len(files)} files ({sum(groups)} row groups); datasets "
          f"{datasets.__version__} (parquet and card), pyarrow, duckdb agree; columns {COLUMNS}")


if __name__ == "__main__":
    main()
