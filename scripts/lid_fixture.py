#!/usr/bin/env python3
"""Makes the language-ID parity fixture: Python fastText's lid.176 predictions on real pages.

The Rust test `filters::language_id` parity test (refine/src/filters/language_id.rs) predicts on the
same texts with fasttext-pure-rs and requires equal labels and |score diff| < 1e-5 on every line.

Texts come from ../shared/data (never copied wholesale: each text is cut to MAX_CHARS):
  - extraction-bench/ground-truth.json article bodies (mostly English news);
  - html/trafilatura-eval pages, crudely tag-stripped (multilingual, with menus and &nbsp;);
  - the HTML responses of warc/cc/resiliparse (CC-MAIN-2020-34: zh, de, fi, nl, es, en);
  - short snippets cut from those texts (low scores, near the 0.65 threshold).

Prediction follows datatrove's LanguageFilter: newlines become spaces, then `model.predict`.

Run (from the repo root):
    /work/main/.venv/bin/python scripts/lid_fixture.py \
        --data ../shared/data --out refine/tests/fixtures/lid_parity.jsonl
Needs: fasttext (wheel fasttext-numpy2-wheel), warcio.
"""

import argparse
import gzip
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import fasttext
from warcio.archiveiterator import ArchiveIterator

MAX_CHARS = 2500
SNIPPETS = 60
TOP_K = 3


class TextOnly(HTMLParser):
    """Crude main-text stand-in: all text outside script/style/noscript/template."""

    SKIP = {"script", "style", "noscript", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in {"p", "div", "br", "li", "h1", "h2", "h3", "tr", "title"}:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def strip_tags(html: str) -> str:
    parser = TextOnly()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    # Keep the page's own whitespace inside lines (tabs, &nbsp;): parity must hold on it.
    lines = [line.strip(" \t\r") for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def cut(text: str) -> str:
    return text[:MAX_CHARS]


def ground_truth(data: Path):
    truth = json.loads((data / "extraction-bench/ground-truth.json").read_text())
    for key in sorted(truth):
        yield f"extraction-bench:{key}", truth[key]["articleBody"]


def trafilatura_pages(data: Path):
    for path in sorted((data / "html/trafilatura-eval/pages").glob("*.html.gz")):
        html = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        yield f"trafilatura-eval:{path.name}", strip_tags(html)


def warc_pages(path: Path, label: str):
    with path.open("rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type != "response":
                continue
            ctype = record.http_headers.get_header("Content-Type") or ""
            if "html" not in ctype:
                continue
            body = record.content_stream().read().decode("utf-8", errors="replace")
            url = record.rec_headers.get_header("WARC-Target-URI")
            yield f"{label}:{url}", strip_tags(body)


def snippets(docs):
    """Short pieces (a line, or the first words) of every k-th text: scores spread out."""
    step = max(1, len(docs) // SNIPPETS)
    for i, (source, text) in enumerate(docs[::step][:SNIPPETS]):
        lines = [line for line in text.split("\n") if len(line) >= 20]
        if not lines:
            continue
        piece = lines[len(lines) // 2] if i % 2 else " ".join(text.split(" ")[: 3 + i % 12])
        yield f"snippet:{source}", piece[:200]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("refine/tests/fixtures/lid_parity.jsonl"))
    args = ap.parse_args()

    model = fasttext.load_model(str(args.data / "lid/lid.176.ftz"))
    docs = list(ground_truth(args.data))
    docs += trafilatura_pages(args.data)
    docs += warc_pages(args.data / "warc/cc/resiliparse/warcfile.warc.gz", "cc-main-2020-34")
    docs = [(source, cut(text)) for source, text in docs if text.strip()]
    docs += snippets(docs)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for source, text in docs:
            labels, scores = model.predict(text.replace("\n", " "), k=TOP_K)
            top = [[lab.removeprefix("__label__"), float(s)] for lab, s in zip(labels, scores)]
            row = {"source": source, "text": text, "label": top[0][0], "score": top[0][1], "top": top}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(args.out)
    print(f"{len(docs)} documents -> {args.out}")


if __name__ == "__main__":
    main()
