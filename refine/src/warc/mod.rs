//! WARC reading (placeholder API; being written).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Document, Result};

/// The `read` stage's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadConfig {
    /// Payloads larger than this many bytes are skipped as `too_large`.
    pub max_payload_bytes: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig { max_payload_bytes: 8 << 20 }
    }
}

impl ReadConfig {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// One step of reading: a document, or a record skipped for a reason.
#[derive(Debug)]
pub enum ReadItem {
    /// A document (HTML in `html`, or text in `content` for WET conversion records).
    Doc(Document),
    /// A record that is not a document, or is damaged; the reason is counted.
    Skip(&'static str),
}

/// Streams documents out of a `.warc`, `.warc.gz` or `.warc.wet.gz` file.
pub struct WarcReader {
    bytes_read: u64,
}

impl WarcReader {
    /// Opens a file; only failing to open it is an error.
    pub fn open(path: &Path, config: &ReadConfig) -> Result<Self> {
        let _ = (path, config);
        Ok(WarcReader { bytes_read: 0 })
    }

    /// Compressed bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

impl Iterator for WarcReader {
    type Item = ReadItem;
    fn next(&mut self) -> Option<ReadItem> {
        None
    }
}
