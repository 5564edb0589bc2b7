//! URL dedup (RefinedWeb §3.3: "URL deduplication"): a URL kept in an earlier dump or part
//! is removed from later ones.
//!
//! URLs compare after [`normalize_url`]: scheme and host lowercased, fragment stripped (path
//! and query are case-sensitive on the web and stay). "Earlier" is the order
//! `(dump, shard, row)`: dumps sort by name (`CC-MAIN-YYYY-WW` is chronological), shards in
//! input order. Documents without a URL are never URL duplicates. The step is a sort on disk
//! like the others ([`crate::sorted_runs`]): each shard writes its surviving documents as
//! [`UrlRecord`]s, each range of URL keys keeps the first of every URL
//! ([`keep_first`](crate::components::keep_first)), and each shard reads back its removed
//! rows; no task reads more than its own share of the records.

use xxhash_rust::xxh3::xxh3_64;

use crate::components::Grouped;
use crate::lsh::DocRef;
use crate::sorted_runs::Record;

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

/// A surviving document with a URL, sorted by URL key, then keep order: earliest dump by
/// name, then document (shard, row).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UrlRecord {
    /// [`url_key`] of the URL.
    pub key: u64,
    /// The document's dump.
    pub dump: String,
    /// The document.
    pub doc: DocRef,
    /// The document's id, named by the documents removed in its favour.
    pub id: String,
}

impl UrlRecord {
    /// Bytes of the encoding.
    pub fn encoded_len(&self) -> usize {
        18 + self.dump.len() + self.id.len()
    }
}

impl Record for UrlRecord {
    fn key(&self) -> u64 {
        self.key
    }
    fn encode(&self, out: &mut Vec<u8>) {
        let dump = &self.dump.as_bytes()[..self.dump.len().min(u16::MAX as usize)];
        out.extend_from_slice(&self.key.to_le_bytes());
        out.extend_from_slice(&self.doc.to_le_bytes());
        out.extend_from_slice(&(dump.len() as u16).to_le_bytes());
        out.extend_from_slice(dump);
        out.extend_from_slice(self.id.as_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let dump_len = u16::from_le_bytes(b.get(16..18)?.try_into().ok()?) as usize;
        Some(UrlRecord {
            key: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            doc: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
            dump: String::from_utf8(b.get(18..18 + dump_len)?.to_vec()).ok()?,
            id: String::from_utf8(b.get(18 + dump_len..)?.to_vec()).ok()?,
        })
    }
}

impl Grouped for UrlRecord {
    fn doc(&self) -> DocRef {
        self.doc
    }
    fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::{keep_first, Dropped};
    use crate::sorted_runs::{merge_range, run_files, RunWriter};

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
    fn earliest_dump_then_part_wins_and_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let r = |key, dump: &str, doc, id: &str| UrlRecord {
            key,
            dump: dump.into(),
            doc,
            id: id.into(),
        };
        let recs = [
            r(7, "CC-MAIN-2021-04", 1, "b"),
            r(7, "CC-MAIN-2020-50", 50, "kept"),
            r(7, "CC-MAIN-2021-04", 0, "a"),
            r(9, "CC-MAIN-2021-04", 3, "alone"),
            r(u64::MAX, "", 4, ""),
        ];
        let mut buf = Vec::new();
        recs[1].encode(&mut buf);
        assert_eq!(buf.len(), recs[1].encoded_len());
        assert_eq!(UrlRecord::decode(&buf), Some(recs[1].clone()));
        // Two runs, as two shards write them; one merge over every key.
        let mut w = RunWriter::create(dir.path(), "u", 1).unwrap();
        for rec in recs {
            let len = rec.encoded_len();
            w.push(rec, len).unwrap();
        }
        let runs = run_files(dir.path(), "u", w.finish().unwrap());
        let mut out = RunWriter::<Dropped>::create(dir.path(), "d", 1 << 20).unwrap();
        let sizes = keep_first(
            &mut merge_range::<UrlRecord>(&runs, 0, u64::MAX).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(sizes, [(1, 2), (3, 1)].into_iter().collect());
        let dropped = run_files(dir.path(), "d", out.finish().unwrap());
        let mut m = merge_range::<Dropped>(&dropped, 0, u64::MAX).unwrap();
        let mut got = Vec::new();
        while let Some(d) = m.next_record().unwrap() {
            got.push((d.doc, d.kept));
        }
        assert_eq!(got, vec![(0, "kept".into()), (1, "kept".into())]);
    }
}
