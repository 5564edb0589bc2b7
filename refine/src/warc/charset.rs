//! Decoding an HTML payload to text: which encoding, in the order browsers use (WHATWG
//! "determining the character encoding"): a byte order mark, then the HTTP `charset=`, then
//! `<meta charset>` / `<meta http-equiv=content-type>` in the first bytes, then detection with
//! `chardetng`. Decoding (`encoding_rs`) never fails: bad bytes become U+FFFD.
//!
//! One departure from browsers: a UTF-8 label over bytes that are not UTF-8 is taken as wrong
//! (servers often send `charset=utf-8` for legacy pages) and the encoding is detected instead.

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// How far into the document `<meta>` is looked for (HTML's prescan reads 1024 bytes; pages
/// with long inline scripts before it are common enough to look a bit further).
const META_SCAN: usize = 2048;
/// How much of an undeclared, non-UTF-8 document the detector reads.
const DETECT_SCAN: usize = 64 << 10;

/// Decodes an HTML body. `content_type` is the HTTP header; `url` gives the detector its
/// top-level domain hint.
pub fn decode_html(body: &[u8], content_type: Option<&[u8]>, url: &str) -> String {
    if let Some((enc, bom)) = Encoding::for_bom(body) {
        return decode(enc, &body[bom..]);
    }
    let declared = content_type
        .and_then(http_charset)
        .or_else(|| meta_charset(&body[..body.len().min(META_SCAN)]));
    match declared {
        Some(enc) if enc != UTF_8 => decode(enc, body),
        // Declared UTF-8 or undeclared: valid UTF-8 is taken as it is (one validation pass).
        _ => match std::str::from_utf8(body) {
            Ok(text) => text.to_owned(),
            Err(_) => decode(detect(body, url), body),
        },
    }
}

fn decode(enc: &'static Encoding, bytes: &[u8]) -> String {
    if enc == UTF_8 {
        if let Ok(s) = std::str::from_utf8(bytes) {
            return s.to_owned();
        }
    }
    enc.decode_without_bom_handling(bytes).0.into_owned()
}

fn detect(body: &[u8], url: &str) -> &'static Encoding {
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    let sample = &body[..body.len().min(DETECT_SCAN)];
    detector.feed(sample, sample.len() == body.len());
    detector.guess(tld(url), Utf8Detection::Deny)
}

/// The top-level domain of a URL's host, as chardetng wants it.
fn tld(url: &str) -> Option<&[u8]> {
    let host = url
        .split("://")
        .nth(1)?
        .split(['/', ':', '?', '#'])
        .next()?;
    let last = host.rsplit('.').next()?;
    (!last.is_empty() && last.bytes().all(|c| c.is_ascii_alphabetic())).then_some(last.as_bytes())
}

/// The encoding named by `charset=` in a Content-Type value; unknown labels give `None`.
fn http_charset(content_type: &[u8]) -> Option<&'static Encoding> {
    let at = find_ci(content_type, b"charset")?;
    label_after(&content_type[at + 7..]).and_then(Encoding::for_label)
}

/// The encoding a `<meta>` tag in `head` declares, as the HTML prescan reads it.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let mut from = 0;
    while let Some(i) = find_ci(&head[from..], b"<meta") {
        let tag_start = from + i + 5;
        let tag_end =
            memchr::memchr(b'>', &head[tag_start..]).map_or(head.len(), |e| tag_start + e);
        let tag = &head[tag_start..tag_end];
        if let Some(c) = find_ci(tag, b"charset") {
            if let Some(enc) = label_after(&tag[c + 7..]).and_then(Encoding::for_label) {
                // HTML: a meta can't declare UTF-16 (it would not have been readable as ASCII),
                // and x-user-defined means windows-1252.
                return Some(match enc.name() {
                    "UTF-16LE" | "UTF-16BE" => UTF_8,
                    "x-user-defined" => WINDOWS_1252,
                    _ => enc,
                });
            }
        }
        from = tag_end;
    }
    None
}

