"""Counts the records of every WARC under shared/data/warc with warcio, the reference reader.

The Rust reader's tests (refine/src/warc/tests.rs) assert these numbers; run this to re-derive them:
    /work/main/.venv/bin/python scripts/warc_counts.py [../shared/data]
Per file: record types, and for response records how many are HTML by HTTP Content-Type.
"""
import collections
import pathlib
import sys

from warcio.archiveiterator import ArchiveIterator

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data") / "warc"
for path in sorted(root.rglob("*.gz")):
    types = collections.Counter()
    html = 0
    statuses = collections.Counter()
    ptypes = collections.Counter()
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            types[rec.rec_type] += 1
            if rec.rec_type == "response" and rec.http_headers is not None:
                ct = rec.http_headers.get_header("Content-Type") or ""
                statuses[rec.http_headers.get_statuscode()] += 1
                ptypes[rec.rec_headers.get_header("WARC-Identified-Payload-Type")] += 1
                if "html" in ct.lower():
                    html += 1
    print(path.relative_to(root), dict(sorted(types.items())), "html_ct:", html,
          "status:", dict(sorted(statuses.items())), "idtype:", dict(ptypes))
