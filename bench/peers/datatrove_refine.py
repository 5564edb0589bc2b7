"""datatrove 0.10.1 on the same WARC files as falconry's bench, for per-core docs/s ratios.

Runs, in one process (one core): WarcReader -> [URLFilter] -> Trafilatura -> [LanguageFilter(en,
0.65) -> GopherRepetitionFilter -> GopherQualityFilter] (`--mode full`), or only
WarcReader -> Trafilatura (`--mode extraction`). The pipeline first runs once over the first
file to load models and spaCy, then is timed over all files: the figure excludes start-up, as
PEERS.md's 17.7 docs/s does. Prints one JSON object.

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


def steps(mode, lid_model):
    out = []
    if mode == "full":
        from tldextract import TLDExtract

        url = URLFilter()
        url.tldextractor = TLDExtract(suffix_list_urls=())
        out.append(url)
    out.append(Trafilatura(favour_precision=True, timeout=10.0))
    if mode == "full":
        from fasttext.FastText import _FastText

        lang = LanguageFilter(languages=["en"], language_threshold=0.65)
        lang.model._model = _FastText(lid_model)
        out += [lang, GopherRepetitionFilter(), GopherQualityFilter()]
    return out


def run(files, pipeline):
    read = 0
    kept = 0
    for path in files:
        reader = WarcReader(os.path.dirname(path), glob_pattern=os.path.basename(path))
        data = reader.run(None, 0, 1)

        def counted(docs):
            nonlocal read
            for d in docs:
                read += 1
                yield d

        data = counted(data)
        for step in pipeline:
            data = step.run(data, 0, 1)
        for _ in data:
            kept += 1
    return read, kept


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["extraction", "full"], default="full")
    ap.add_argument("--lid-model", default=os.path.join(os.path.dirname(__file__), "../../models/lid.176.ftz"))
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    files = [os.path.abspath(f) for f in args.files]
    pipeline = steps(args.mode, args.lid_model)
    run(files[:1], pipeline)  # warm-up: models, spaCy, imports
    start = time.perf_counter()
    read, kept = run(files, pipeline)
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": args.mode, "docs": read, "kept": kept, "seconds": seconds,
                      "docs_per_s": read / seconds if seconds else 0.0}))


if __name__ == "__main__":
    main()
