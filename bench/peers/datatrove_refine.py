"""datatrove 0.10.1 on the same WARC files as falconry's bench, for per-core docs/s ratios.

Steps, in one process (one core): WarcReader -> URLFilter -> Trafilatura -> LanguageFilter(en,
0.65) -> GopherRepetitionFilter -> GopherQualityFilter.

`--mode full` times the whole pipeline, streaming, reading included. `--mode stages` reads the
documents first, then times each step alone on the documents the steps before it kept, as
falconry's bench times its stages (datatrove has no line-wise corrections). Both first run once
over the first file to load models and spaCy: the figures exclude start-up, as PEERS.md's
17.7 docs/s does. Prints one JSON object; `stages` is keyed by falconry's stage names.

Set-up (offline): pip install "datatrove[io,processing]==0.10.1" spacy fasttext-numpy2-wheel
warcio python-magic. LanguageFilter would download lid.176.bin; we load the .ftz instead.
"""

import argparse
import json
import os
import time

from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
    URLFilter,
)
from datatrove.pipeline.readers import WarcReader


def steps(lid_model):
    """The pipeline, as (falconry stage name, datatrove step) pairs."""
    from fasttext.FastText import _FastText
    from tldextract import TLDExtract

    url = URLFilter()
    url.tldextractor = TLDExtract(suffix_list_urls=())
    lang = LanguageFilter(languages=["en"], language_threshold=0.65)
    lang.model._model = _FastText(lid_model)
    return [
        ("url_filter", url),
        ("extraction", Trafilatura(favour_precision=True, timeout=10.0)),
        ("language_id", lang),
        ("repetition", GopherRepetitionFilter()),
        ("quality", GopherQualityFilter()),
    ]


def read(files):
    for path in files:
        reader = WarcReader(os.path.dirname(path), glob_pattern=os.path.basename(path))
        yield from reader.run(None, 0, 1)


def run_full(files, pipeline):
    read_docs = 0
    kept = 0

    def counted(docs):
        nonlocal read_docs
        for d in docs:
            read_docs += 1
            yield d

    data = counted(read(files))
    for _, step in pipeline:
        data = step.run(data, 0, 1)
    for _ in data:
        kept += 1
    return read_docs, kept


def run_stages(files, pipeline):
    docs = list(read(files))
    out = {}
    for name, step in pipeline:
        start = time.perf_counter()
        kept = list(step.run(iter(docs), 0, 1))
        out[name] = {"docs": len(docs), "kept": len(kept), "seconds": time.perf_counter() - start}
        docs = kept
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["full", "stages"], default="full")
    ap.add_argument("--lid-model", default=os.path.join(os.path.dirname(__file__), "../../models/lid.176.ftz"))
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    files = [os.path.abspath(f) for f in args.files]
    pipeline = steps(args.lid_model)
    run_full(files[:1], pipeline)  # warm-up: models, spaCy, imports
    if args.mode == "stages":
        print(json.dumps({"mode": "stages", "stages": run_stages(files, pipeline)}))
        return
    start = time.perf_counter()
    read_docs, kept = run_full(files, pipeline)
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": "full", "docs": read_docs, "kept": kept, "seconds": seconds,
                      "docs_per_s": read_docs / seconds if seconds else 0.0}))


if __name__ == "__main__":
    main()
