#!/usr/bin/env python3
"""Times datatrove 0.10.1's Gopher filters on the parity fixture's texts, one core.

Prints one JSON object: {"repetition": docs_per_s, "quality": docs_per_s, "words": docs_per_s}.
Run by `cargo run -p falconry-refine --example filters_bench -- --peer PYTHON`.
"""

import json
import sys
import time
from pathlib import Path

sys.modules.setdefault("torch", None)  # see gopher_fixture.py

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter  # noqa: E402
from datatrove.utils.word_tokenizers import load_word_tokenizer  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "refine/tests/fixtures/gopher_datatrove.jsonl"


def rate(fn, docs, min_seconds=3.0):
    n, start = 0, time.perf_counter()
    while True:
        for d in docs:
            fn(d)
        n += len(docs)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n / elapsed


def main():
    texts = [json.loads(line)["text"] for line in FIXTURE.read_text().splitlines()]
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts) if t]
    tokenizer = load_word_tokenizer("en")
    tokenizer.word_tokenize("warm up")
    # split_into_words caches its last 5 results; call the tokenizer directly.
    out = {
        "words": rate(lambda d: tokenizer.word_tokenize(d.text), docs),
        "repetition": rate(GopherRepetitionFilter().filter, docs),
        "quality": rate(GopherQualityFilter().filter, docs),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
