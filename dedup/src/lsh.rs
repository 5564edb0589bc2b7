//! LSH band buckets: signatures written partitioned by key range, then sorted per bucket
//! into candidate pairs (RefinedWeb §3.3; datatrove's `MinhashDedupBuckets`).
//!
//! A band key is 64 bits with the band number folded in ([`crate::minhash`]), so one sort
//! over `(key, doc)` finds every band at once and a bucket is a range of keys, not of bands:
//! bucket `b` of `B` holds keys in `[b * 2^64 / B, (b + 1) * 2^64 / B)`. A document is
//! `shard << 32 | row` ([`DocRef`]); on disk a record is `key: u64, row: u32` (12 bytes,
//! little-endian) in `signatures/shard-SSSSS/bucket-BBBBB.bin`, the shard implied by the
//! folder. Each equal-key group gives star pairs: every member to the group's smallest doc;
//! the bucket's pairs are then reduced to a forest (one edge per document, to the smallest of
//! its component in this bucket). Memory of one bucket task: its records x 16 bytes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use falconry_refine::folder::{commit_tmp, create_tmp};

use crate::components::UnionFind;

use crate::{Error, Result};

/// A document of the run: `shard << 32 | row`. Sorts in corpus order.
pub type DocRef = u64;

/// The document `row` of input shard `shard`.
pub fn doc_ref(shard: usize, row: u32) -> DocRef {
    (shard as u64) << 32 | row as u64
}

/// The shard and row of a document.
pub fn split_ref(doc: DocRef) -> (usize, u32) {
    ((doc >> 32) as usize, doc as u32)
}

/// The bucket of a key: its range of the 64-bit key space.
pub fn bucket_of(key: u64, buckets: usize) -> usize {
    ((key as u128 * buckets as u128) >> 64) as usize
}

/// The file of bucket `bucket` in a shard's signature folder.
pub fn bucket_file(shard_dir: &Path, bucket: usize) -> PathBuf {
    shard_dir.join(format!("bucket-{bucket:05}.bin"))
}

/// Writes one shard's band keys into its bucket files (temporary names until `finish`).
pub struct BucketWriter {
    /// Each bucket's file and its temporary name.
    paths: Vec<(PathBuf, PathBuf)>,
    files: Vec<BufWriter<File>>,
}

impl BucketWriter {
    /// Creates `buckets` files in `shard_dir`.
    pub fn create(shard_dir: &Path, buckets: usize) -> Result<Self> {
        std::fs::create_dir_all(shard_dir).map_err(|e| Error::io(shard_dir, e))?;
        let mut paths = Vec::with_capacity(buckets);
        let mut files = Vec::with_capacity(buckets);
        for b in 0..buckets {
            let path = bucket_file(shard_dir, b);
            let (tmp, file) = create_tmp(&path)?;
            files.push(BufWriter::with_capacity(1 << 16, file));
            paths.push((path, tmp));
        }
        Ok(BucketWriter { paths, files })
    }

    /// Adds the keys of document `row`.
    pub fn add(&mut self, row: u32, keys: &[u64]) -> Result<()> {
        let n = self.files.len();
        for &key in keys {
            let b = bucket_of(key, n);
            let mut rec = [0u8; 12];
            rec[..8].copy_from_slice(&key.to_le_bytes());
            rec[8..].copy_from_slice(&row.to_le_bytes());
            self.files[b]
                .write_all(&rec)
                .map_err(|e| Error::io(&self.paths[b].1, e))?;
        }
        Ok(())
    }

    /// Flushes every file and renames it into place.
    pub fn finish(self) -> Result<()> {
        for (file, (path, tmp)) in self.files.into_iter().zip(&self.paths) {
            let file = file
                .into_inner()
                .map_err(|e| Error::io(tmp, e.into_error()))?;
            commit_tmp(file, tmp, path)?;
        }
        Ok(())
    }
}

