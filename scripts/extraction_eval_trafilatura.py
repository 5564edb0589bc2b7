#!/usr/bin/env python3
"""Runs Python trafilatura exactly as datatrove 0.10.1's `Trafilatura` extractor calls it
(favor_precision=True, include_comments=False, deduplicate=True) on the extraction
benchmarks, and writes its predictions and per-page times for the Rust evaluation program
(`cargo run --release -p falconry-refine --example extraction_eval -- --peer OUT.json`),
which scores both extractors with one scoring function and prints one table.

Usage: extraction_eval_trafilatura.py DATA_DIR OUT.json
  DATA_DIR = shared/data (holds extraction-bench/ and html/trafilatura-eval/)
"""
import gzip
import json
import os
import sys
import time

from trafilatura import extract


def datatrove_extract(html: str) -> str:
    # datatrove/pipeline/extractors/trafilatura.py, Trafilatura.extract with its defaults.
    return extract(html, favor_precision=True, include_comments=False, deduplicate=True) or ""


def read_page(path: str) -> str:
    raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    return raw.decode("utf-8", errors="replace")


def main() -> None:
    data, out = sys.argv[1], sys.argv[2]
    pages = []
    bench = os.path.join(data, "extraction-bench", "html")
    for name in sorted(os.listdir(bench)):
        pages.append(("bench", name.split(".")[0], os.path.join(bench, name)))
    evald = os.path.join(data, "html", "trafilatura-eval")
    meta = json.load(open(os.path.join(evald, "evaldata_subset.json")))
    for url in sorted(meta):
        f = meta[url]["file"]
        path = os.path.join(evald, "pages", f + ".gz")
        if os.path.exists(path):
            pages.append(("eval", f, path))
    result = {"extractor": "trafilatura (Python) as datatrove calls it", "bench": {}, "eval": {}}
    total = 0.0
    for kind, key, path in pages:
        html = read_page(path)
        t0 = time.perf_counter()
        text = datatrove_extract(html)
        dt = time.perf_counter() - t0
        total += dt
        result[kind][key] = {"text": text, "seconds": dt}
    result["seconds"] = total
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, ensure_ascii=False)
    os.replace(out + ".tmp", out)
    print(f"{len(pages)} pages, {total:.2f} s extract time", file=sys.stderr)


if __name__ == "__main__":
    main()
