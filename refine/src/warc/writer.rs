//! Writing WARC/1.1 files: gzip-per-record `.warc.gz` (as CommonCrawl ships) or plain
//! `.warc`. Used for sample data, benchmarks, and tests that need damaged or unusual input.
//!
//! Record ids are derived from the record's content and position, so the same calls write the
//! same bytes. The writer streams into any `Write`; write to a temporary file and rename it
//! to publish atomically.

use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::Compression;
use xxhash_rust::xxh3::xxh3_128;

/// Writes WARC records to `W`, each record its own gzip member when compressing.
pub struct WarcWriter<W: Write> {
    out: W,
    gzip: Option<Compression>,
    records: u64,
}

impl<W: Write> WarcWriter<W> {
    /// A writer of gzip-per-record WARC (`.warc.gz`) at zlib level 6.
    pub fn gzip(out: W) -> Self {
        WarcWriter {
            out,
            gzip: Some(Compression::new(6)),
            records: 0,
        }
    }

    /// A writer of uncompressed WARC (`.warc`).
    pub fn plain(out: W) -> Self {
        WarcWriter {
            out,
            gzip: None,
            records: 0,
        }
    }

    /// Writes a `warcinfo` record; `fields` go in its `application/warc-fields` block
    /// (e.g. `("isPartOf", "CC-MAIN-2020-34")`, which readers take as the dump name).
    pub fn warcinfo(
        &mut self,
        filename: &str,
        timestamp: i64,
        fields: &[(&str, &str)],
    ) -> io::Result<String> {
        let block: String = fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        self.record(
            "warcinfo",
            timestamp,
            &[
                ("WARC-Filename", filename),
                ("Content-Type", "application/warc-fields"),
            ],
            block.as_bytes(),
        )
    }

    /// Writes a `response` record holding the HTTP response `status` with `headers` and `body`
    /// for `url` fetched at `timestamp` (seconds since the epoch, UTC). Returns its record id.
    pub fn response(
        &mut self,
        url: &str,
        timestamp: i64,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<String> {
        let mut block = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
        for (name, value) in headers {
            block.push_str(&format!("{name}: {value}\r\n"));
        }
        block.push_str("\r\n");
        let mut block = block.into_bytes();
        block.extend_from_slice(body);
        self.record(
            "response",
            timestamp,
            &[
                ("WARC-Target-URI", url),
                ("Content-Type", "application/http; msgtype=response"),
            ],
            &block,
        )
    }

    /// Writes a `request` record (a GET of `url`).
    pub fn request(&mut self, url: &str, timestamp: i64) -> io::Result<String> {
        let path = url
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .unwrap_or("/");
        let host = url
            .split_once("://")
            .map_or("", |(_, r)| r.split('/').next().unwrap_or(""));
        let block = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: falconry\r\n\r\n");
        self.record(
            "request",
            timestamp,
            &[
                ("WARC-Target-URI", url),
                ("Content-Type", "application/http; msgtype=request"),
            ],
            block.as_bytes(),
        )
    }

    /// Writes a WET `conversion` record: the plain text of `url`.
    pub fn conversion(&mut self, url: &str, timestamp: i64, text: &str) -> io::Result<String> {
        self.record(
            "conversion",
            timestamp,
            &[("WARC-Target-URI", url), ("Content-Type", "text/plain")],
            text.as_bytes(),
        )
    }

    /// Writes any record: `WARC-Type`, `WARC-Date`, `WARC-Record-ID` and `Content-Length`
    /// are filled in; `headers` add the rest. Returns the record id.
    pub fn record(
        &mut self,
        warc_type: &str,
        timestamp: i64,
        headers: &[(&str, &str)],
        block: &[u8],
    ) -> io::Result<String> {
        let mut seed = self.records.to_le_bytes().to_vec();
        seed.extend_from_slice(warc_type.as_bytes());
        seed.extend_from_slice(block);
        let h = format!("{:032x}", xxh3_128(&seed));
        let id = format!(
            "<urn:uuid:{}-{}-{}-{}-{}>",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        self.records += 1;

        let mut head = format!(
            "WARC/1.1\r\nWARC-Type: {warc_type}\r\nWARC-Date: {}\r\nWARC-Record-ID: {id}\r\n",
            format_date(timestamp)
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", block.len()));
        match self.gzip {
            Some(level) => {
                let mut gz = GzEncoder::new(&mut self.out, level);
                write_record(&mut gz, head.as_bytes(), block)?;
                gz.finish()?;
            }
            None => write_record(&mut self.out, head.as_bytes(), block)?,
        }
        Ok(id)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_record(w: &mut impl Write, head: &[u8], block: &[u8]) -> io::Result<()> {
    w.write_all(head)?;
    w.write_all(block)?;
    w.write_all(b"\r\n\r\n")
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// `2020-08-08T17:27:41Z` for seconds since the epoch.
pub(crate) fn format_date(ts: i64) -> String {
    let (days, secs) = (ts.div_euclid(86_400), ts.rem_euclid(86_400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for ts in [0, 951_782_400, 1_209_588_505, 1_596_907_661, 4_102_444_799] {
            assert_eq!(
                super::super::header::parse_date(format_date(ts).as_bytes()),
                Some(ts)
            );
        }
        assert_eq!(format_date(1_596_907_661), "2020-08-08T17:27:41Z");
    }

    #[test]
    fn one_member_per_record() {
        let mut w = WarcWriter::gzip(Vec::new());
        w.warcinfo("x.warc.gz", 0, &[("isPartOf", "CC-MAIN-2020-34")])
            .expect("in memory");
        w.response(
            "http://a/",
            0,
            200,
            &[("Content-Type", "text/html")],
            b"<html>",
        )
        .expect("in memory");
        let bytes = w.finish().expect("in memory");
        let members = memchr::memmem::find_iter(&bytes, &[0x1f, 0x8b, 0x08]).count();
        assert_eq!(members, 2);
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
            &mut text,
        )
        .expect("valid gzip");
        assert!(text.starts_with("WARC/1.1\r\nWARC-Type: warcinfo\r\n"));
        assert!(text
            .contains("\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>\r\n\r\n"));
    }
}
