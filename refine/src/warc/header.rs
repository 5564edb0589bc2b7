//! WARC record headers (WARC 1.1 section 4, also the 0.17 draft and 1.0) and their dates.

/// The named fields of one WARC record header that reading needs.
#[derive(Debug, Default)]
pub(crate) struct WarcHeader<'a> {
    pub(crate) warc_type: &'a [u8],
    pub(crate) record_id: &'a [u8],
    pub(crate) target_uri: &'a [u8],
    pub(crate) date: &'a [u8],
    pub(crate) content_type: &'a [u8],
    pub(crate) identified_payload_type: Option<&'a [u8]>,
    pub(crate) content_length: u64,
}

/// Where a header ends: the length of the header including its blank line, if `b` holds it.
/// Lines end in CRLF as the standard says; bare LF is accepted as some writers emit it.
pub(crate) fn header_end(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &b[from..]) {
        let nl = from + i;
        match b.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if b.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            Some(_) => from = nl + 1,
            None => return None,
        }
    }
    None
}

/// `WARC/<digits>.<digits>` as a whole line: the start of a record.
pub(crate) fn is_version_line(b: &[u8]) -> bool {
    let Some(rest) = b.strip_prefix(b"WARC/") else {
        return false;
    };
    let digits = rest
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'.')
        .count();
    digits > 0 && matches!(rest.get(digits), Some(b'\r' | b'\n'))
}

/// Parses the header block `b` (version line through blank line); `None` if it is not a
/// WARC header or has no usable `Content-Length`.
pub(crate) fn parse(b: &[u8]) -> Option<WarcHeader<'_>> {
    if !is_version_line(b) {
        return None;
    }
    let mut h = WarcHeader::default();
    let mut length = None;
    // Continuation lines (leading space or tab) only extend fields we don't read.
    for line in b.split(|&c| c == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        match name.len() {
            9 if name.eq_ignore_ascii_case(b"WARC-Type") => h.warc_type = value,
            9 if name.eq_ignore_ascii_case(b"WARC-Date") => h.date = value,
            12 if name.eq_ignore_ascii_case(b"Content-Type") => h.content_type = value,
            14 if name.eq_ignore_ascii_case(b"WARC-Record-ID") => h.record_id = value,
            14 if name.eq_ignore_ascii_case(b"Content-Length") => {
                length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
            }
            15 if name.eq_ignore_ascii_case(b"WARC-Target-URI") => h.target_uri = value,
            28 if name.eq_ignore_ascii_case(b"WARC-Identified-Payload-Type") => {
                h.identified_payload_type = Some(value)
            }
            _ => {}
        }
    }
    h.content_length = length?;
    Some(h)
}

/// The URL of `WARC-Target-URI`, without the `<...>` that wget (and the WARC 1.0 grammar)
/// put around it.
pub(crate) fn target_url(uri: &[u8]) -> String {
    let uri = uri
        .strip_prefix(b"<")
        .and_then(|u| u.strip_suffix(b">"))
        .unwrap_or(uri);
    String::from_utf8_lossy(uri).into_owned()
}

