//! Connected components of the candidate pairs: one cluster per group of near duplicates
//! (RefinedWeb §3.3; datatrove's `MinhashDedupCluster`).
//!
//! Memory is bounded by the number of *distinct documents in pairs*, never by the number
//! of pairs: pair files are streamed twice from disk, once to collect the sorted node list
//! (`u64` each), once to union (`u32` parent and size per node, path halving, union by
//! size). Documents without a pair are never loaded. At RefinedWeb's scale (10B documents,
//! about half of them in some cluster) this is 5B x 16 bytes = 80 GB on one node; the
//! README gives the sharded plan beyond that.

use std::path::PathBuf;

use crate::lsh::{for_each_pair, DocRef};
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

/// Connected components of the pairs in `files` (written by [`crate::lsh::write_pairs`]).
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
