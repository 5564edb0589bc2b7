//! Per-document facts the global steps need without re-reading the corpus: timestamp, URL
//! key, dump and id. Written by the `signatures` step as `signatures/shard-SSSSS/meta.bin`,
//! one record a row: `timestamp: i64` (`i64::MAX` when unknown), `url_key: u64` (0: no URL),
//! `id` and `dump` as `u16` length + UTF-8 bytes; little-endian.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use falconry_refine::folder::{commit_tmp, create_tmp};
use falconry_refine::Document;

use crate::url_dedup::url_key;
use crate::{Error, Result};

/// One row's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Crawl time, `i64::MAX` when unknown (so unknown sorts last).
    pub timestamp: i64,
    /// [`url_key`] of the URL, 0 without one.
    pub url_key: u64,
    /// The document id.
    pub id: String,
    /// The dump name.
    pub dump: String,
}

impl Meta {
    /// The facts of a document.
    pub fn of(doc: &Document) -> Self {
        Meta {
            timestamp: doc.timestamp.unwrap_or(i64::MAX),
            url_key: url_key(&doc.url).unwrap_or(0),
            id: doc.id.clone(),
            dump: doc.dump.clone(),
        }
    }
}

/// Writes a shard's meta file (temporary name until `finish`).
pub struct MetaWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
}

impl MetaWriter {
    /// Starts `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let (tmp, file) = create_tmp(path)?;
        Ok(MetaWriter {
            path: path.into(),
            tmp,
            out: BufWriter::new(file),
        })
    }

    /// Appends one row.
    pub fn add(&mut self, m: &Meta) -> Result<()> {
        let mut rec = Vec::with_capacity(20 + m.id.len() + m.dump.len());
        rec.extend_from_slice(&m.timestamp.to_le_bytes());
        rec.extend_from_slice(&m.url_key.to_le_bytes());
        for s in [&m.id, &m.dump] {
            let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
            rec.extend_from_slice(&(b.len() as u16).to_le_bytes());
            rec.extend_from_slice(b);
        }
        self.out
            .write_all(&rec)
            .map_err(|e| Error::io(&self.tmp, e))
    }

    /// Flushes and renames into place.
    pub fn finish(self) -> Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        Ok(commit_tmp(file, &self.tmp, &self.path)?)
    }
}

/// Reads every row of a meta file, in row order.
pub fn read_meta(path: &Path) -> Result<Vec<Meta>> {
    let mut out = Vec::new();
    for_each_meta(path, |m| {
        out.push(m);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` on every row of a meta file, in row order, reading it through a buffer: one
/// row in memory at a time, not the file.
pub fn for_each_meta(path: &Path, mut f: impl FnMut(Meta) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut input = BufReader::with_capacity(1 << 16, file);
    let bad = || Error::WorkFile {
        path: path.into(),
        message: "truncated meta record".into(),
    };
    let io = |e| Error::io(path, e);
    loop {
        if input.fill_buf().map_err(io)?.is_empty() {
            return Ok(());
        }
        let mut fixed = [0u8; 16];
        read_all(&mut input, &mut fixed, path).map_err(|_| bad())?;
        let timestamp = i64::from_le_bytes(fixed[..8].try_into().expect("8 bytes"));
        let url_key = u64::from_le_bytes(fixed[8..].try_into().expect("8 bytes"));
        let mut strings = [String::new(), String::new()];
        for s in &mut strings {
            let mut len = [0u8; 2];
            read_all(&mut input, &mut len, path).map_err(|_| bad())?;
            let mut bytes = vec![0u8; u16::from_le_bytes(len) as usize];
            read_all(&mut input, &mut bytes, path).map_err(|_| bad())?;
            *s = match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
        }
        let [id, dump] = strings;
        f(Meta {
            timestamp,
            url_key,
            id,
            dump,
        })?;
    }
}

/// `read_exact`, an I/O error naming `path`.
fn read_all(input: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<()> {
    input.read_exact(buf).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.bin");
        let rows = vec![
            Meta {
                timestamp: 5,
                url_key: 9,
                id: "abc".into(),
                dump: "CC-MAIN-2020-34".into(),
            },
            Meta {
                timestamp: i64::MAX,
                url_key: 0,
                id: String::new(),
                dump: "é".into(),
            },
        ];
        let mut w = MetaWriter::create(&path).unwrap();
        rows.iter().for_each(|m| w.add(m).unwrap());
        w.finish().unwrap();
        assert_eq!(read_meta(&path).unwrap(), rows);
        let mut streamed = Vec::new();
        for_each_meta(&path, |m| {
            streamed.push(m);
            Ok(())
        })
        .unwrap();
        assert_eq!(streamed, rows);
        std::fs::write(&path, [1u8, 2, 3]).unwrap();
        assert!(read_meta(&path).is_err());
    }
}
