//! The HTTP message inside a `response` record: status, the headers that matter, and the
//! body with any transfer and content coding still on it undone.
//!
//! CommonCrawl stores bodies already decoded and renames the headers
//! (`X-Crawler-Transfer-Encoding`, `X-Crawler-Content-Encoding`); wget and older crawlers
//! store the bytes as they came, so `chunked`, `gzip` and `deflate` are undone here.

use std::borrow::Cow;
use std::io::Read;

use super::header::header_end;

/// HTTP headers longer than this are not a response we can read.
const MAX_HTTP_HEADER: usize = 64 << 10;

/// The parts of an HTTP response that decide whether and how to read its body.
#[derive(Debug, Default)]
pub(crate) struct Response<'a> {
    pub(crate) status: u16,
    pub(crate) content_type: Option<&'a [u8]>,
    pub(crate) transfer_encoding: Option<&'a [u8]>,
    pub(crate) content_encoding: Option<&'a [u8]>,
    pub(crate) body: &'a [u8],
}

/// Parses an `application/http; msgtype=response` block; `None` if it is not one.
pub(crate) fn parse(block: &[u8]) -> Option<Response<'_>> {
    let rest = block.strip_prefix(b"HTTP/")?;
    let sp = memchr::memchr(b' ', &rest[..rest.len().min(16)])?;
    let code = rest.get(sp + 1..sp + 4)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0u16, |n, c| n * 10 + u16::from(c - b'0'));
    let head_len = header_end(&block[..block.len().min(MAX_HTTP_HEADER)])?;
    let mut r = Response {
        status,
        body: &block[head_len..],
        ..Default::default()
    };
    for line in block[..head_len].split(|&c| c == b'\n').skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"Content-Type") {
            r.content_type = Some(value);
        } else if name.eq_ignore_ascii_case(b"Transfer-Encoding") {
            r.transfer_encoding = Some(value);
        } else if name.eq_ignore_ascii_case(b"Content-Encoding") {
            r.content_encoding = Some(value);
        }
    }
    Some(r)
}

/// Whether a MIME type (parameters allowed) is HTML.
pub(crate) fn is_html_type(mime: &[u8]) -> bool {
    let essence = mime
        .split(|&c| c == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    essence.eq_ignore_ascii_case(b"text/html")
        || essence.eq_ignore_ascii_case(b"application/xhtml+xml")
}

/// Whether a body without a Content-Type starts like an HTML document.
pub(crate) fn sniff_html(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let start = body
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(body.len());
    let head = &body[start..body.len().min(start + 14)];
    [&b"<!doctype html"[..], b"<html", b"<head"]
        .iter()
        .any(|p| head.len() >= p.len() && head[..p.len()].eq_ignore_ascii_case(p))
}

/// The body with transfer and content coding undone, at most `limit` bytes.
/// Errors are skip reasons: `bad_encoding` (a coding we cannot undo), `too_large`.
pub(crate) fn decoded_body<'a>(
    r: &Response<'a>,
    limit: usize,
) -> Result<Cow<'a, [u8]>, &'static str> {
    let mut body = Cow::Borrowed(r.body);
    if r.transfer_encoding
        .is_some_and(|te| contains_ci(te, b"chunked"))
    {
        // A body already de-chunked under a stale header does not parse: keep it as it is.
        if let Some(plain) = dechunk(r.body) {
            body = Cow::Owned(plain);
        }
    }
    let coding = r.content_encoding.unwrap_or_default().trim_ascii();
    if coding.is_empty() || coding.eq_ignore_ascii_case(b"identity") {
        return Ok(body);
    }
    let decoded = if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
    {
        inflate(flate2::read::MultiGzDecoder::new(&body[..]), limit)
    } else if coding.eq_ignore_ascii_case(b"deflate") {
        // "deflate" is zlib-wrapped by the RFC, raw deflate by some servers.
        inflate(flate2::read::ZlibDecoder::new(&body[..]), limit)
            .or_else(|_| inflate(flate2::read::DeflateDecoder::new(&body[..]), limit))
    } else {
        Err("bad_encoding")
    };
    match decoded {
        Ok(d) => Ok(Cow::Owned(d)),
        Err("too_large") => Err("too_large"),
        // The header says coded but the bytes are markup: stored decoded, header left stale.
        Err(_) if starts_like_markup(&body) => Ok(body),
        Err(e) => Err(e),
    }
}

