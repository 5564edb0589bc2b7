//! Connected components of the candidate pairs: one cluster per group of near duplicates
//! (RefinedWeb §3.3; datatrove's `MinhashDedupCluster`), in bounded memory.
//!
//! The `components` step never holds the graph. Edges live in sorted runs on disk
//! ([`crate::sorted_runs`]) and each round is a merge over key ranges of document ids:
//! alternating *large-star* and *small-star* (Kiveris et al. 2014, "Connected Components in
//! MapReduce and Beyond", O(log^2 n) rounds), each a streaming pass over one node's
//! neighbours at a time, with the node order being [`DocRef`] order. When the input of a
//! large-star round is already a forest of stars (every node is a root with only larger
//! neighbours or a leaf with one smaller one) each star is a component and its root the
//! smallest document. Per document the root then joins the document's facts; a sort by root
//! picks the kept document of each cluster (earliest timestamp, then smallest id, then
//! smallest [`DocRef`]), and a sort by document writes the removed ones per shard.
//!
//! [`connected_components`] is the in-memory union-find over the same pair files: the
//! reference the tests hold the rounds against, for corpora whose clustered documents fit
//! in RAM.

use std::path::PathBuf;

use crate::lsh::{for_each_pair, DocRef};
use crate::sorted_runs::{Merge, Record, RunWriter};
use crate::{Error, Result};

/// Union-find over dense indices `0..n`.
#[derive(Clone, Debug)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    /// The representative of `x`'s set.
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    /// Joins the sets of `a` and `b`.
    pub fn union(&mut self, a: u32, b: u32) {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
    }
}

/// The clustered documents: sorted `nodes` and, for each, its cluster's representative
/// index into `nodes`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clusters {
    /// Every document that appears in a pair, sorted.
    pub nodes: Vec<DocRef>,
    /// `root[i]`: the representative (an index into `nodes`) of `nodes[i]`'s cluster.
    pub root: Vec<u32>,
}

/// Connected components of the pairs in `files` (written by [`crate::lsh::write_pairs`]),
/// in memory: 12 bytes per clustered document, up to 2^32 of them.
pub fn connected_components(files: &[PathBuf]) -> Result<Clusters> {
    let mut nodes: Vec<DocRef> = Vec::new();
    for path in files {
        let mut mine = Vec::new();
        for_each_pair(path, |a, b| mine.extend([a, b]))?;
        mine.sort_unstable();
        mine.dedup();
        nodes.extend(mine);
        nodes.sort_unstable();
        nodes.dedup();
    }
    if nodes.len() >= u32::MAX as usize {
        return Err(Error::WorkFile {
            path: files.first().cloned().unwrap_or_default(),
            message: format!(
                "{} clustered documents exceed this step's 2^32 limit",
                nodes.len()
            ),
        });
    }
    let index = |d: DocRef, nodes: &[DocRef]| nodes.binary_search(&d).unwrap_or_default() as u32;
    let mut uf = UnionFind::new(nodes.len());
    for path in files {
        for_each_pair(path, |a, b| uf.union(index(a, &nodes), index(b, &nodes)))?;
    }
    let root = (0..nodes.len() as u32).map(|i| uf.find(i)).collect();
    Ok(Clusters { nodes, root })
}

/// An edge `(node, neighbour)` of a round's graph, sorted by node then neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge(pub DocRef, pub DocRef);

impl Record for Edge {
    fn key(&self) -> u64 {
        self.0
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Edge(
            u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
        ))
    }
}

/// Writes an undirected edge in both directions, as a large-star round reads it.
pub fn push_both(w: &mut RunWriter<Edge>, a: DocRef, b: DocRef) -> Result<()> {
    w.push(Edge(a, b), 16)?;
    w.push(Edge(b, a), 16)
}

/// The neighbours of one node after another, from a merge sorted by (node, neighbour).
fn for_each_node(
    edges: &mut Merge<Edge>,
    mut f: impl FnMut(DocRef, &[DocRef]) -> Result<()>,
) -> Result<()> {
    let mut node = None;
    let mut nbrs: Vec<DocRef> = Vec::new();
    while let Some(Edge(u, v)) = edges.next_record()? {
        if node != Some(u) {
            if let Some(n) = node {
                f(n, &nbrs)?;
            }
            node = Some(u);
            nbrs.clear();
        }
        nbrs.push(v);
    }
    match node {
        Some(n) => f(n, &nbrs),
        None => Ok(()),
    }
}

