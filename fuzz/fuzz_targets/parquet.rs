//! The Parquet reader on any bytes: no panic, no hang, no allocation sized by a length field
//! (libFuzzer's `-malloc_limit_mb`), and no more documents than the footer's row count.
#![no_main]

use std::sync::LazyLock;

use falconry_refine::dataset::read_parquet;
use libfuzzer_sys::fuzz_target;
use parquet::file::metadata::ParquetMetaDataReader;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());

/// `read_parquet` turns a panic inside the parquet crate into an error; libFuzzer's hook would
/// abort at the panic, before that. A panic that escapes the target still aborts (libfuzzer-sys
/// catches it and aborts).
static CAUGHT_PANICS_RECOVER: LazyLock<()> = LazyLock::new(|| std::panic::set_hook(Box::new(|_| {})));

fuzz_target!(|data: &[u8]| {
    LazyLock::force(&CAUGHT_PANICS_RECOVER);
    let path = DIR.path().join("in.parquet");
    std::fs::write(&path, data).unwrap();
    let Ok(docs) = read_parquet(&path) else {
        return;
    };
    // The footer parsed for the reader, so it parses here.
    let rows = ParquetMetaDataReader::new()
        .parse_and_finish(&bytes::Bytes::copy_from_slice(data))
        .map_or(0, |m| m.file_metadata().num_rows());
    let mut n = 0i64;
    // As refine and tokenize do: the first error ends the file.
    for doc in docs {
        if doc.is_err() {
            break;
        }
        n += 1;
        assert!(n <= rows, "more documents than the footer's {rows} rows");
    }
});
