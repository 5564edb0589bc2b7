#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, cut from the shared data set (README.md, Fuzzing).

Writes fuzz/corpus/<target>/ (ignored by git: fetched data never goes in the repository) from
$FALCONRY_TEST_DATA, else ../shared/data beside the repository:

  warc       the small WARC/WET/WAT files whole; single records of the larger ones, each as its
             gzip member and as plain WARC (CommonCrawl's, wget's, Heritrix's WARC/0.17)
  extract    the HTML pages of html/ and extraction-bench/, cut at 64 KiB
  jsonl      the extraction benchmark's texts and ARC questions as JSONL; the first byte picks
             plain (0) or gzip (1), as the target reads it
  parquet    the same texts as Parquet, in the schemas and codecs the reader takes (pyarrow)
  tokenizer  llama.cpp's Falcon tokenizer test strings, text excerpts in several languages
  shards     meta.json, a NUL, then uint16 ids of Falcon's encoded sample

Run: python3 scripts/fuzz_seeds.py   (needs pyarrow; prints the seed count per target)
"""

import gzip
import io
import json
import os
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FALCONRY_TEST_DATA") or REPO.parent / "shared" / "data")
OUT = REPO / "fuzz" / "corpus"
MAX_SEED = 64 << 10


def members(raw):
    """The gzip members of a .gz file, as (compressed bytes, decompressed bytes)."""
    out, pos = [], 0
    while pos < len(raw):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        plain = d.decompress(raw[pos:]) + d.flush()
        end = len(raw) - len(d.unused_data)
        out.append((raw[pos:end], plain))
        pos = end
    return out


def write(target, name, data):
    folder = OUT / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def warc_seeds():
    warc = DATA / "warc"
    for path in sorted(warc.rglob("*.gz")):
        raw = path.read_bytes()
        if len(raw) <= 20_000:
            write("warc", path.name, raw)
            continue
        # One seed per record kind: the first few small members of each.
        kinds = {}
        for packed, plain in members(raw):
            if len(packed) > MAX_SEED // 2:
                continue
            head = plain[:2048].decode("latin-1")
            kind = next(
                (line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith("warc-type:")),
                "none",
            )
            n = kinds.get(kind, 0)
            if n >= 3:
                continue
            kinds[kind] = n + 1
            stem = f"{path.name}-{kind}-{n}"
            write("warc", stem + ".gz", packed)
            write("warc", stem + ".warc", plain[:MAX_SEED])


def html_pages():
    for folder in [DATA / "html", DATA / "extraction-bench" / "html"]:
        for path in sorted(folder.rglob("*.html.gz")):
            yield path.name, gzip.decompress(path.read_bytes())


def texts():
    truth = json.loads((DATA / "extraction-bench" / "ground-truth.json").read_text())
    for key, page in sorted(truth.items()):
        yield key[:12], page["url"], page["articleBody"]


def jsonl_seeds():
    docs = list(texts())
    for i in range(0, len(docs), 6):
        lines = [
            json.dumps({"text": body[:2000], "url": url, "id": key, "timestamp": "2020-08-08T16:54:17Z"}, ensure_ascii=i % 12 == 0)
            for key, url, body in docs[i : i + 6]
        ]
        text = ("\n".join(lines) + "\n").encode()
        write("jsonl", f"texts-{i:03}.jsonl", b"\0" + text)
        write("jsonl", f"texts-{i:03}.jsonl.gz", b"\1" + gzip.compress(text))
    arc = (DATA / "eval" / "arc" / "ARC-Easy" / "ARC-Easy-Dev.jsonl").read_bytes().splitlines(keepends=True)
    write("jsonl", "arc.jsonl", b"\0" + b"".join(arc[:5]))
    content = b"".join(json.dumps({"content": q["question"]["stem"], "timestamp": 1597000000}).encode() + b"\n" for q in map(json.loads, arc[:20]))
    write("jsonl", "arc-content.jsonl", b"\0" + content)


def parquet_seeds():
    docs = list(texts())[:24]
    n = 4
    for i in range(0, len(docs), n):
        keys, urls, bodies = zip(*docs[i : i + n])
        bodies = [b[:400] for b in bodies]
        tables = {
            "refinedweb": pa.table(
                {
                    "content": bodies,
                    "url": urls,
                    "timestamp": pa.array([1597000000 + k for k in range(len(urls))], pa.timestamp("s")),
                    "dump": ["CC-MAIN-2020-34"] * len(urls),
                    "image_urls": [[[u, "alt"]] * (k % 2) for k, u in enumerate(urls)],
                }
            ),
            "fineweb": pa.table(
                {
                    "text": pa.array(bodies, pa.large_string()),
                    "id": keys,
                    "date": ["2013-05-18T07:24:00Z"] * len(urls),
                    "language_score": [0.9] * len(urls),
                }
            ),
            "datatrove": pa.table(
                {
                    "text": pa.array(bodies).dictionary_encode(),
                    "metadata": pa.array([{"url": u, "dump": "CC-MAIN-2024-10"} for u in urls]),
                }
            ),
        }
        codec = ["snappy", "zstd", "none", "gzip", "lz4", "brotli"][i // n % 6]
        for schema, table in tables.items():
            buf = io.BytesIO()
            pq.write_table(table, buf, compression=codec, row_group_size=2)
            write("parquet", f"{schema}-{codec}-{i:02}.parquet", buf.getvalue())


def tokenizer_seeds():
    falcon = DATA / "tokenizer" / "falcon"
    tests = (falcon / "ggml-vocab-falcon.gguf.inp").read_text().split("\n__ggml_vocab_test__\n")
    for i, text in enumerate(tests):
        write("tokenizer", f"llama-cpp-{i:02}.txt", text.encode())
    for key, _, body in list(texts())[::6]:
        write("tokenizer", f"text-{key}.txt", body[:1500].encode())
    write("tokenizer", "specials.txt", b"<|endoftext|>Hi>>TITLE<< 12345 \xe4\xb8\xad\xe6\x96\x87 \n\n\t x")


def shards_seeds():
    sample = json.loads((DATA / "tokenizer" / "falcon" / "falcon_encoded.json").read_text())
    ids = sample["token_ids"]
    for n in [len(ids), 16, 0]:
        meta = {
            "tokenizer": "tokenizer.json",
            "vocab_size": 65024,
            "dtype": "uint16",
            "eos_id": 11,
            "shards": [{"file": "shard-0.bin", "tokens": n, "documents": 1, "split": "train"}],
            "split": {"validation_fraction": 0.0, "seed": 0},
        }
        body = b"".join(t.to_bytes(2, "little") for t in ids[:n])
        write("shards", f"falcon-{n}", json.dumps(meta).encode() + b"\0" + body)


def main():
    warc_seeds()
    for name, page in html_pages():
        write("extract", name.removesuffix(".gz"), page[:MAX_SEED])
    jsonl_seeds()
    parquet_seeds()
    tokenizer_seeds()
    shards_seeds()
    for folder in sorted(OUT.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