fn inflate(reader: impl Read, limit: usize) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| "bad_encoding")?;
    if out.len() > limit {
        return Err("too_large");
    }
    Ok(out)
}

fn starts_like_markup(b: &[u8]) -> bool {
    b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<')
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Undoes `Transfer-Encoding: chunked` (RFC 9112 section 7.1); `None` if `b` is not chunked.
/// A body cut short keeps the chunks that arrived.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut first = true;
    while let Some(nl) = memchr::memchr(b'\n', b) {
        let line = b[..nl].strip_suffix(b"\r").unwrap_or(&b[..nl]);
        let hex = line
            .split(|&c| c == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let size = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok());
        let Some(size) = size else {
            if first {
                return None;
            }
            break;
        };
        first = false;
        if size == 0 {
            break;
        }
        b = &b[nl + 1..];
        let take = size.min(b.len());
        out.extend_from_slice(&b[..take]);
        b = &b[take..];
        b = b
            .strip_prefix(b"\r\n")
            .or_else(|| b.strip_prefix(b"\n"))
            .unwrap_or(b);
    }
    if first {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_headers() {
        let block = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html; charset=utf-8\r\n\
                      X-Crawler-Content-Encoding: gzip\r\n\r\n<html>";
        let r = parse(block).expect("parses");
        assert_eq!(r.status, 404);
        assert_eq!(r.content_type, Some(&b"text/html; charset=utf-8"[..]));
        assert_eq!(r.content_encoding, None);
        assert_eq!(r.body, b"<html>");
        assert!(parse(b"GET / HTTP/1.1\r\n\r\n").is_none());
        assert!(parse(b"HTTP/1.1 2x0 OK\r\n\r\n").is_none());
        assert_eq!(parse(b"HTTP/2 200\r\n\r\nx").map(|r| r.status), Some(200));
    }

    #[test]
    fn html_types() {
        assert!(is_html_type(b"text/html"));
        assert!(is_html_type(b" Text/HTML ; charset=x"));
        assert!(is_html_type(b"application/xhtml+xml"));
        assert!(!is_html_type(b"text/plain"));
        assert!(!is_html_type(b"image/png"));
        assert!(sniff_html(b"\n  <!DOCTYPE html><p>"));
        assert!(sniff_html(b"\xef\xbb\xbf<HTML>"));
        assert!(!sniff_html(b"%PDF-1.4"));
    }

    #[test]
    fn chunked_and_compressed_bodies() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<html\r\n3;x=y\r\n><p\r\n0\r\n\r\n";
        let r = parse(chunked).expect("parses");
        assert_eq!(decoded_body(&r, 100).as_deref(), Ok(&b"<html><p"[..]));
        // Stale header over a body stored de-chunked: kept as it is.
        let stale = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n<html></html>";
        let r = parse(stale).expect("parses");
        assert_eq!(decoded_body(&r, 100).as_deref(), Ok(&b"<html></html>"[..]));

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, b"<html>hello</html>").expect("in memory");
        let mut block = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n".to_vec();
        block.extend(gz.finish().expect("in memory"));
        let r = parse(&block).expect("parses");
        assert_eq!(
            decoded_body(&r, 100).as_deref(),
            Ok(&b"<html>hello</html>"[..])
        );
        assert_eq!(decoded_body(&r, 5), Err("too_large"));

        let r =
            parse(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n\x8b\x02\x80").expect("parses");
        assert_eq!(decoded_body(&r, 100), Err("bad_encoding"));
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n<html>").expect("parses");
        assert_eq!(decoded_body(&r, 100).as_deref(), Ok(&b"<html>"[..]));
    }
}
