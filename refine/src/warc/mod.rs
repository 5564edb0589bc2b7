//! The `read` stage: WARC files in, [`Document`]s out (RefinedWeb section 3.1 starts from
//! raw WARC, not CommonCrawl's WET text, so extraction can see the HTML).
//!
//! [`WarcReader`] streams a `.warc.gz` (one gzip member per record, as CommonCrawl ships it,
//! or any other member layout), a plain `.warc`, or a WET file, told apart by their first
//! bytes; versions WARC/0.17 to WARC/1.1. Memory stays bounded whatever the file size: two
//! 256 KiB buffers and one record payload of at most [`ReadConfig::max_payload_bytes`]
//! (larger payloads are skipped without being held).
//!
//! `response` records with an HTML payload become documents with [`Document::html`] set;
//! WET `conversion` records become documents with [`Document::content`] set. Whether a
//! payload is HTML is decided by `WARC-Identified-Payload-Type` when present, else by the HTTP
//! `Content-Type`, else by sniffing the body's first bytes. The HTML is decoded to text as
//! browsers do ([`decode_html`]).
//!
//! Every record is one `in` of the `read` row of the funnel; each one that is not a document is
//! a [`ReadItem::Skip`] with one of these reasons. A response is checked in the table's order,
//! except that `not_html` is decided before `too_large` when `WARC-Identified-Payload-Type` is
//! present (no need to read the payload), after `bad_http` otherwise:
//!
//! | reason | record |
//! |---|---|
//! | `warcinfo`, `request`, `metadata`, `revisit`, `resource`, `continuation` | a record of that `WARC-Type` |
//! | `unknown_type` | any other `WARC-Type` |
//! | `robots_txt` | a response for a `/robots.txt` URL |
//! | `not_http` | a response that is not an HTTP message (e.g. `dns:` lookups) |
//! | `not_html` | a payload that is not HTML (images, PDFs, scripts, plain text, ...) |
//! | `too_large` | a payload over `max_payload_bytes` (before or after content decoding) |
//! | `bad_http` | a response whose HTTP status line or headers do not parse |
//! | `http_status` | a response whose HTTP status is not 2xx |
//! | `bad_encoding` | a `Content-Encoding` that cannot be undone (`br`, corrupt gzip) |
//! | `corrupt_gzip` | a gzip member that fails to inflate or fails its CRC (or garbage before the first) |
//! | `truncated` | the file ends inside a record or a gzip member |
//! | `bad_length` | a `Content-Length` that runs past the record's gzip member into the next record |
//! | `bad_header` | bytes where a WARC header should be that are not one |
//! | `read_error` | the operating system failed to read the file (reading stops) |
//!
//! Damage is never an error: after `corrupt_gzip` reading resumes at the next gzip member,
//! after `bad_header` at the next `WARC/x.y` line (at a line or member start), after
//! `bad_length` at the member that starts the next record (a record that begins a gzip member
//! never reads past a later member that begins with a `WARC/x.y` line; in a plain or
//! single-member file a too-long `Content-Length` is only noticed at the end); one damaged
//! stretch is counted once, however many records it spans. When a record ends its gzip member
//! (CommonCrawl's layout), the member's CRC is checked before the record is passed on.
//!
//! Speed: `cargo run --release -p falconry-refine --example read_bench` (one core; the issue
//! asks for at least 150 MB/s of decompressed WARC).

mod charset;
mod header;
mod http;
mod input;
#[cfg(test)]
mod tests;
pub mod writer;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Document, Result};
use header::WarcHeader;
use input::{Break, Input};

pub use charset::decode_html;
pub use writer::WarcWriter;

/// WARC headers longer than this are damage.
const MAX_HEADER: usize = 64 << 10;
/// warcinfo blocks are read (for `isPartOf`) up to this size, skipped beyond.
const MAX_WARCINFO: u64 = 64 << 10;

/// The `read` stage's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadConfig {
    /// Payloads larger than this many bytes are skipped as `too_large`.
    pub max_payload_bytes: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            max_payload_bytes: 8 << 20,
        }
    }
}

