//! The WARC/WET reader on any bytes: no panic, no hang (libFuzzer's `-timeout`), at most one
//! item per few input bytes, and a plain WARC reads the same as its gzip.
#![no_main]

use std::io::{Cursor, Write};

use falconry_refine::{ReadConfig, ReadItem, WarcReader};
use flate2::{write::GzEncoder, Compression};
use libfuzzer_sys::fuzz_target;

/// A record needs `WARC/1` and a newline before the reader counts it, damage or not.
const MIN_ITEM_BYTES: usize = 6;

/// Every item, as text that compares documents field by field.
fn read(bytes: Vec<u8>) -> Vec<String> {
    WarcReader::from_reader(Box::new(Cursor::new(bytes)), &ReadConfig::default())
        .map(|item| match item {
            ReadItem::Doc(d) => format!(
                "doc {} {:?} {:?} {:?} {:?} {:?} {:?}",
                d.id, d.url, d.timestamp, d.dump, d.segment, d.html, d.content
            ),
            ReadItem::Skip(reason) => reason.to_string(),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let items = read(data.to_vec());
    // Only plain input has a known decompressed size (and a gzip twin to compare with).
    if data.windows(2).any(|w| w == [0x1f, 0x8b]) {
        return;
    }
    assert!(
        items.len() <= 1 + data.len() / MIN_ITEM_BYTES,
        "{} items from {} bytes",
        items.len(),
        data.len()
    );
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).unwrap();
    assert_eq!(read(gz.finish().unwrap()), items, "gzip and plain differ");
});
