//! The one record that flows from reading to publishing.

use xxhash_rust::xxh3::xxh3_128;

use crate::filters::text::WordsMemo;

/// A web document. Columns of the public RefinedWeb schema (`content`, `url`, `timestamp`,
/// `dump`, `segment`, `image_urls`) plus `id` and the annotations later stages add.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    /// Stable identity: 32 hex digits of xxh3-128 over the WARC record id, or over url and
    /// content for text inputs (see [`Document::text_id`]). Dedup breaks ties with it.
    pub id: String,
    /// The page URL (`WARC-Target-URI`).
    pub url: String,
    /// Crawl time in seconds since the Unix epoch, UTC (`WARC-Date`); `None` when unknown.
    pub timestamp: Option<i64>,
    /// Crawl name such as `CC-MAIN-2020-34`, from warcinfo or the file name.
    pub dump: String,
    /// Segment of the crawl (CommonCrawl's `segments/<id>` path component).
    pub segment: String,
    /// Main text; empty until extraction fills it for HTML inputs.
    pub content: String,
    /// Images in the main content as `[src, alt]` pairs.
    pub image_urls: Vec<[String; 2]>,
    /// Decoded HTML payload, consumed by extraction; never written out.
    pub html: Option<String>,
    /// Language label set by `language_id` (`en`, `fr`, ...).
    pub language: Option<String>,
    /// Top fastText score for `language`.
    pub language_score: Option<f32>,
    /// The words of `content`, split by the first filter that counts them and reused by the
    /// next ones (`doc.words.of(&doc.content)`); never written out.
    pub words: WordsMemo,
}

impl Document {
    /// The id of a record read from WARC: a hash of its `WARC-Record-ID`.
    pub fn record_id(warc_record_id: &str) -> String {
        format!("{:032x}", xxh3_128(warc_record_id.as_bytes()))
    }

    /// The id of a text input without a record id: a hash of url and content.
    pub fn text_id(url: &str, content: &str) -> String {
        let mut buf = Vec::with_capacity(url.len() + content.len() + 1);
        buf.extend_from_slice(url.as_bytes());
        buf.push(0);
        buf.extend_from_slice(content.as_bytes());
        format!("{:032x}", xxh3_128(&buf))
    }
}