impl ReadConfig {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.max_payload_bytes == 0 {
            return Err("read.max_payload_bytes must be at least 1".into());
        }
        Ok(())
    }
}

/// One step of reading: a document, or a record skipped for a reason.
// Nearly every item is a document, moved once: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ReadItem {
    /// A document (HTML in `html`, or text in `content` for WET conversion records).
    Doc(Document),
    /// A record that is not a document, or is damaged; the reason is counted.
    Skip(&'static str),
}

/// Streams documents out of a `.warc`, `.warc.gz` or `.warc.wet.gz` file.
pub struct WarcReader {
    input: Input,
    max_payload: usize,
    /// From warcinfo `isPartOf`, else the path's `CC-MAIN-YYYY-WW`.
    dump: String,
    segment: String,
    /// Damage was counted and the reader is looking for the next record start.
    resync: bool,
    /// The next byte starts a line (resync only accepts `WARC/` at a line start).
    line_start: bool,
    done: bool,
    /// The current record's block, reused between records.
    block: Vec<u8>,
}

impl WarcReader {
    /// Opens a file; only failing to open it is an error.
    pub fn open(path: &Path, config: &ReadConfig) -> Result<Self> {
        let name = path.to_string_lossy();
        let mut reader = Self::from_reader(crate::remote::open(path)?, config);
        reader.dump = header::dump_in(&name).unwrap_or_default().to_string();
        reader.segment = header::segment_in(&name).unwrap_or_default().to_string();
        Ok(reader)
    }

    /// Reads WARC from any byte stream (gzip or plain, told by its first bytes); `dump` and
    /// `segment` then come only from warcinfo.
    pub fn from_reader(reader: Box<dyn std::io::Read + Send>, config: &ReadConfig) -> Self {
        WarcReader {
            input: Input::new(reader),
            max_payload: config.max_payload_bytes,
            dump: String::new(),
            segment: String::new(),
            resync: false,
            line_start: true,
            done: false,
            block: Vec::new(),
        }
    }