/// The label in `= "label"` (quotes and spaces optional).
fn label_after(b: &[u8]) -> Option<&[u8]> {
    let b = b.trim_ascii_start().strip_prefix(b"=")?.trim_ascii_start();
    let b = b
        .strip_prefix(b"\"")
        .or_else(|| b.strip_prefix(b"'"))
        .unwrap_or(b);
    let end = b
        .iter()
        .position(|c| {
            matches!(c, b'"' | b'\'' | b';' | b'>' | b'/' | b',') || c.is_ascii_whitespace()
        })
        .unwrap_or(b.len());
    (end > 0).then(|| &b[..end])
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(enc: &'static Encoding, s: &str) -> Vec<u8> {
        enc.encode(s).0.into_owned()
    }

    #[test]
    fn shift_jis_from_http_meta_and_detection() {
        let text = "日本語のウェブページです。文字化けしないように正しく読み込む必要があります。";
        let html =
            format!("<html><head><title>テスト</title></head><body><p>{text}</p></body></html>");
        let sjis = encode(encoding_rs::SHIFT_JIS, &html);
        let got = decode_html(
            &sjis,
            Some(b"text/html; charset=Shift_JIS"),
            "http://example.jp/",
        );
        assert!(got.contains(text));
        let meta = [b"<meta charset=\"shift_jis\">".as_slice(), &sjis].concat();
        assert!(decode_html(&meta, Some(b"text/html"), "http://example.com/").contains(text));
        assert!(
            decode_html(&sjis, None, "http://example.jp/").contains(text),
            "detected"
        );
    }

    #[test]
    fn windows_1252_and_latin1_label() {
        let html = "<p>Café crème, naïve façade — “quoted”</p>";
        let bytes = encode(WINDOWS_1252, html);
        assert_eq!(
            decode_html(
                &bytes,
                Some(b"text/html; charset=ISO-8859-1"),
                "http://x.fr/"
            ),
            html
        );
        let meta = [
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">"
                .as_slice(),
            &bytes,
        ]
        .concat();
        assert!(decode_html(&meta, None, "http://x.fr/").ends_with(html));
        // Undeclared: detection.
        assert_eq!(
            decode_html(&bytes, Some(b"text/html"), "http://x.fr/"),
            html
        );
    }

    #[test]
    fn bom_wins_over_labels() {
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend_from_slice("<p>Grüße</p>".as_bytes());
        assert_eq!(
            decode_html(&bytes, Some(b"text/html; charset=windows-1252"), ""),
            "<p>Grüße</p>"
        );
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("<p>é</p>".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode_html(&utf16, None, ""), "<p>é</p>");
    }

    #[test]
    fn wrong_and_unknown_labels() {
        let html = "<p>Größe und Maße</p>";
        let latin = encode(WINDOWS_1252, html);
        // Says UTF-8, is not: detected instead.
        assert_eq!(
            decode_html(&latin, Some(b"text/html; charset=utf-8"), "http://x.de/"),
            html
        );
        // A label nobody knows: falls through to meta, then detection.
        let utf8 = html.as_bytes();
        assert_eq!(
            decode_html(utf8, Some(b"text/html; charset=klingon"), ""),
            html
        );
        let meta = [
            b"<meta charset=\"bogus\"><meta charset=\"utf-8\">".as_slice(),
            utf8,
        ]
        .concat();
        assert!(decode_html(&meta, Some(b"text/html; charset=\"\""), "").ends_with(html));
        // Invalid bytes under a real UTF-8 page decode with replacement, never fail.
        let broken = b"<p>ok \xff\xfe ok</p>";
        let got = decode_html(broken, Some(b"text/html; charset=utf-8"), "");
        assert!(got.starts_with("<p>ok"));
    }

    #[test]
    fn meta_forms() {
        assert_eq!(
            meta_charset(b"<META CHARSET=euc-kr>"),
            Some(encoding_rs::EUC_KR)
        );
        assert_eq!(
            meta_charset(b"<meta content='text/html;charset=gb2312' http-equiv=content-type>"),
            Some(encoding_rs::GBK)
        );
        assert_eq!(meta_charset(b"<meta charset=\"utf-16\">"), Some(UTF_8));
        assert_eq!(meta_charset(b"<meta name=description content=x>"), None);
        assert_eq!(tld("https://www.example.co.jp:8080/x"), Some(&b"jp"[..]));
        assert_eq!(tld("dns:x"), None);
    }
}
