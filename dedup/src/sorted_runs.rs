//! Sorted runs on disk: the external sort under the global dedup steps, so that no task holds
//! more than the configured memory whatever the corpus size (`memory_limit_gb`).
//!
//! A unit of work pushes records into a [`RunWriter`]; when its buffer reaches the budget it
//! is sorted, repeats removed, and written as one run file (`NAME.run`, records as `u32`
//! length + bytes) with a sparse index (`NAME.idx`: the key and offset of every
//! [`INDEX_EVERY`]-th record). A later unit reads one range of keys out of every run of a
//! phase and merges them ([`merge_range`]): memory is one record and one 64 KiB buffer per
//! run, so a phase can be split into any number of key ranges without changing what a task
//! holds. Records are ordered by `Ord`, whose first component must be [`Record::key`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use falconry_refine::folder::{commit_tmp, create_tmp, write_atomic};

use crate::{Error, Result};

/// One index entry every this many records of a run.
pub const INDEX_EVERY: usize = 1024;

/// Bytes of bookkeeping a buffered record costs beyond its encoding (vector slot, heap).
const RECORD_OVERHEAD: usize = 48;

/// A record of a sorted run.
pub trait Record: Ord + Sized {
    /// The key that ranges of a phase are cut on; `Ord` must sort by it first.
    fn key(&self) -> u64;
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a record written by [`Record::encode`]; `None` when malformed.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// Buffers records and writes them as sorted runs `DIR/PREFIX-KKKKK.{run,idx}`.
pub struct RunWriter<R> {
    dir: PathBuf,
    prefix: String,
    budget: usize,
    buf: Vec<R>,
    bytes: usize,
    runs: Vec<PathBuf>,
}

impl<R: Record> RunWriter<R> {
    /// A writer whose buffer holds about `budget` bytes; runs of an earlier attempt with
    /// the same prefix are removed.
    pub fn create(dir: &Path, prefix: &str, budget: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let stale = format!("{prefix}-");
        for entry in std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&stale) {
                let p = entry.path();
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        Ok(RunWriter {
            dir: dir.into(),
            prefix: prefix.into(),
            budget: budget.max(1),
            buf: Vec::new(),
            bytes: 0,
            runs: Vec::new(),
        })
    }

    /// Adds a record; writes a run when the buffer is full.
    pub fn push(&mut self, record: R, encoded_len: usize) -> Result<()> {
        self.bytes += encoded_len + RECORD_OVERHEAD;
        self.buf.push(record);
        if self.bytes >= self.budget {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.buf.sort_unstable();
        self.buf.dedup();
        let path = self
            .dir
            .join(format!("{}-{:05}.run", self.prefix, self.runs.len()));
        let (tmp, file) = create_tmp(&path)?;
        let mut w = BufWriter::with_capacity(1 << 16, file);
        let mut index = Vec::new();
        let (mut offset, mut rec) = (0u64, Vec::new());
        for (i, r) in self.buf.iter().enumerate() {
            if i % INDEX_EVERY == 0 {
                index.extend_from_slice(&r.key().to_le_bytes());
                index.extend_from_slice(&offset.to_le_bytes());
            }
            rec.clear();
            r.encode(&mut rec);
            w.write_all(&(rec.len() as u32).to_le_bytes())
                .and_then(|_| w.write_all(&rec))
                .map_err(|e| Error::io(&tmp, e))?;
            offset += 4 + rec.len() as u64;
        }
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        commit_tmp(file, &tmp, &path)?;
        write_atomic(&path.with_extension("idx"), &index)?;
        self.runs.push(path);
        self.buf = Vec::new();
        self.bytes = 0;
        Ok(())
    }

    /// Writes the last run; returns how many runs were written.
    pub fn finish(mut self) -> Result<usize> {
        self.flush()?;
        Ok(self.runs.len())
    }
}

/// The run files a writer with this `prefix` in `dir` made, given their count.
pub fn run_files(dir: &Path, prefix: &str, runs: usize) -> Vec<PathBuf> {
    (0..runs)
        .map(|k| dir.join(format!("{prefix}-{k:05}.run")))
        .collect()
}

/// The records of one run with `lo <= key < hi`, in order.
struct RangeReader {
    path: PathBuf,
    r: BufReader<File>,
    hi: u64,
    buf: Vec<u8>,
}

impl RangeReader {
    fn open(path: &Path, lo: u64, hi: u64) -> Result<Self> {
        let idx = path.with_extension("idx");
        let index = std::fs::read(&idx).map_err(|e| Error::io(&idx, e))?;
        let entries: Vec<(u64, u64)> = index
            .chunks_exact(16)
            .map(|c| {
                let k = u64::from_le_bytes(c[..8].try_into().unwrap_or_default());
                let o = u64::from_le_bytes(c[8..].try_into().unwrap_or_default());
                (k, o)
            })
            .collect();
        // The last indexed record with a key below `lo`: everything before it is below too.
        let at = entries.partition_point(|&(k, _)| k < lo);
        let offset = if at == 0 { 0 } else { entries[at - 1].1 };
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(path, e))?;
        Ok(RangeReader {
            path: path.into(),
            r: BufReader::with_capacity(1 << 16, file),
            hi,
            buf: Vec::new(),
        })
    }

