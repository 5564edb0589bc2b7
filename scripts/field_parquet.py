#!/usr/bin/env python3
"""Parquet as the field writes it, for the tests that read it (issue 11, item 1).

Writes into OUT_DIR one file per (schema, codec), every file by pyarrow's own writer with its
defaults except the codec (pyarrow's default is snappy, as are HF `datasets`' and datatrove's):

  refinedweb-CODEC.parquet   RefinedWeb's public columns: content, url, timestamp[s], dump,
                             segment, image_urls list<list<string>>
  fineweb-CODEC.parquet      FineWeb's (datatrove's): text, id, dump, url, date (string),
                             file_path, language, language_score (double), token_count (int64)
  datatrove-CODEC.parquet    datatrove's ParquetWriter: text, id, metadata struct<url, dump, date>
  large-CODEC.parquet        text as large_string, url as large_string
  view-CODEC.parquet         text and url as string_view
  many-groups-snappy.parquet RefinedWeb columns in row groups of 7 rows

CODEC is each of snappy (default), gzip, brotli, lz4, zstd, none. Every file holds ROWS rows
whose text is "schema CODEC row I ..." (distinct, so dedup keeps them all). Prints one JSON line:
{"files": N, "rows": total rows}.

Run: python3 scripts/field_parquet.py OUT_DIR [ROWS]
"""

import datetime
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

CODECS = ["snappy", "gzip", "brotli", "lz4", "zstd", "none"]


def texts(schema, codec, rows):
    # Distinct wording per row, long enough to look like a document to a tokenizer.
    return [
        f"{schema} {codec} row {i}: the {['red', 'green', 'blue'][i % 3]} library opened its "
        f"{i * 7 + 3}th reading room on a street number {i * 13 + len(codec)}."
        for i in range(rows)
    ]


def urls(schema, codec, rows):
    return [f"https://{schema}.example/{codec}/{i}" for i in range(rows)]


def tables(codec, rows):
    t0 = datetime.datetime(2023, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    yield "refinedweb", pa.table(
        {
            "content": texts("refinedweb", codec, rows),
            "url": urls("refinedweb", codec, rows),
            "timestamp": pa.array([t0 + datetime.timedelta(seconds=i) for i in range(rows)], pa.timestamp("s")),
            "dump": ["CC-MAIN-2023-06"] * rows,
            "segment": ["1674764494852.95"] * rows,
            "image_urls": [[[f"https://i.example/{i}.png", "alt"]] * (i % 2) for i in range(rows)],
        }
    )
    yield "fineweb", pa.table(
        {
            "text": texts("fineweb", codec, rows),
            "id": [f"<urn:uuid:{i:08d}-0000-0000-0000-{len(codec):012d}>" for i in range(rows)],
            "dump": ["CC-MAIN-2013-20"] * rows,
            "url": urls("fineweb", codec, rows),
            "date": [f"2013-05-18T07:24:{i % 60:02d}Z" for i in range(rows)],
            "file_path": ["s3://commoncrawl/crawl-data/CC-MAIN-2013-20/x.warc.gz"] * rows,
            "language": ["en"] * rows,
            "language_score": pa.array([0.9 + i / 1000 for i in range(rows)], pa.float64()),
            "token_count": pa.array([20 + i for i in range(rows)], pa.int64()),
        }
    )
    yield "datatrove", pa.table(
        {
            "text": texts("datatrove", codec, rows),
            "id": [f"dt/{codec}/{i}" for i in range(rows)],
            "metadata": [
                {"url": u, "dump": "CC-MAIN-2024-10", "date": "2024-02-20T11:00:00Z"}
                for u in urls("datatrove", codec, rows)
            ],
        }
    )
    yield "large", pa.table(
        {
            "text": pa.array(texts("large", codec, rows), pa.large_string()),
            "url": pa.array(urls("large", codec, rows), pa.large_string()),
        }
    )
    yield "view", pa.table(
        {
            "text": pa.array(texts("view", codec, rows), pa.string_view()),
            "url": pa.array(urls("view", codec, rows), pa.string_view()),
        }
    )


def main():
    out = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    os.makedirs(out, exist_ok=True)
    files = total = 0
    for codec in CODECS:
        for schema, table in tables(codec, rows):
            path = os.path.join(out, f"{schema}-{codec}.parquet")
            if codec == "snappy":
                pq.write_table(table, path)  # pyarrow's defaults, nothing named
            else:
                pq.write_table(table, path, compression=codec)
            files += 1
            total += table.num_rows
    table = next(tables("groups", rows))[1]
    path = os.path.join(out, "many-groups-snappy.parquet")
    pq.write_table(table, path, row_group_size=7)
    assert pq.ParquetFile(path).num_row_groups == -(-rows // 7)
    files += 1
    total += table.num_rows
    print(json.dumps({"files": files, "rows": total}))


if __name__ == "__main__":
    main()
