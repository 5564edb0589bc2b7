#!/usr/bin/env python3
"""Builds the Gopher parity fixture: real extracted texts and datatrove 0.10.1's decisions.

For each text we record what datatrove's `GopherRepetitionFilter` and `GopherQualityFilter`
(default arguments, English word tokenizer = spaCy `blank("en")`) decide, each filter on its
own (not chained), plus the number of words datatrove's tokenizer produced, so the Rust test
`refine/tests/gopher_parity.rs` can measure agreement and explain each disagreement.

Texts (all real, extracted from the shared HTML; nothing written by us except a few edge cases):
  * trafilatura 1.11 `extract()` of the 150 trafilatura-eval pages and the 90 extraction-bench
    pages, once with defaults and once with `favor_recall=True` (more boilerplate -> more drops);
  * the 90 extraction-bench ground-truth article bodies;
  * trafilatura output of the text/html responses of the dolma and aut sample WARCs;
  * a handful of edge texts (empty lines, bullets, ellipses, hashes, repeated lines).
Texts are capped at MAX_CHARS (cut at a line break) to keep the fixture under 2 MB.

It also writes `refine/src/filters/en_exceptions.tsv`: spaCy's English tokenizer exceptions
("don't" -> "do" "n't", "e.g." kept whole, ...), one per line, tokens separated by tabs (their
concatenation is the key), which `filters/text.rs` embeds so that its word splitting follows
spaCy's. spaCy is MIT-licensed; the table is data generated from `spacy.blank("en")`.

Usage: /work/main/.venv/bin/python scripts/gopher_fixture.py [DATA_DIR] [OUT]
  DATA_DIR defaults to $FALCONRY_TEST_DATA or ../shared/data; OUT to
  refine/tests/fixtures/gopher_datatrove.jsonl.
"""

import gzip
import json
import os
import sys
from pathlib import Path

# spaCy's tokenizer needs no torch; a CUDA build of torch in the venv fails to import on a
# CPU-only machine, and thinc only catches ImportError. Make `import torch` an ImportError.
sys.modules.setdefault("torch", None)

import datatrove
import trafilatura
from datatrove.data import Document
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
from datatrove.utils.text import split_into_words
from warcio.archiveiterator import ArchiveIterator

MAX_CHARS = 6000
MAX_TOTAL_BYTES = 1_900_000

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FALCONRY_TEST_DATA", ROOT / "../shared/data"))
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "refine/tests/fixtures/gopher_datatrove.jsonl")

EDGE_TEXTS = [
    "",
    "\n\n\n",
    "word " * 60,
    "- item one\n- item two\n- item three\n- item four and the rest of it",
    "This is the start of a line that trails off...\n" * 3 + "But this one does not and it has the words of the text.",
    "#tag #another #third " * 10 + "and the text of the post with the words",
    "The quick brown fox jumps over the lazy dog and that is all, with the rest.\n" * 4,
    "Short.\n\nShort.\n\nShort.\n\nA longer paragraph that is not repeated at all in this text.",
]


def cap(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    cut = text.rfind("\n", 0, MAX_CHARS)
    return text[: cut if cut > 0 else MAX_CHARS]


def html_pages():
    for path in sorted((DATA / "html/trafilatura-eval/pages").glob("*.html.gz")):
        yield "trafilatura-eval/" + path.name, gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    for path in sorted((DATA / "extraction-bench/html").glob("*.html.gz")):
        yield "extraction-bench/" + path.name, gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    for warc in sorted((DATA / "warc/other").glob("*/*.warc.gz")):
        with open(warc, "rb") as f:
            for i, rec in enumerate(ArchiveIterator(f)):
                if rec.rec_type != "response" or not rec.http_headers:
                    continue
                if "html" not in (rec.http_headers.get_header("Content-Type") or ""):
                    continue
                body = rec.content_stream().read()
                yield f"{warc.parent.name}/{warc.name}#{i}", body.decode("utf-8", "replace")


def texts():
    for name, html in html_pages():
        for mode, kwargs in (("default", {}), ("recall", {"favor_recall": True})):
            text = trafilatura.extract(html, **kwargs)
            if text:
                yield f"{name}:{mode}", text
    truth = json.loads((DATA / "extraction-bench/ground-truth.json").read_text())
    for key in sorted(truth):
        body = truth[key].get("articleBody")
        if body:
            yield f"extraction-bench/{key}:truth", body
    for i, text in enumerate(EDGE_TEXTS):
        yield f"edge/{i}", text


def verdict(result):
    if result is True:
        return "keep"
    return result[1]


def write_exceptions(path: Path):
    import spacy
    from spacy.symbols import ORTH

    rules = spacy.blank("en").tokenizer.rules
    lines = []
    for key in sorted(rules):
        tokens = [t.get(ORTH, t.get("ORTH")) for t in rules[key]]
        assert "".join(tokens) == key
        if any(ch.isspace() for ch in key):
            continue  # whitespace never reaches the affix rules
        lines.append("\t".join(tokens))
    header = f"# spaCy {spacy.__version__} English tokenizer exceptions (MIT); generated by scripts/gopher_fixture.py\n"
    path.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")


def main():
    write_exceptions(ROOT / "refine/src/filters/en_exceptions.tsv")
    assert datatrove.__version__ == "0.10.1" if hasattr(datatrove, "__version__") else True
    repetition = GopherRepetitionFilter()
    quality = GopherQualityFilter()
    seen, rows, total = set(), [], 0
    for source, text in texts():
        text = cap(text)
        if text in seen:
            continue
        seen.add(text)
        doc = Document(text=text, id=source)
        row = {
            "source": source,
            "text": text,
            "words": len(split_into_words(text)) if text else 0,
            "repetition": verdict(repetition.filter(doc)),
            "quality": verdict(quality.filter(doc)),
        }
        line = json.dumps(row, ensure_ascii=False)
        if total + len(line.encode()) + 1 > MAX_TOTAL_BYTES:
            break
        total += len(line.encode()) + 1
        rows.append(line)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    tmp.rename(OUT)
    print(f"{len(rows)} texts, {total} bytes -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
