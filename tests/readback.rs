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

/// Issue 11: Parquet that pyarrow writes with its default codec (snappy) and with every other
/// one, in the schemas the field publishes (`scripts/field_parquet.py`), reads in refine,
/// dedup and tokenize alike.
#[test]
fn field_parquet_reads_in_refine_dedup_and_tokenize() {
    let t = TestCommand::new();
    let fixtures = t.path("field");
    let py = Command::new(python())
        .arg(crate::util::repo().join("scripts/field_parquet.py"))
        .arg(&fixtures)
        .arg("20")
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "scripts/field_parquet.py (pip install pyarrow):\n{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    let rows = made["rows"].as_u64().unwrap();
    assert_eq!((made["files"].as_u64(), rows), (Some(31), 620));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (refined, deduped, tokens) = (t.path("refine"), t.path("dedup"), t.path("tokens"));
    t.assert_exit_code(
        &[
            "refine",
            "-q",
            "--input",
            &s(&fixtures),
            "--output",
            &s(&refined),
        ],
        0,
    );
    let read = stage(&t.stats("refine"), "read").clone();
    assert_eq!(
        (read["in"].as_u64(), read["out"].as_u64()),
        (Some(rows), Some(rows)),
        "{read}"
    );
    t.assert_exit_code(
        &[
            "dedup",
            "-q",
            "--input",
            &s(&fixtures),
            "--output",
            &s(&deduped),
        ],
        0,
    );
    assert_eq!(
        stage(&t.stats("dedup"), "minhash")["in"].as_u64(),
        Some(rows)
    );
    let tokenizer = crate::util::data_dir().join("tokenizer/falcon/tokenizer.json");
    t.assert_exit_code(
        &[
            "tokenize",
            "-q",
            "--input",
            &s(&fixtures),
            "--output",
            &s(&tokens),
            "--tokenizer",
            &s(&tokenizer),
        ],
        0,
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tokens.join("meta.json")).unwrap()).unwrap();
    let documents = meta["split"]["train"]["documents"].as_u64().unwrap()
        + meta["split"]["validation"]["documents"].as_u64().unwrap();
    assert_eq!(documents, rows);
}
