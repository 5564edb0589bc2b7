//! The Parquet that `refine` writes reads back with pyarrow and duckdb, schema and all.

use std::process::Command;

use crate::util::{stage, TestCommand};

/// `$FALCONRY_PYTHON`, else `python3` (CI installs pyarrow and duckdb into it).
fn python() -> String {
    std::env::var("FALCONRY_PYTHON").unwrap_or_else(|_| "python3".into())
}

const CHECK: &str = r#"
import sys, glob
import pyarrow.parquet as pq, duckdb
out = sys.argv[1]
files = sorted(glob.glob(out + "/part-*.parquet"))
table = pq.read_table(files)
s = table.schema
assert str(s.field("content").type) == "string", s
assert str(s.field("url").type) == "string", s
assert str(s.field("timestamp").type) == "timestamp[us, tz=UTC]", s.field("timestamp").type
assert str(s.field("dump").type) == "string", s
assert str(s.field("segment").type) == "string", s
assert str(s.field("image_urls").type) == "list<item: list<item: string>>", s.field("image_urls").type
rows = duckdb.sql(f"select count(*), count(distinct id), min(length(content)) from read_parquet({files!r})").fetchall()[0]
assert rows[0] == table.num_rows and rows[1] == rows[0] and rows[2] > 0, rows
pairs = [p for ps in table.column("image_urls").to_pylist() for p in ps]
assert all(len(p) == 2 for p in pairs), pairs
print(table.num_rows, len(pairs))
"#;

#[test]
fn parquet_reads_back_with_pyarrow_and_duckdb() {
    let t = TestCommand::new();
    let out = t.path("out");
    t.assert_exit_code(
        &[
            "refine",
            "--input",
            "examples/sample.warc.gz",
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    let stats = t.stats("out");
    let kept = stage(&stats, "read")["out"].as_u64().unwrap();
    assert!(kept > 0);
    let py = Command::new(python())
        .arg("-c")
        .arg(CHECK)
        .arg(&out)
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "pyarrow/duckdb check failed (pip install pyarrow duckdb):\n{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let printed = String::from_utf8_lossy(&py.stdout);
    let rows: u64 = printed.split_whitespace().next().unwrap().parse().unwrap();
    let last = stats["stages"].as_array().unwrap().last().unwrap()["out"]
        .as_u64()
        .unwrap();
    assert_eq!(
        rows, last,
        "rows in Parquet = documents out of the last stage"
    );
}
