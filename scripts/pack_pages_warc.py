"""Packs the real HTML pages of ../shared/data into one CommonCrawl-shaped WARC.

The shared data's WARC excerpts hold ~150 HTML pages; the extraction benchmark and
trafilatura's evaluation set add 240 more real pages. Packed as `response` records (one gzip
member each, as CommonCrawl ships them), they go through the whole pipeline like any crawl:
`falconry refine` -> `dedup` -> `tokenize`. The extraction benchmark's pages keep their real
URLs (from its ground truth); trafilatura's pages have none recorded, so they get one under
`pack.example.com`.

Usage: python scripts/pack_pages_warc.py [--data ../shared/data] --output pages.warc.gz
Needs: warcio.
"""

import argparse
import gzip
import io
import json
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def pages(data: Path):
    truth = json.loads((data / "extraction-bench/ground-truth.json").read_text())
    for path in sorted((data / "extraction-bench/html").glob("*.html.gz")):
        key = path.name.removesuffix(".html.gz")
        yield truth.get(key, {}).get("url") or f"https://pack.example.com/bench/{key}", path
    for path in sorted((data / "html/trafilatura-eval/pages").glob("*.html.gz")):
        yield f"https://pack.example.com/eval/{path.name.removesuffix('.html.gz')}", path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).parent.parent.parent / "shared/data")
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()
    tmp = args.output.with_suffix(".tmp")
    n = 0
    with tmp.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, path in pages(args.data):
            body = gzip.decompress(path.read_bytes())
            http = StatusAndHeaders(
                "200 OK",
                [("Content-Type", "text/html"), ("Content-Length", str(len(body)))],
                protocol="HTTP/1.1",
            )
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), http_headers=http
            )
            writer.write_record(record)
            n += 1
    tmp.replace(args.output)
    print(f"{n} pages -> {args.output}")


if __name__ == "__main__":
    main()