/// Reads one bucket of every shard, sorts by key and returns the star pairs
/// `(doc, first doc of its key group)`, sorted and without repeats.
pub fn bucket_pairs(
    shard_dirs: &[(usize, PathBuf)],
    bucket: usize,
) -> Result<Vec<(DocRef, DocRef)>> {
    let mut records: Vec<(u64, DocRef)> = Vec::new();
    for (shard, dir) in shard_dirs {
        let path = bucket_file(dir, bucket);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if bytes.len() % 12 != 0 {
            return Err(Error::WorkFile {
                path,
                message: "length is not a multiple of 12".into(),
            });
        }
        records.reserve(bytes.len() / 12);
        for rec in bytes.chunks_exact(12) {
            let key = u64::from_le_bytes(rec[..8].try_into().unwrap_or_default());
            let row = u32::from_le_bytes(rec[8..].try_into().unwrap_or_default());
            records.push((key, doc_ref(*shard, row)));
        }
    }
    records.sort_unstable();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let (key, first) = records[i];
        let mut j = i + 1;
        while j < records.len() && records[j].0 == key {
            if records[j].1 != first {
                pairs.push((records[j].1, first));
            }
            j += 1;
        }
        i = j;
    }
    pairs.sort_unstable();
    pairs.dedup();
    Ok(local_forest(&pairs))
}

/// The same connectivity as `pairs` in at most one edge per document: each document to the
/// smallest document of its component within this bucket. A pair of exact duplicates
/// collides in every band, so without this the components step would read it up to
/// `bands` times over.
fn local_forest(pairs: &[(DocRef, DocRef)]) -> Vec<(DocRef, DocRef)> {
    let mut nodes: Vec<DocRef> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let index = |d: DocRef| nodes.binary_search(&d).unwrap_or_default() as u32;
    let mut uf = UnionFind::new(nodes.len());
    for &(a, b) in pairs {
        uf.union(index(a), index(b));
    }
    // Nodes are sorted, so the first node met of each root is its component's smallest.
    let mut smallest: HashMap<u32, u32> = HashMap::new();
    let mut out = Vec::with_capacity(nodes.len());
    for i in 0..nodes.len() as u32 {
        let m = *smallest.entry(uf.find(i)).or_insert(i);
        if m != i {
            out.push((nodes[i as usize], nodes[m as usize]));
        }
    }
    out
}

/// Writes pairs as 16-byte little-endian records, atomically.
pub fn write_pairs(path: &Path, pairs: &[(DocRef, DocRef)]) -> Result<()> {
    let (tmp, file) = create_tmp(path)?;
    let mut w = BufWriter::new(file);
    for (a, b) in pairs {
        w.write_all(&a.to_le_bytes())
            .and_then(|_| w.write_all(&b.to_le_bytes()))
            .map_err(|e| Error::io(&tmp, e))?;
    }
    let file = w
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    Ok(commit_tmp(file, &tmp, path)?)
}

/// Streams the pairs of a file written by [`write_pairs`] to `f`, without loading it whole.
pub fn for_each_pair(path: &Path, mut f: impl FnMut(DocRef, DocRef)) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut rec = [0u8; 16];
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => f(
                u64::from_le_bytes(rec[..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(rec[8..].try_into().unwrap_or_default()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_pairs_reduce_to_one_edge_per_document() {
        // 1-2 and 2-3 via different keys: 3 links to 1, not to 2.
        assert_eq!(
            local_forest(&[(2, 1), (3, 2), (3, 1), (9, 8)]),
            vec![(2, 1), (3, 1), (9, 8)]
        );
    }

    #[test]
    fn equal_keys_across_shards_become_star_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let shards: Vec<(usize, PathBuf)> = (0..2)
            .map(|s| (s, dir.path().join(format!("s{s}"))))
            .collect();
        let mut w0 = BucketWriter::create(&shards[0].1, 4).unwrap();
        w0.add(0, &[10, 20]).unwrap();
        w0.add(1, &[10, 30]).unwrap();
        w0.finish().unwrap();
        let mut w1 = BucketWriter::create(&shards[1].1, 4).unwrap();
        w1.add(0, &[10, 40]).unwrap();
        w1.add(5, &[u64::MAX, 20]).unwrap();
        w1.finish().unwrap();
        assert_eq!(bucket_of(u64::MAX, 4), 3);
        let pairs = bucket_pairs(&shards, 0).unwrap();
        assert_eq!(
            pairs,
            vec![
                (doc_ref(0, 1), doc_ref(0, 0)),
                (doc_ref(1, 0), doc_ref(0, 0)),
                (doc_ref(1, 5), doc_ref(0, 0))
            ]
        );
        assert!(bucket_pairs(&shards, 3).unwrap().is_empty());
        let path = dir.path().join("p.bin");
        write_pairs(&path, &pairs).unwrap();
        let mut back = Vec::new();
        for_each_pair(&path, |a, b| back.push((a, b))).unwrap();
        assert_eq!(back, pairs);
    }
}