    /// Compressed bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.input.bytes_read()
    }

    /// Whether the file is gzip-compressed (else plain WARC).
    pub fn is_gzip(&self) -> bool {
        self.input.is_gzip()
    }

    /// Counts damage once per damaged stretch (`None` when already counted) and starts
    /// looking for the next record.
    fn damage(&mut self, reason: &'static str) -> Option<ReadItem> {
        self.line_start = true;
        if self.resync {
            return None;
        }
        self.resync = true;
        Some(ReadItem::Skip(reason))
    }

    fn broke(&mut self, b: Break) -> Option<ReadItem> {
        if b == Break::ReadError {
            self.done = true;
        }
        self.damage(b.reason())
    }

    fn end(&mut self) -> Option<ReadItem> {
        self.done = true;
        None
    }

    /// Moves to the next `WARC/x.y` line at a line start; `Ok(false)` at the end of input.
    fn find_record_start(&mut self) -> std::result::Result<bool, Break> {
        let mut need = 1;
        loop {
            self.input.fill(need)?;
            let buf = self.input.buffered();
            if buf.is_empty() {
                return Ok(false);
            }
            let ended = buf.len() < need;
            // Unless the input ended, keep a `WARC` cut by the end of what is buffered.
            let mut keep_from = if ended {
                buf.len()
            } else {
                buf.len().saturating_sub(4)
            };
            let mut from = 0;
            while let Some(i) = memchr::memmem::find(&buf[from..], b"WARC/") {
                let at = from + i;
                let tail = &buf[at..buf.len().min(at + 16)];
                if !ended && tail.len() < 16 && !tail.contains(&b'\n') {
                    keep_from = at;
                    break;
                }
                let line_start = if at == 0 {
                    self.line_start
                } else {
                    buf[at - 1] == b'\n'
                };
                let line_start = line_start || self.input.member_starts_at(at);
                if line_start && header::is_version_line(tail) {
                    self.input.consume(at);
                    return Ok(true);
                }
                from = at + 1;
            }
            if keep_from == 0 {
                need = buf.len() + 1;
            } else {
                need = buf.len() - keep_from + 1;
                self.line_start = buf[keep_from - 1] == b'\n';
                self.input.consume(keep_from);
            }
        }
    }

    /// Reads one record: `None` when there is nothing to count (the end, which sets `done`,
    /// or damage already counted).
    fn step(&mut self) -> Option<ReadItem> {
        if self.resync {
            match self.find_record_start() {
                Ok(true) => self.resync = false,
                Ok(false) => return self.end(),
                Err(b) => return self.broke(b),
            }
        }
        // Records are followed by CRLF CRLF; tolerate any run of blank lines between them.
        loop {
            let buf = match self.input.fill(1) {
                Ok(buf) => buf,
                Err(b) => return self.broke(b),
            };
            if buf.is_empty() {
                return self.end();
            }
            let blank = buf
                .iter()
                .take_while(|c| matches!(c, b'\r' | b'\n' | b' ' | b'\t'))
                .count();
            if blank == 0 {
                break;
            }
            self.input.consume(blank);
        }
        // One record per gzip member (CommonCrawl's layout): the block may not run into the
        // next member's record, whatever its Content-Length says.
        let bounded = self.input.is_gzip() && self.input.member_starts_at(0);
        // The header, up to its blank line.
        let mut need = 1;
        let head_len = loop {
            let buf = match self.input.fill(need) {
                Ok(buf) => buf,
                Err(b) => return self.broke(b),
            };
            if !buf.starts_with(&b"WARC/"[..buf.len().min(5)]) {
                return self.damage("bad_header");
            }
            if let Some(n) = header::header_end(&buf[..buf.len().min(MAX_HEADER)]) {
                break n;
            }
            if buf.len() < need {
                // The input ended inside the header.
                let n = buf.len();
                self.input.consume(n);
                return self.damage("truncated");
            }
            if buf.len() >= MAX_HEADER {
                self.input.consume(1);
                return self.damage("bad_header");
            }
            need = buf.len() + 1;
        };
        let buf = match self.input.fill(head_len) {
            Ok(buf) => buf,
            Err(b) => return self.broke(b),
        };
        let Some(h) = header::parse(&buf[..head_len]) else {
            self.input.consume(1);
            return self.damage("bad_header");
        };
        let length = h.content_length;
        // Owned copies of what the document needs, before the buffer moves on.
        let meta = match plan(&h, self.max_payload) {
            Plan::Read(kind) => Ok(RecordMeta {
                kind,
                record_id: String::from_utf8_lossy(h.record_id).into_owned(),
                url: header::target_url(h.target_uri),
                timestamp: header::parse_date(h.date),
            }),
            Plan::Skip(reason) => Err(reason),
        };
        self.input.consume(head_len);
        let meta = match meta {
            Ok(meta) => meta,
            Err(reason) => {
                return match self.input.skip(length, bounded) {
                    Ok((_, true)) => self.damage("bad_length"),
                    Ok((n, false)) if n < length => self.damage("truncated"),
                    Ok(_) => Some(ReadItem::Skip(reason)),
                    Err(b) => self.broke(b),
                }
            }
        };
        self.block.clear();
        match self
            .input
            .read_into(length as usize, &mut self.block, bounded)
        {
            Ok((_, true)) => return self.damage("bad_length"),
            Ok((n, false)) if (n as u64) < length => return self.damage("truncated"),
            Ok(_) => {}
            Err(b) => return self.broke(b),
        }
        if let Err(b) = self.input.check_record_end() {
            return self.broke(b);
        }
        let block = std::mem::take(&mut self.block);
        let item = self.record(meta, &block);
        self.block = block;
        Some(item)
    }

    /// Turns a fully read block into a document or a skip.
    fn record(&mut self, meta: RecordMeta, block: &[u8]) -> ReadItem {
        let doc = |html: Option<String>, content: String, dump: &str, segment: &str| {
            ReadItem::Doc(Document {
                id: Document::record_id(&meta.record_id),
                url: meta.url.clone(),
                timestamp: meta.timestamp,
                dump: dump.to_string(),
                segment: segment.to_string(),
                content,
                html,
                ..Document::default()
            })
        };
        match meta.kind {
            Kind::Warcinfo => {
                if let Some(part) = header::warc_field(block, "isPartOf") {
                    self.dump = part.to_string();
                }
                if let Some(segment) = header::warc_field(block, "segment") {
                    self.segment = segment.to_string();
                }
                ReadItem::Skip("warcinfo")
            }
            Kind::Conversion => {
                let text = String::from_utf8_lossy(block).trim_end().to_string();
                doc(None, text, &self.dump, &self.segment)
            }
            Kind::Response { identified_html } => {
                let Some(resp) = http::parse(block) else {
                    return ReadItem::Skip("bad_http");
                };
                let html = match (identified_html, resp.content_type) {
                    (Some(html), _) => html,
                    (None, Some(ct)) if !ct.trim_ascii().is_empty() => http::is_html_type(ct),
                    (None, _) => http::sniff_html(resp.body),
                };
                if !html {
                    return ReadItem::Skip("not_html");
                }
                if !(200..300).contains(&resp.status) {
                    return ReadItem::Skip("http_status");
                }
                let body = match http::decoded_body(&resp, self.max_payload) {
                    Ok(body) => body,
                    Err(reason) => return ReadItem::Skip(reason),
                };
                let text = charset::decode_html(&body, resp.content_type, &meta.url);
                doc(Some(text), String::new(), &self.dump, &self.segment)
            }
        }
    }
}