/// One round over a key range. `large`: large-star (every larger neighbour of `u` links to
/// the smallest of `u` and its neighbours), output in both directions for the small-star
/// round; otherwise small-star (`u` and its smaller neighbours all link to the smallest of
/// them), output in both directions for the next large-star round. Returns whether every
/// node of the input was a star's root or leaf (only meaningful for a large-star round).
pub fn star_round(large: bool, edges: &mut Merge<Edge>, out: &mut RunWriter<Edge>) -> Result<bool> {
    let mut star = true;
    for_each_node(edges, |u, nbrs| {
        // Neighbours arrive sorted, so the first is the smallest.
        let m = nbrs[0].min(u);
        if large {
            star &= nbrs[0] > u || nbrs.len() == 1;
            for &v in nbrs.iter().filter(|&&v| v > u) {
                out.push(Edge(v, m), 16)?;
            }
        } else {
            // A small-star round reads only edges from a node to smaller ones.
            for &v in nbrs.iter().chain([&u]).filter(|&&v| v != m) {
                push_both(out, v, m)?;
            }
        }
        Ok(())
    })?;
    Ok(star)
}

/// A converged round's input: each node's root (itself for a root).
pub fn roots(
    edges: &mut Merge<Edge>,
    mut f: impl FnMut(DocRef, DocRef) -> Result<()>,
) -> Result<()> {
    for_each_node(edges, |u, nbrs| f(u, nbrs[0].min(u)))
}

/// A clustered document with its root and the facts that decide which one a cluster keeps,
/// sorted by root, then keep order: earliest timestamp, then smallest id, then smallest
/// document (RefinedWeb keeps one per cluster; the choice is ours, and deterministic).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// The smallest document of the cluster.
    pub root: DocRef,
    /// Crawl time (`i64::MAX` unknown).
    pub timestamp: i64,
    /// Document id.
    pub id: String,
    /// The document.
    pub doc: DocRef,
}

impl Record for Member {
    fn key(&self) -> u64 {
        self.root
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.root.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.doc.to_le_bytes());
        out.extend_from_slice(self.id.as_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Member {
            root: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            timestamp: i64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
            doc: u64::from_le_bytes(b.get(16..24)?.try_into().ok()?),
            id: String::from_utf8(b.get(24..)?.to_vec()).ok()?,
        })
    }
}

/// A removed document and the id of the one its cluster keeps, sorted by document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dropped {
    /// The removed document.
    pub doc: DocRef,
    /// The kept document's id.
    pub kept: String,
}

impl Record for Dropped {
    fn key(&self) -> u64 {
        self.doc
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.doc.to_le_bytes());
        out.extend_from_slice(self.kept.as_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Dropped {
            doc: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            kept: String::from_utf8(b.get(8..)?.to_vec()).ok()?,
        })
    }
}

/// A record of a group (the records sharing a [`Record::key`]), sorted within the group in
/// keep order: the first of each group stays, the others are removed in its favour.
pub trait Grouped: Record + Clone {
    /// The document.
    fn doc(&self) -> DocRef;
    /// The document's id.
    fn id(&self) -> &str;
}

impl Grouped for Member {
    fn doc(&self) -> DocRef {
        self.doc
    }
    fn id(&self) -> &str {
        &self.id
    }
}

/// Reads one key range of grouped records: the first of each group stays, the others go to
/// `out`; returns the group-size histogram of the range.
pub fn keep_first<R: Grouped>(
    records: &mut Merge<R>,
    out: &mut RunWriter<Dropped>,
) -> Result<std::collections::BTreeMap<u64, u64>> {
    let mut sizes = std::collections::BTreeMap::new();
    let mut kept: Option<R> = None;
    let mut size = 0u64;
    while let Some(r) = records.next_record()? {
        match &kept {
            Some(k) if k.key() == r.key() => {
                size += 1;
                let d = Dropped {
                    doc: r.doc(),
                    kept: k.id().to_string(),
                };
                let len = 8 + d.kept.len();
                out.push(d, len)?;
            }
            _ => {
                if kept.is_some() {
                    *sizes.entry(size).or_default() += 1;
                }
                kept = Some(r);
                size = 1;
            }
        }
    }
    if kept.is_some() {
        *sizes.entry(size).or_default() += 1;
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsh::write_pairs;

    #[test]
    fn pairs_in_two_files_join_transitively() {
        let dir = tempfile::tempdir().unwrap();
        let f0 = dir.path().join("a.bin");
        let f1 = dir.path().join("b.bin");
        write_pairs(&f0, &[(2, 1), (9, 8)]).unwrap();
        write_pairs(&f1, &[(3, 2), (5, 4)]).unwrap();
        let c = connected_components(&[f0, f1]).unwrap();
        assert_eq!(c.nodes, vec![1, 2, 3, 4, 5, 8, 9]);
        let r = &c.root;
        assert!(r[0] == r[1] && r[1] == r[2]);
        assert!(r[3] == r[4] && r[3] != r[0]);
        assert!(r[5] == r[6] && r[5] != r[3] && r[5] != r[0]);
    }
}
