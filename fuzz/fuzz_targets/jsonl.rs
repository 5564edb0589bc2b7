//! The JSONL reader on any bytes, plain (first byte even) or as `.jsonl.gz` (odd): no panic,
//! no hang, no error (damage is a counted skip), at most one document per line, and at most
//! one damage skip.
#![no_main]

use std::io::Read;
use std::sync::LazyLock;

use falconry_refine::dataset::{read_jsonl, JsonlItem};
use flate2::read::MultiGzDecoder;
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let gz = mode % 2 == 1;
    let path = DIR.path().join(if gz { "in.jsonl.gz" } else { "in.jsonl" });
    std::fs::write(&path, body).unwrap();
    let (mut docs, mut bad_json, mut damage) = (0, 0, 0);
    for item in read_jsonl(&path).unwrap() {
        match item.expect("damage is a skip, not an error") {
            JsonlItem::Doc(_) => docs += 1,
            JsonlItem::Skip("bad_json") => bad_json += 1,
            JsonlItem::Skip(_) => damage += 1,
        }
    }
    // The text the reader saw: up to the damage, for gzip.
    let mut text = Vec::new();
    if gz {
        let _ = MultiGzDecoder::new(body).read_to_end(&mut text);
    } else {
        text = body.to_vec();
    }
    let lines = text
        .split(|&c| c == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    assert!(damage <= 1, "{damage} damage skips");
    assert!(
        docs + bad_json <= lines,
        "{docs} docs + {bad_json} bad from {lines} lines"
    );
});
