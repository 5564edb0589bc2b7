#!/usr/bin/env python3
"""The peer of `cargo bench -p falconry-refine --bench filters`: datatrove 0.10.1's URLFilter and
LanguageFilter (lid.176.ftz through the fasttext wheel) on the same inputs, one process, one
thread, printing the same Markdown rows.

Run from the repo root:
    /work/main/.venv/bin/python scripts/bench_filters_peer.py --data ../shared/data
URLFilter loads datatrove's full integrated lists (4.56M domains) on first use; that load is
timed separately and excluded from docs/s.
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import LanguageFilter, URLFilter  # noqa: E402
from fasttext.FastText import _FastText  # noqa: E402
from tldextract import TLDExtract  # noqa: E402


def measure(step, docs, nbytes, rounds):
    kept = 0
    start = time.perf_counter()
    for _ in range(rounds):
        for doc in docs:
            result = step.filter(doc)
            kept += result is True
    secs = time.perf_counter() - start
    n = len(docs) * rounds
    return n / secs, nbytes * rounds / secs / 1e6, kept / n, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--fixture", type=Path, default=Path("refine/tests/fixtures/lid_parity.jsonl"))
    args = ap.parse_args()

    lists = args.data / "filters/datatrove-url-filter"
    listed = [f"https://{line.strip()}" for line in open(lists / "blocklist_urls.txt") if line.strip()]
    truth = json.loads((args.data / "extraction-bench/ground-truth.json").read_text())
    clean = [v["url"] for v in truth.values()]
    urls = listed + [clean[i % len(clean)] for i in range(len(listed))]
    url_docs = [Document(text="", id=str(i), metadata={"url": u}) for i, u in enumerate(urls)]

    url_filter = URLFilter()
    # Offline: tldextract's bundled public-suffix snapshot instead of a download.
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())
    start = time.perf_counter()
    url_filter.download_data()
    load = time.perf_counter() - start

    texts = [json.loads(line)["text"] for line in open(args.fixture)]
    text_docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    lid = LanguageFilter(languages=["en"], language_threshold=0.65)
    # datatrove would download lid.176.bin; use the same lid.176.ftz as falconry (offline).
    lid.model._model = _FastText(str(args.data / "lid/lid.176.ftz"))

    rows = [
        ("url_filter", measure(url_filter, url_docs, sum(map(len, urls)), 2)),
        ("language_id", measure(lid, text_docs, sum(len(t.encode()) for t in texts), 3)),
    ]
    print("| stage (datatrove 0.10.1) | docs | docs/s per core | MB/s per core | kept |")
    print("|---|---:|---:|---:|---:|")
    for name, (docs_s, mb_s, kept, n) in rows:
        print(f"| {name} | {n} | {docs_s:.0f} | {mb_s:.1f} | {kept * 100:.1f}% |")
    print(f"\nURLFilter integrated lists loaded in {load:.2f} s")


if __name__ == "__main__":
    main()
