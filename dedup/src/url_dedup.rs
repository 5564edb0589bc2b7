//! URL dedup (RefinedWeb §3.3: "URL deduplication"): a URL kept in an earlier dump or part
//! is removed from later ones.
//!
//! URLs compare after [`normalize_url`]: scheme and host lowercased, fragment stripped (path
//! and query are case-sensitive on the web and stay). "Earlier" is the order
//! `(dump, shard, row)`: dumps sort by name (`CC-MAIN-YYYY-WW` is chronological), shards in
//! input order. Documents without a URL are never URL duplicates. The step is sharded by
//! hash range of the URL key: task `p` of `P` owns keys with `key % P == p`, so each holds
//! about `docs / P` records of 24 bytes. `P` grows with the corpus ([`url_partitions`]) so a
//! partition's records stay within its share of `memory_limit_gb`.

use xxhash_rust::xxh3::xxh3_64;

use crate::config::DedupConfig;
use crate::lsh::DocRef;

/// The comparable form of a URL: lowercase scheme and host, no `#fragment`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(host_end);
    format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        host.to_lowercase(),
        tail
    )
}

/// The 64-bit key of a URL; `None` for an empty one.
pub fn url_key(url: &str) -> Option<u64> {
    let norm = normalize_url(url);
    (!norm.is_empty()).then(|| xxh3_64(norm.as_bytes()))
}

/// Bytes a partition holds per URL record, worst case: the record (24 B), its
/// `(dropped, kept)` pair (16 B) and the dropped line with the kept document's id (~88 B).
pub const URL_RECORD_BYTES: u64 = 128;

/// The fewest bytes of a `meta.bin` record (timestamp, URL key, two string lengths): `meta
/// bytes / this` bounds the documents, so the records, from above.
pub const MIN_META_RECORD_BYTES: u64 = 20;

/// URL partitions for a run whose shards' `meta.bin` files hold `meta_bytes` in all: at least
/// `url_dedup.partitions`, and enough that a partition's records (at most `meta_bytes /`
/// [`MIN_META_RECORD_BYTES`] over all partitions, [`URL_RECORD_BYTES`] each) fit in
/// [`DedupConfig::run_budget`], the share of `memory_limit_gb` one of the
/// [`PARALLEL_UNITS`](crate::config::PARALLEL_UNITS) units a task runs at once may use.
/// Every task and every reader of the partitions computes it from the same files; before
/// `signatures` (0 bytes, as the Slurm planner sees it) it is the configured count.
pub fn url_partitions(config: &DedupConfig, meta_bytes: u64) -> usize {
    let records = meta_bytes / MIN_META_RECORD_BYTES;
    let budget = config.run_budget().max(1) as u128;
    let need = (records as u128 * URL_RECORD_BYTES as u128).div_ceil(budget);
    config.url_dedup.partitions.max(need as usize)
}

/// One surviving document's URL: its key, its dump's rank among the run's dumps, itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UrlRecord {
    /// [`url_key`] of the URL.
    pub key: u64,
    /// Rank of the document's dump in sorted order of the dump names.
    pub dump_rank: u32,
    /// The document.
    pub doc: DocRef,
}

/// Sorts `records` and returns `(dropped, kept)` for every URL duplicate: each record after
/// the first of its key, paired with that first one.
pub fn url_duplicates(records: &mut [UrlRecord]) -> Vec<(DocRef, DocRef)> {
    records.sort_unstable();
    let mut out = Vec::new();
    for group in records.chunk_by(|a, b| a.key == b.key) {
        out.extend(group[1..].iter().map(|r| (r.doc, group[0].doc)));
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_scheme_host_and_fragment_only() {
        assert_eq!(
            normalize_url("HTTPS://Example.COM/Path?Q=1#top"),
            "https://example.com/Path?Q=1"
        );
        assert_eq!(normalize_url("http://a.org?x#y"), "http://a.org?x");
        assert_eq!(url_key(""), None);
        assert_eq!(url_key("http://A.org/x#1"), url_key("http://a.org/x"));
        assert_ne!(url_key("http://a.org/X"), url_key("http://a.org/x"));
    }

    #[test]
    fn partitions_grow_with_the_meta_and_shrink_the_limit() {
        let mut config = DedupConfig::default();
        assert_eq!(url_partitions(&config, 0), 16);
        // 8 GB limit: 1 GiB per unit holds 8Mi records of 128 B: 160 MiB of meta.
        assert_eq!(url_partitions(&config, 160 << 20), 16);
        assert_eq!(url_partitions(&config, 40 << 30), 256);
        config.memory_limit_gb = 0.5;
        assert_eq!(url_partitions(&config, 40 << 30), 4096);
    }

    #[test]
    fn earliest_dump_then_part_wins() {
        let r = |key, dump_rank, doc| UrlRecord {
            key,
            dump_rank,
            doc,
        };
        let mut recs = vec![r(7, 1, 1), r(7, 0, 50), r(7, 1, 0), r(9, 0, 3)];
        assert_eq!(url_duplicates(&mut recs), vec![(0, 50), (1, 50)]);
    }
}