impl Iterator for WarcReader {
    type Item = ReadItem;
    fn next(&mut self) -> Option<ReadItem> {
        while !self.done {
            if let Some(item) = self.step() {
                return Some(item);
            }
        }
        None
    }
}

/// Records whose block is read.
enum Kind {
    Warcinfo,
    Conversion,
    /// `identified_html`: the verdict of `WARC-Identified-Payload-Type`, when present.
    Response {
        identified_html: Option<bool>,
    },
}

enum Plan {
    Read(Kind),
    Skip(&'static str),
}

struct RecordMeta {
    kind: Kind,
    record_id: String,
    url: String,
    timestamp: Option<i64>,
}

/// Decides from the header alone whether a record's block is worth reading.
fn plan(h: &WarcHeader<'_>, max_payload: usize) -> Plan {
    let kind = match h.warc_type {
        b"warcinfo" if h.content_length <= MAX_WARCINFO => return Plan::Read(Kind::Warcinfo),
        b"warcinfo" => return Plan::Skip("warcinfo"),
        b"response" => {
            let url = header::target_url(h.target_uri);
            let path = url.split(['?', '#']).next().unwrap_or_default();
            if path.ends_with("/robots.txt") {
                return Plan::Skip("robots_txt");
            }
            let ct = h.content_type.trim_ascii();
            let http = ct.is_empty()
                || ct.len() >= 16 && ct[..16].eq_ignore_ascii_case(b"application/http");
            if !http {
                return Plan::Skip("not_http");
            }
            let identified_html = h.identified_payload_type.map(http::is_html_type);
            if identified_html == Some(false) {
                return Plan::Skip("not_html");
            }
            Kind::Response { identified_html }
        }
        b"conversion" => Kind::Conversion,
        b"request" => return Plan::Skip("request"),
        b"metadata" => return Plan::Skip("metadata"),
        b"revisit" => return Plan::Skip("revisit"),
        b"resource" => return Plan::Skip("resource"),
        b"continuation" => return Plan::Skip("continuation"),
        _ => return Plan::Skip("unknown_type"),
    };
    if h.content_length > max_payload as u64 {
        return Plan::Skip("too_large");
    }
    Plan::Read(kind)
}
