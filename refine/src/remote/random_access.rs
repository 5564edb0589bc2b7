//! Random access to an input for Parquet, which reads a footer first and then pages of chosen
//! columns: a local file as it is; a remote object by ranged reads of aligned blocks, the
//! last few kept, since Parquet's reader asks for a page header and then its page (two reads
//! of one block) and walks the columns of a row group side by side.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::errors::{ParquetError, Result as ParquetResult};
use parquet::file::reader::{ChunkReader, Length};

use super::{is_url, object, Object, RangeReader};
use crate::{Error, Result};

/// Bytes a ranged read fetches at least: one block, aligned.
const BLOCK: u64 = 1 << 20;
/// Blocks kept (32 MiB): a row group's column chunks read side by side stay cached.
const KEPT: usize = 32;

/// An input opened for Parquet's reader ([`ChunkReader`]).
pub struct RandomAccess(Inner);

enum Inner {
    File(File),
    Remote(Blocks),
}

impl RandomAccess {
    /// Opens a file or a URL (asking for its size).
    pub fn open(path: &Path) -> Result<RandomAccess> {
        Ok(RandomAccess(match is_url(path) {
            true => Inner::Remote(Blocks {
                object: object(path)?,
                kept: Mutex::default(),
            }),
            false => Inner::File(File::open(path).map_err(|e| Error::io(path, e))?),
        }))
    }
}

/// A remote object read by aligned blocks, the last [`KEPT`] kept.
struct Blocks {
    object: Arc<dyn Object>,
    kept: Mutex<Kept>,
}

/// Blocks by index, and the order they came in (the oldest goes first).
#[derive(Default)]
struct Kept {
    blocks: BTreeMap<u64, Bytes>,
    order: VecDeque<u64>,
}

impl Blocks {
    /// Bytes `start..start + len`, from kept blocks and one ranged read per run of missing
    /// ones.
    fn bytes(&self, start: u64, len: u64) -> std::io::Result<Bytes> {
        let size = self.object.size();
        let end = start + len;
        if end > size {
            return Err(std::io::Error::other(format!(
                "{}: bytes {start}..{end} asked of {size}",
                self.object.url()
            )));
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        let (first, last) = (start / BLOCK, (end - 1) / BLOCK);
        let mut blocks: Vec<Option<Bytes>> = {
            let kept = self
                .kept
                .lock()
                .expect("no thread panics holding the blocks");
            (first..=last)
                .map(|b| kept.blocks.get(&b).cloned())
                .collect()
        };
        let mut fetched = Vec::new();
        let mut i = 0;
        while i < blocks.len() {
            if blocks[i].is_some() {
                i += 1;
                continue;
            }
            let run = i..(i..blocks.len())
                .find(|&j| blocks[j].is_some())
                .unwrap_or(blocks.len());
            let from = (first + run.start as u64) * BLOCK;
            let to = ((first + run.end as u64) * BLOCK).min(size);
            let mut data = Vec::with_capacity((to - from) as usize);
            RangeReader::new(self.object.clone(), from..to).read_to_end(&mut data)?;
            let data = Bytes::from(data);
            for (k, slot) in blocks[run.clone()].iter_mut().enumerate() {
                let at = k * BLOCK as usize;
                let block = data.slice(at..(at + BLOCK as usize).min(data.len()));
                fetched.push((first + (run.start + k) as u64, block.clone()));
                *slot = Some(block);
            }
            i = run.end;
        }
        if !fetched.is_empty() {
            let mut kept = self
                .kept
                .lock()
                .expect("no thread panics holding the blocks");
            for (b, block) in fetched {
                if kept.blocks.insert(b, block).is_none() {
                    kept.order.push_back(b);
                }
            }
            while kept.order.len() > KEPT {
                let old = kept.order.pop_front().expect("more than KEPT");
                kept.blocks.remove(&old);
            }
        }
        let blocks: Vec<Bytes> = blocks.into_iter().map(|b| b.expect("filled")).collect();
        let skip = (start - first * BLOCK) as usize;
        if blocks.len() == 1 {
            return Ok(blocks[0].slice(skip..skip + len as usize));
        }
        let mut out = Vec::with_capacity(len as usize);
        for block in &blocks {
            out.extend_from_slice(block);
        }
        Ok(Bytes::from(out).slice(skip..skip + len as usize))
    }
}

impl Length for RandomAccess {
    fn len(&self) -> u64 {
        match &self.0 {
            Inner::File(file) => file.len(),
            Inner::Remote(blocks) => blocks.object.size(),
        }
    }
}

impl ChunkReader for RandomAccess {
    type T = Box<dyn Read + Send>;

    /// A remote read starts with the rest of its block and goes on, if it is read that far,
    /// as one ranged read of the rest of the object.
    fn get_read(&self, start: u64) -> ParquetResult<Self::T> {
        match &self.0 {
            Inner::File(file) => Ok(Box::new(file.get_read(start)?)),
            Inner::Remote(blocks) => {
                let size = blocks.object.size();
                let block_end = ((start / BLOCK + 1) * BLOCK).min(size).max(start);
                let head = blocks.bytes(start, block_end - start)?;
                let rest = RangeReader::new(blocks.object.clone(), block_end..size);
                Ok(Box::new(std::io::Cursor::new(head).chain(rest)))
            }
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        match &self.0 {
            Inner::File(file) => file.get_bytes(start, length),
            Inner::Remote(blocks) => blocks
                .bytes(start, length as u64)
                .map_err(|e| ParquetError::External(Box::new(e))),
        }
    }
}