/// Seconds since the epoch (UTC) of a `WARC-Date`: ISO 8601 `2020-08-08T17:27:41Z`, with
/// optional fraction (WARC 1.1) or without seconds, or the 0.17 draft's `20080430204825`.
pub(crate) fn parse_date(d: &[u8]) -> Option<i64> {
    let digits: Vec<u8> = d
        .iter()
        .take_while(|c| !matches!(c, b'.' | b'Z' | b'z' | b'+'))
        .filter(|c| c.is_ascii_digit())
        .copied()
        .collect();
    if digits.len() < 8 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = digits.get(r)?;
        Some(s.iter().fold(0i64, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let (y, mo, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let h = num(8..10).unwrap_or(0);
    let mi = num(10..12).unwrap_or(0);
    let s = num(12..14).unwrap_or(0);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, day) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The crawl name `CC-MAIN-YYYY-WW` in a path or file name, if any.
pub(crate) fn dump_in(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    memchr::memmem::find_iter(b, b"CC-MAIN-").find_map(|i| {
        let rest = &b[i + 8..];
        let shape = rest.len() >= 7
            && rest[..4].iter().all(u8::is_ascii_digit)
            && rest[4] == b'-'
            && rest[5..7].iter().all(u8::is_ascii_digit)
            && !rest.get(7).is_some_and(u8::is_ascii_digit);
        shape.then(|| &s[i..i + 15])
    })
}

/// CommonCrawl's segment id, the component after `segments/` in a path.
pub(crate) fn segment_in(s: &str) -> Option<&str> {
    let i = s.find("segments/")? + "segments/".len();
    let seg = s[i..].split(['/', '\\']).next()?;
    (!seg.is_empty() && s[i + seg.len()..].starts_with(['/', '\\'])).then_some(seg)
}

/// A `name: value` field of an `application/warc-fields` block (warcinfo).
pub(crate) fn warc_field<'a>(block: &'a [u8], field: &str) -> Option<&'a str> {
    block.split(|&c| c == b'\n').find_map(|line| {
        let colon = memchr::memchr(b':', line)?;
        line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(field.as_bytes())
            .then(|| std::str::from_utf8(line[colon + 1..].trim_ascii()).ok())
            .flatten()
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date(b"2020-08-08T17:27:41Z"), Some(1_596_907_661));
        assert_eq!(
            parse_date(b"2020-08-08T17:27:41.123456Z"),
            Some(1_596_907_661)
        );
        assert_eq!(parse_date(b"20080430204825"), Some(1_209_588_505));
        assert_eq!(parse_date(b"2008-04-30T20:48:25Z"), Some(1_209_588_505));
        assert_eq!(parse_date(b"2000-02-29"), Some(951_782_400));
        assert_eq!(parse_date(b"yesterday"), None);
        assert_eq!(parse_date(b"2020-13-01T00:00:00Z"), None);
        assert_eq!(parse_date(b""), None);
    }

    #[test]
    fn dumps_and_segments() {
        let p = "crawl-data/CC-MAIN-2020-34/segments/1596439738015.38/warc/\
                 CC-MAIN-20200808165417-20200808195417-00395.warc.gz";
        assert_eq!(dump_in(p), Some("CC-MAIN-2020-34"));
        assert_eq!(segment_in(p), Some("1596439738015.38"));
        assert_eq!(
            dump_in("CC-MAIN-20200808165417-20200808195417-00395.warc.gz"),
            None
        );
        assert_eq!(dump_in("x/CC-MAIN-2024-22"), Some("CC-MAIN-2024-22"));
        assert_eq!(segment_in("a/segments/"), None);
    }

    #[test]
    fn headers() {
        let h = b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 12\r\n\
                  WARC-Target-URI: <http://x/>\r\n  continued\r\n\r\n";
        assert_eq!(header_end(h), Some(h.len()));
        assert_eq!(header_end(b"WARC/1.0\nA: b\n\nrest"), Some(15));
        let p = parse(h).expect("parses");
        assert_eq!((p.warc_type, p.content_length), (&b"response"[..], 12));
        assert_eq!(target_url(p.target_uri), "http://x/");
        assert!(parse(b"WARC/1.0\r\nWARC-Type: response\r\n\r\n").is_none());
        assert!(parse(b"HTTP/1.0 200\r\nContent-Length: 1\r\n\r\n").is_none());
        assert!(is_version_line(b"WARC/0.17\r\n"));
        assert!(!is_version_line(b"WARC/ \r\n"));
        assert_eq!(
            warc_field(b"a: 1\r\nisPartOf: CC-MAIN-2020-34\r\n", "ispartof"),
            Some("CC-MAIN-2020-34")
        );
    }
}