    fn next<R: Record>(&mut self, lo: u64) -> Result<Option<R>> {
        loop {
            let mut len = [0u8; 4];
            match self.r.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(Error::io(&self.path, e)),
            }
            self.buf.resize(u32::from_le_bytes(len) as usize, 0);
            self.r
                .read_exact(&mut self.buf)
                .map_err(|e| Error::io(&self.path, e))?;
            let rec = R::decode(&self.buf).ok_or_else(|| Error::WorkFile {
                path: self.path.clone(),
                message: "malformed run record".into(),
            })?;
            let key = rec.key();
            // `hi == u64::MAX` is the last range: it keeps the key `u64::MAX` too.
            if key >= self.hi && self.hi != u64::MAX {
                return Ok(None);
            }
            if key >= lo {
                return Ok(Some(rec));
            }
        }
    }
}

/// Merges the records with `lo <= key < hi` (`<= u64::MAX` when `hi` is `u64::MAX`) of
/// sorted runs into one sorted stream; a record present in several runs comes once.
pub struct Merge<R> {
    readers: Vec<RangeReader>,
    heap: BinaryHeap<Reverse<(R, usize)>>,
    lo: u64,
    last: Option<R>,
}

/// Opens [`Merge`] over `runs`.
pub fn merge_range<R: Record + Clone>(runs: &[PathBuf], lo: u64, hi: u64) -> Result<Merge<R>> {
    let mut readers = Vec::with_capacity(runs.len());
    let mut heap = BinaryHeap::new();
    for (i, path) in runs.iter().enumerate() {
        let mut r = RangeReader::open(path, lo, hi)?;
        if let Some(rec) = r.next::<R>(lo)? {
            heap.push(Reverse((rec, i)));
        }
        readers.push(r);
    }
    Ok(Merge {
        readers,
        heap,
        lo,
        last: None,
    })
}

impl<R: Record + Clone> Merge<R> {
    /// The next record in order, repeats skipped.
    pub fn next_record(&mut self) -> Result<Option<R>> {
        while let Some(Reverse((rec, i))) = self.heap.pop() {
            if let Some(next) = self.readers[i].next::<R>(self.lo)? {
                self.heap.push(Reverse((next, i)));
            }
            if self.last.as_ref() != Some(&rec) {
                self.last = Some(rec.clone());
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }
}

/// The `i`-th of `n` equal ranges of `[0, end)`, as `(lo, hi)`; the last one ends at `u64::MAX`
/// so nothing is left out.
pub fn key_range(i: usize, n: usize, end: u128) -> (u64, u64) {
    let at = |k: usize| ((end * k as u128) / n as u128).min(u64::MAX as u128) as u64;
    let hi = if i + 1 == n { u64::MAX } else { at(i + 1) };
    (at(i), hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Pair(u64, String);

    impl Record for Pair {
        fn key(&self) -> u64 {
            self.0
        }
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_le_bytes());
            out.extend_from_slice(self.1.as_bytes());
        }
        fn decode(b: &[u8]) -> Option<Self> {
            let k = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
            Some(Pair(k, String::from_utf8(b[8..].to_vec()).ok()?))
        }
    }

    #[test]
    fn ranges_of_many_small_runs_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // A tiny budget: about one run per 20 records.
        let mut w = RunWriter::create(dir.path(), "t", 20 * 60).unwrap();
        let mut all = Vec::new();
        for i in 0..5000u64 {
            let p = Pair((i * 7919) % 3001, format!("v{}", i % 3));
            all.push(p.clone());
            w.push(p, 12).unwrap();
        }
        let runs = w.finish().unwrap();
        assert!(runs > 100, "{runs}");
        all.sort();
        all.dedup();
        let files = run_files(dir.path(), "t", runs);
        let mut got = Vec::new();
        for i in 0..7 {
            let (lo, hi) = key_range(i, 7, 3001);
            let mut m = merge_range::<Pair>(&files, lo, hi).unwrap();
            while let Some(r) = m.next_record().unwrap() {
                assert!(r.0 >= lo && r.0 < hi);
                got.push(r);
            }
        }
        assert_eq!(got, all);
        // A second writer with the prefix removes the first one's runs.
        RunWriter::<Pair>::create(dir.path(), "t", 100)
            .unwrap()
            .finish()
            .unwrap();
        assert!(!files[0].exists());
    }
}
