#!/usr/bin/env python3
"""Makes tokenize/tests/fixtures/falcon_docs.jsonl: real documents and their Falcon ids from
Python `tokenizers` (the reference the Rust encoder is held to).

Documents: the article bodies of extraction-bench's ground truth (English news) and the main
text trafilatura extracts from trafilatura-eval's pages (German, French, Chinese, ...), each
cut to at most MAX_CHARS characters (at a character boundary) to keep the fixture small.

Run: /work/main/.venv/bin/python scripts/tokenizer_fixture.py [DATA_DIR]
"""
import gzip
import json
import os
import sys

import tokenizers
import trafilatura

MAX_CHARS = 1500
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "FALCONRY_TEST_DATA", os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "tokenize", "tests", "fixtures", "falcon_docs.jsonl")


def documents():
    truth = json.load(open(os.path.join(DATA, "extraction-bench", "ground-truth.json"), encoding="utf-8"))
    for key in sorted(truth):
        yield "extraction-bench/" + key, truth[key]["articleBody"]
    pages = os.path.join(DATA, "html", "trafilatura-eval", "pages")
    for name in sorted(os.listdir(pages)):
        html = gzip.open(os.path.join(pages, name)).read().decode("utf-8", errors="replace")
        text = trafilatura.extract(html)
        if text:
            yield "trafilatura-eval/" + name, text


def main():
    tok = tokenizers.Tokenizer.from_file(os.path.join(DATA, "tokenizer", "falcon", "tokenizer.json"))
    n = 0
    with open(OUT, "w", encoding="utf-8") as out:
        for source, text in documents():
            text = text[:MAX_CHARS]
            ids = tok.encode(text, add_special_tokens=False).ids
            out.write(json.dumps({"source": source, "text": text, "ids": ids}, ensure_ascii=False) + "\n")
            n += 1
    print(f"{n} documents -> {OUT} (tokenizers {tokenizers.__version__})")


if __name__ == "__main__":
    main()
