//! Reader tests: every WARC in shared/data (counts from `scripts/warc_counts.py`, warcio's
//! view of the same files), WARCs built with [`WarcWriter`], and damaged input.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use super::*;
use crate::test_data_dir as data_dir;

fn warc(rel: &str) -> PathBuf {
    data_dir().join("warc").join(rel)
}

/// Reasons and documents (`"doc"`) counted over a reader.
fn tally(items: impl Iterator<Item = ReadItem>) -> (BTreeMap<&'static str, u64>, Vec<Document>) {
    let mut counts = BTreeMap::new();
    let mut docs = Vec::new();
    for item in items {
        match item {
            ReadItem::Doc(d) => {
                *counts.entry("doc").or_default() += 1;
                docs.push(d);
            }
            ReadItem::Skip(reason) => *counts.entry(reason).or_default() += 1,
        }
    }
    (counts, docs)
}

fn read_file(rel: &str) -> (BTreeMap<&'static str, u64>, Vec<Document>) {
    let path = warc(rel);
    tally(WarcReader::open(&path, &ReadConfig::default()).expect("test file opens"))
}

fn read_bytes(bytes: Vec<u8>) -> (BTreeMap<&'static str, u64>, Vec<Document>) {
    tally(WarcReader::from_reader(
        Box::new(std::io::Cursor::new(bytes)),
        &ReadConfig::default(),
    ))
}

macro_rules! counts {
    ($($k:literal: $v:expr),* $(,)?) => {{
        let mut m = BTreeMap::<&'static str, u64>::new();
        $(m.insert($k, $v);)*
        m
    }};
}

#[test]
fn commoncrawl_resiliparse() {
    let (counts, docs) = read_file("cc/resiliparse/warcfile.warc.gz");
    assert_eq!(
        counts,
        counts! {"warcinfo": 1, "request": 17, "metadata": 16, "doc": 16}
    );
    let d = &docs[0];
    assert_eq!(d.url, "http://003338.cn/l41/481397.html");
    assert_eq!(
        d.id,
        Document::record_id("<urn:uuid:c4c112a5-3503-4483-abf8-51a0dd86dd53>")
    );
    assert_eq!(d.timestamp, Some(1_596_907_661));
    assert_eq!(d.dump, "CC-MAIN-2020-34");
    assert_eq!(d.segment, "");
    assert!(d.content.is_empty());
    for d in &docs {
        let html = d.html.as_deref().expect("html documents");
        assert!(html.to_ascii_lowercase().contains("<html"), "{}", d.url);
        assert!(!html.contains('\u{fffd}'), "{} decodes cleanly", d.url);
    }
    // The Chinese pages decode to Chinese (gb2312/gbk/utf-8 declared in various ways).
    let cjk = docs
        .iter()
        .filter(|d| d.html.as_deref().is_some_and(|h| h.contains('的')))
        .count();
    assert!(cjk >= 5, "{cjk} pages with 的");
}

#[test]
fn commoncrawl_whirlwind_warc_wet_wat() {
    let (counts, docs) = read_file("cc/whirlwind/whirlwind.warc.gz");
    assert_eq!(
        counts,
        counts! {"warcinfo": 1, "request": 1, "metadata": 1, "doc": 1}
    );
    assert_eq!(docs[0].url, "https://an.wikipedia.org/wiki/Escopete");
    assert_eq!(docs[0].dump, "CC-MAIN-2024-22");
    assert!(docs[0]
        .html
        .as_deref()
        .is_some_and(|h| h.contains("Escopete")));

    let (counts, docs) = read_file("cc/whirlwind/whirlwind.warc.wet.gz");
    assert_eq!(counts, counts! {"warcinfo": 1, "doc": 1});
    let d = &docs[0];
    assert_eq!(
        (d.url.as_str(), d.dump.as_str()),
        ("https://an.wikipedia.org/wiki/Escopete", "CC-MAIN-2024-22")
    );
    assert_eq!(d.html, None);
    assert!(d.content.starts_with("Escopete - Biquipedia"));
    assert_eq!(d.timestamp, Some(1_715_997_490)); // 2024-05-18T01:58:10Z

    let (counts, _) = read_file("cc/whirlwind/whirlwind.warc.wat.gz");
    assert_eq!(counts, counts! {"warcinfo": 1, "metadata": 1});
}

#[test]
fn commoncrawl_jwarc_without_warcinfo() {
    let (counts, docs) = read_file("cc/jwarc/cc.warc.gz");
    assert_eq!(counts, counts! {"doc": 1});
    assert_eq!(docs[0].url, "http://commoncrawl.org/");
    assert_eq!(docs[0].dump, "");
    assert!(docs[0]
        .html
        .as_deref()
        .is_some_and(|h| h.contains("Common Crawl")));
}

#[test]
fn heritrix_warc_0_17() {
    let (counts, docs) = read_file("other/aut/IAH-20080430204825-00000-blackbook.warc.gz");
    // warcio: 299 responses = 38 dns + 38 robots.txt + 94 HTML 2xx + 41 HTML 3xx/4xx
    // + 88 other types (87 2xx, 1 text/plain 301).
    assert_eq!(
        counts,
        counts! {"warcinfo": 1, "request": 261, "metadata": 261, "not_http": 38, "robots_txt": 38,
        "not_html": 88, "http_status": 41, "doc": 94}
    );
    assert!(docs.iter().all(|d| d.dump == "archive.org-shallow"));
    assert!(docs.iter().all(|d| d
        .timestamp
        .is_some_and(|t| (1_209_588_505..1_209_600_000).contains(&t))));
}

#[test]
fn wget_warcs() {
    let (counts, docs) = read_file("other/dolma/sample-0000.warc.gz");
    assert_eq!(
        counts,
        counts! {"warcinfo": 1, "request": 22, "metadata": 1, "resource": 2, "doc": 22}
    );
    // wget writes `<...>` around the target URI.
    assert!(
        docs.iter()
            .all(|d| d.url.starts_with("http") && !d.url.ends_with('>')),
        "{:?}",
        docs[0].url
    );
    let (counts, _) = read_file("other/dolma/sample-0001.warc.gz");
    assert_eq!(
        counts,
        counts! {"warcinfo": 1, "request": 15, "metadata": 1, "resource": 2, "doc": 15}
    );
}

#[test]
fn warcio_example_with_revisit() {
    let (counts, docs) = read_file("other/warcio/example.warc.gz");
    assert_eq!(
        counts,
        counts! {"warcinfo": 2, "request": 2, "revisit": 1, "doc": 1}
    );
    assert_eq!(docs[0].url, "http://example.com/");
}

/// The decompressed bytes of a shared `.warc.gz`.
fn gunzip(rel: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let file = std::fs::File::open(warc(rel)).expect("test file opens");
    flate2::read::MultiGzDecoder::new(file)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn plain_warc_by_magic_not_extension() {
    let (gz, _) = read_file("other/dolma/sample-0001.warc.gz");
    let (plain, docs) = read_bytes(gunzip("other/dolma/sample-0001.warc.gz"));
    assert_eq!(plain, gz);
    assert_eq!(docs.len(), 15);
    // A plain file named .warc.gz is still read.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plain.warc.gz");
    std::fs::write(&path, gunzip("cc/resiliparse/warcfile.warc.gz")).expect("writes");
    let reader = WarcReader::open(&path, &ReadConfig::default()).expect("opens");
    assert!(!reader.is_gzip());
    assert_eq!(tally(reader).0.get("doc"), Some(&16));
}

#[test]
fn whole_file_gzip_single_member() {
    // One member for the whole file (not CommonCrawl's layout, still valid WARC).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &gunzip("other/warcio/example.warc.gz")).expect("in memory");
    let (counts, _) = read_bytes(gz.finish().expect("in memory"));
    assert_eq!(
        counts,
        counts! {"warcinfo": 2, "request": 2, "revisit": 1, "doc": 1}
    );
}

#[test]
fn dump_and_segment_from_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sub = dir
        .path()
        .join("crawl-data/CC-MAIN-2019-51/segments/1575540482038.36/warc");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let path = sub.join("CC-MAIN-20191206-00000.warc.gz");
    std::fs::copy(warc("cc/jwarc/cc.warc.gz"), &path).expect("copies");
    let (_, docs) = tally(WarcReader::open(&path, &ReadConfig::default()).expect("opens"));
    assert_eq!(
        (docs[0].dump.as_str(), docs[0].segment.as_str()),
        ("CC-MAIN-2019-51", "1575540482038.36")
    );
}

/// A small gzip-per-record WARC of `n` HTML responses (plus warcinfo), and its member offsets.
fn built_warc(n: usize) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut offsets = Vec::new();
    let mut w = WarcWriter::gzip(&mut bytes);
    w.warcinfo("test.warc.gz", 0, &[("isPartOf", "CC-MAIN-2021-04")])
        .expect("in memory");
    for i in 0..n {
        let body = format!(
            "<!doctype html><html><body><p>Page number {i} {}</p></body></html>",
            "text ".repeat(50)
        );
        w.response(
            &format!("http://example.com/{i}"),
            1_600_000_000 + i as i64,
            200,
            &[("Content-Type", "text/html")],
            body.as_bytes(),
        )
        .expect("in memory");
    }
    w.finish().expect("in memory");
    offsets.extend(memchr::memmem::find_iter(&bytes, &[0x1f, 0x8b, 0x08]));
    (bytes, offsets)
}

#[test]
fn writer_round_trip() {
    let (bytes, offsets) = built_warc(20);
    assert_eq!(offsets.len(), 21);
    let (counts, docs) = read_bytes(bytes);
    assert_eq!(counts, counts! {"warcinfo": 1, "doc": 20});
    assert_eq!(docs[7].url, "http://example.com/7");
    assert_eq!(docs[7].timestamp, Some(1_600_000_007));
    assert_eq!(docs[7].dump, "CC-MAIN-2021-04");
    assert!(docs[7]
        .html
        .as_deref()
        .is_some_and(|h| h.contains("Page number 7 ")));
}

#[test]
fn corrupt_middle_member_is_skipped() {
    let (mut bytes, offsets) = built_warc(20);
    // Scramble deflate data inside the 6th response's member.
    let at = offsets[6] + 40;
    for b in &mut bytes[at..at + 30] {
        *b ^= 0x5a;
    }
    let (counts, docs) = read_bytes(bytes);
    assert_eq!(
        counts,
        counts! {"warcinfo": 1, "doc": 19, "corrupt_gzip": 1}
    );
    assert!(!docs.iter().any(|d| d.url == "http://example.com/5"));
    assert!(docs.iter().any(|d| d.url == "http://example.com/6"));
}

#[test]
fn crc_mismatch_is_corrupt() {
    let (mut bytes, offsets) = built_warc(5);
    let trailer = offsets[3] - 8; // CRC32 of the 2nd response's member
    bytes[trailer] ^= 1;
    let (counts, _) = read_bytes(bytes);
    assert_eq!(counts, counts! {"warcinfo": 1, "doc": 4, "corrupt_gzip": 1});
}

#[test]
fn truncated_file() {
    let (bytes, offsets) = built_warc(10);
    // Cut inside the last member's deflate data.
    let cut = offsets[10] + 60;
    let (counts, _) = read_bytes(bytes[..cut].to_vec());
    assert_eq!(counts, counts! {"warcinfo": 1, "doc": 9, "truncated": 1});
    // Cut inside the last gzip header, and at a member boundary (nothing lost).
    let (counts, _) = read_bytes(bytes[..offsets[10] + 5].to_vec());
    assert_eq!(counts, counts! {"warcinfo": 1, "doc": 9, "truncated": 1});
    let (counts, _) = read_bytes(bytes[..offsets[10]].to_vec());
    assert_eq!(counts, counts! {"warcinfo": 1, "doc": 9});
    // Plain WARC cut inside a record's block and inside a header.
    let plain = gunzip("other/warcio/example.warc.gz");
    let (counts, _) = read_bytes(plain[..plain.len() - 100].to_vec());
    assert_eq!(counts.get("truncated"), Some(&1));
    let last = memchr::memmem::rfind(&plain, b"WARC/1.0").expect("has records");
    let (counts, _) = read_bytes(plain[..last + 20].to_vec());
    assert_eq!(
        counts,
        counts! {"warcinfo": 2, "request": 1, "revisit": 1, "doc": 1, "truncated": 1}
    );
}

/// The gzip members of a shared `.warc.gz`, each decompressed (one WARC record each in
/// CommonCrawl's layout).
fn members(rel: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(warc(rel)).expect("test file reads");
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut gz = flate2::bufread::GzDecoder::new(rest);
        let mut record = Vec::new();
        gz.read_to_end(&mut record).expect("valid member");
        rest = gz.into_inner();
        out.push(record);
    }
    out
}

fn gzip_members(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, r).expect("in memory");
        out.extend(gz.finish().expect("in memory"));
    }
    out
}

/// A record's `Content-Length` set to `length`.
fn with_length(record: &[u8], length: u64) -> Vec<u8> {
    let text = String::from_utf8_lossy(record);
    let at = text.find("Content-Length: ").expect("has Content-Length") + "Content-Length: ".len();
    let end = at + text[at..].find("\r\n").expect("line ends");
    [&record[..at], length.to_string().as_bytes(), &record[end..]].concat()
}

/// Issue 11: one too-large `Content-Length` in a real CommonCrawl WARC lost the rest of the
/// file (44 of 50 records, counted as one `truncated`). Reading resumes at the next member.
#[test]
fn too_large_content_length_loses_only_its_record() {
    let rel = "cc/resiliparse/warcfile.warc.gz";
    let records = members(rel);
    assert_eq!(records.len(), 50);
    let (whole, docs) = read_file(rel);
    // Record 5 is a response (an HTML document); record 4 a request.
    for (k, kind) in [(5, "doc"), (4, "request")] {
        let declared = String::from_utf8_lossy(&records[k]).contains(if kind == "doc" {
            "WARC-Type: response"
        } else {
            "WARC-Type: request"
        });
        assert!(declared, "record {k} is a {kind}");
        // Longer than the rest of the file (read to the end before), longer than the next
        // record (swallowed it before), and over max_payload_bytes (skipped unread before).
        for length in [records[k].len() as u64 + 2_000, 200_000, 100 << 20] {
            let mut damaged = records.clone();
            damaged[k] = with_length(&records[k], length);
            let (counts, got) = read_bytes(gzip_members(&damaged));
            let mut expected = whole.clone();
            *expected.get_mut(kind).expect("counted") -= 1;
            expected.insert("bad_length", 1);
            assert_eq!(
                counts, expected,
                "record {k} ({kind}) with Content-Length {length}"
            );
            let lost: Vec<&str> = docs
                .iter()
                .filter(|d| !got.iter().any(|g| g.id == d.id))
                .map(|d| d.url.as_str())
                .collect();
            assert_eq!(lost.len(), usize::from(kind == "doc"), "{lost:?}");
        }
    }
}

#[test]
fn garbage_prefix() {
    let (bytes, _) = built_warc(5);
    let mut damaged = b"this is not gzip \x00\x01\x02 at all".repeat(100);
    damaged.extend_from_slice(&bytes);
    let (counts, _) = read_bytes(damaged);
    assert_eq!(counts, counts! {"warcinfo": 1, "doc": 5, "corrupt_gzip": 1});
    // Plain WARC behind garbage.
    let mut plain = b"garbage line\r\n\r\n".to_vec();
    plain.extend(gunzip("other/warcio/example.warc.gz"));
    let (counts, _) = read_bytes(plain);
    assert_eq!(
        counts,
        counts! {"bad_header": 1, "warcinfo": 2, "request": 2, "revisit": 1, "doc": 1}
    );
}

#[test]
fn bad_headers() {
    let mut bytes = Vec::new();
    let mut w = WarcWriter::gzip(&mut bytes);
    w.response(
        "http://a/1",
        0,
        200,
        &[("Content-Type", "text/html")],
        b"<html>1",
    )
    .expect("in memory");
    w.finish().expect("in memory");
    // A member that is valid gzip holding a header without Content-Length, then one that is
    // not WARC at all.
    for junk in [
        &b"WARC/1.0\r\nWARC-Type: response\r\n\r\nbody"[..],
        b"HTTP/1.1 200 OK\r\n\r\n",
    ] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, junk).expect("in memory");
        bytes.extend(gz.finish().expect("in memory"));
        let mut w = WarcWriter::gzip(&mut bytes);
        w.response(
            "http://a/2",
            0,
            200,
            &[("Content-Type", "text/html")],
            b"<html>2",
        )
        .expect("in memory");
        w.finish().expect("in memory");
    }
    let (counts, docs) = read_bytes(bytes);
    assert_eq!(counts, counts! {"bad_header": 2, "doc": 3});
    assert_eq!(docs.iter().filter(|d| d.url == "http://a/2").count(), 2);
}

#[test]
fn response_reasons() {
    let config = ReadConfig {
        max_payload_bytes: 1000,
    };
    let mut bytes = Vec::new();
    let mut w = WarcWriter::gzip(&mut bytes);
    let html = [("Content-Type", "text/html; charset=utf-8")];
    w.response(
        "http://a/robots.txt",
        0,
        200,
        &[("Content-Type", "text/plain")],
        b"User-agent: *",
    )
    .expect("w");
    w.response(
        "http://a/x.png",
        0,
        200,
        &[("Content-Type", "image/png")],
        b"\x89PNG",
    )
    .expect("w");
    w.response(
        "http://a/x.pdf",
        0,
        200,
        &[("Content-Type", "application/pdf")],
        b"%PDF-1.4",
    )
    .expect("w");
    w.response("http://a/404", 0, 404, &html, b"<html>gone")
        .expect("w");
    w.response("http://a/big", 0, 200, &html, &[b'a'; 2000])
        .expect("w");
    w.response(
        "http://a/br",
        0,
        200,
        &[("Content-Type", "text/html"), ("Content-Encoding", "br")],
        b"\x1b\x03",
    )
    .expect("w");
    w.response(
        "http://a/sniffed",
        0,
        200,
        &[],
        b"<!DOCTYPE html><title>t</title>",
    )
    .expect("w");
    w.response("http://a/notsniffed", 0, 200, &[], b"plain words")
        .expect("w");
    let ok = [
        ("WARC-Target-URI", "http://a/id"),
        ("WARC-Identified-Payload-Type", "text/html"),
        ("Content-Type", "application/http; msgtype=response"),
    ];
    w.record(
        "response",
        0,
        &ok,
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n<p>x",
    )
    .expect("w");
    let no = [
        ("WARC-Target-URI", "http://a/id2"),
        ("WARC-Identified-Payload-Type", "image/jpeg"),
    ];
    w.record(
        "response",
        0,
        &no,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n\xff\xd8",
    )
    .expect("w");
    w.record(
        "response",
        0,
        &[("WARC-Target-URI", "http://a/bad")],
        b"not http",
    )
    .expect("w");
    w.record(
        "response",
        0,
        &[("WARC-Target-URI", "dns:a"), ("Content-Type", "text/dns")],
        b"a. 1 IN A 1.2.3.4",
    )
    .expect("w");
    w.record("made-up", 0, &[], b"").expect("w");
    w.conversion("http://a/wet", 0, "Some text.\n").expect("w");
    w.finish().expect("in memory");
    let (counts, docs) = tally(WarcReader::from_reader(
        Box::new(std::io::Cursor::new(bytes)),
        &config,
    ));
    assert_eq!(
        counts,
        counts! {"robots_txt": 1, "not_html": 4, "http_status": 1, "too_large": 1, "bad_encoding": 1,
        "bad_http": 1, "not_http": 1, "unknown_type": 1, "doc": 3}
    );
    let urls: Vec<&str> = docs.iter().map(|d| d.url.as_str()).collect();
    assert_eq!(urls, ["http://a/sniffed", "http://a/id", "http://a/wet"]);
    assert_eq!(docs[2].content, "Some text.");
}

#[test]
fn content_and_transfer_coding_undone() {
    let page = "<html><body>Grüße aus dem Web</body></html>";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, page.as_bytes()).expect("in memory");
    let gzipped = gz.finish().expect("in memory");
    let mut chunked = format!("{:x}\r\n", 10).into_bytes();
    chunked.extend_from_slice(&gzipped[..10]);
    chunked.extend_from_slice(format!("\r\n{:x}\r\n", gzipped.len() - 10).as_bytes());
    chunked.extend_from_slice(&gzipped[10..]);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut bytes = Vec::new();
    let mut w = WarcWriter::plain(&mut bytes);
    let headers = [
        ("Content-Type", "text/html; charset=UTF-8"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Encoding", "gzip"),
    ];
    w.response("http://a/", 0, 200, &headers, &chunked)
        .expect("w");
    w.finish().expect("in memory");
    let (_, docs) = read_bytes(bytes);
    assert_eq!(docs[0].html.as_deref(), Some(page));
}

#[test]
fn charsets_through_the_reader() {
    let text = "日本語のページです。正しく読めますか。";
    let sjis = encoding_rs::SHIFT_JIS
        .encode(&format!("<html><body>{text}</body></html>"))
        .0
        .into_owned();
    let latin = encoding_rs::WINDOWS_1252
        .encode("<html><body>Été à Noël</body></html>")
        .0
        .into_owned();
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice("<html>Ça va</html>".as_bytes());
    let mut meta = b"<html><head><meta charset=\"shift_jis\"></head><body>".to_vec();
    meta.extend_from_slice(&encoding_rs::SHIFT_JIS.encode(text).0);
    let mut bytes = Vec::new();
    let mut w = WarcWriter::gzip(&mut bytes);
    w.response(
        "http://a.jp/1",
        0,
        200,
        &[("Content-Type", "text/html; charset=Shift_JIS")],
        &sjis,
    )
    .expect("w");
    w.response(
        "http://a.fr/2",
        0,
        200,
        &[("Content-Type", "text/html; charset=iso-8859-1")],
        &latin,
    )
    .expect("w");
    w.response(
        "http://a.fr/3",
        0,
        200,
        &[("Content-Type", "text/html; charset=windows-1252")],
        &bom,
    )
    .expect("w");
    w.response(
        "http://a.jp/4",
        0,
        200,
        &[("Content-Type", "text/html")],
        &meta,
    )
    .expect("w");
    w.response(
        "http://a.jp/5",
        0,
        200,
        &[("Content-Type", "text/html; charset=nonsense")],
        &sjis,
    )
    .expect("w");
    w.response(
        "http://a.fr/6",
        0,
        200,
        &[("Content-Type", "text/html; charset=utf-8")],
        &latin,
    )
    .expect("w");
    w.finish().expect("in memory");
    let (_, docs) = read_bytes(bytes);
    let html: Vec<&str> = docs
        .iter()
        .map(|d| d.html.as_deref().unwrap_or_default())
        .collect();
    assert!(html[0].contains(text));
    assert!(html[1].contains("Été à Noël"));
    assert_eq!(html[2], "<html>Ça va</html>");
    assert!(html[3].contains(text));
    assert!(html[4].contains(text), "unknown label: detected");
    assert!(
        html[5].contains("Été à Noël"),
        "wrong utf-8 label: detected"
    );
}

#[test]
fn oversized_payload_streams_past_without_buffering() {
    let config = ReadConfig {
        max_payload_bytes: 100_000,
    };
    let mut bytes = Vec::new();
    let mut w = WarcWriter::gzip(&mut bytes);
    let big = vec![b'x'; 3 << 20];
    w.response(
        "http://a/big",
        0,
        200,
        &[("Content-Type", "text/html")],
        &big,
    )
    .expect("w");
    w.response(
        "http://a/small",
        0,
        200,
        &[("Content-Type", "text/html")],
        b"<html>",
    )
    .expect("w");
    w.finish().expect("in memory");
    let mut reader = WarcReader::from_reader(Box::new(std::io::Cursor::new(bytes)), &config);
    assert!(matches!(reader.next(), Some(ReadItem::Skip("too_large"))));
    assert!(matches!(reader.next(), Some(ReadItem::Doc(_))));
    assert!(
        reader.block.capacity() < 200_000,
        "block buffer stayed small"
    );
    assert!(reader.next().is_none());
}

/// Issue 12: a 200 MB page streams past as `too_large` (never held: the block stays small)
/// and the record after it is still read.
#[test]
fn page_of_200_mb_is_skipped_without_holding_it() {
    /// A plain WARC made on the fly: a response of 200 MB of HTML, then a small page.
    struct Huge {
        head: std::io::Cursor<Vec<u8>>,
        body_left: u64,
        tail: std::io::Cursor<Vec<u8>>,
    }
    impl Read for Huge {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.head.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if self.body_left > 0 {
                let n = buf.len().min(self.body_left as usize);
                buf[..n].fill(b'x');
                self.body_left -= n as u64;
                return Ok(n);
            }
            self.tail.read(buf)
        }
    }
    let page: u64 = 200 << 20;
    let http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>";
    let head = format!(
        "WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://a/huge\r\n\
         Content-Type: application/http; msgtype=response\r\nContent-Length: {}\r\n\r\n",
        http.len() as u64 + page
    );
    let mut tail = b"\r\n\r\n".to_vec();
    let mut w = WarcWriter::plain(&mut tail);
    w.response(
        "http://a/small",
        0,
        200,
        &[("Content-Type", "text/html")],
        b"<html>",
    )
    .expect("w");
    w.finish().expect("in memory");
    let huge = Huge {
        head: std::io::Cursor::new([head.as_bytes(), &http[..]].concat()),
        body_left: page,
        tail: std::io::Cursor::new(tail),
    };
    let mut reader = WarcReader::from_reader(Box::new(huge), &ReadConfig::default());
    assert!(matches!(reader.next(), Some(ReadItem::Skip("too_large"))));
    assert!(matches!(reader.next(), Some(ReadItem::Doc(d)) if d.url == "http://a/small"));
    assert!(reader.next().is_none());
    assert!(
        reader.block.capacity() < 1 << 20,
        "block buffer stayed small"
    );
}

/// A tiny deterministic generator for the damage test (no extra dependency).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_damage_never_panics_and_keeps_undamaged_records() {
    let original = std::fs::read(warc("other/dolma/sample-0000.warc.gz")).expect("test file");
    let members: Vec<usize> = memchr::memmem::find_iter(&original, &[0x1f, 0x8b, 0x08]).collect();
    let (clean, _) = read_bytes(original.clone());
    let clean_docs = clean["doc"];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let mut bytes = original.clone();
        let damage = 1 + rng.next() as usize % 4;
        for _ in 0..damage {
            let at = rng.next() as usize % bytes.len();
            match rng.next() % 4 {
                0 => bytes[at] ^= 1 << (rng.next() % 8),
                1 => {
                    let end = (at + 64).min(bytes.len());
                    bytes[at..end].fill(0);
                }
                2 => {
                    bytes.truncate(at);
                }
                _ => {
                    let len = (rng.next() % 500) as usize;
                    bytes.drain(at..(at + len).min(bytes.len()));
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        let (counts, _) = read_bytes(bytes.clone());
        let docs = counts.get("doc").copied().unwrap_or(0);
        let damaged: u64 = [
            "corrupt_gzip",
            "truncated",
            "bad_header",
            "bad_http",
            "bad_encoding",
        ]
        .iter()
        .filter_map(|r| counts.get(r))
        .sum();
        assert!(docs <= clean_docs, "round {round}");
        // Each damage site costs at most a few records: at least the untouched responses
        // before the first damage are read.
        let first_damage = original
            .iter()
            .zip(&bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(bytes.len());
        let intact_members = members
            .iter()
            .filter(|&&m| m < first_damage)
            .count()
            .saturating_sub(1);
        let (prefix, _) =
            read_bytes(original[..members.get(intact_members).copied().unwrap_or(0)].to_vec());
        assert!(
            docs >= prefix.get("doc").copied().unwrap_or(0),
            "round {round}: {counts:?}"
        );
        if docs < clean_docs {
            assert!(
                damaged > 0,
                "round {round}: lost documents are counted: {counts:?}"
            );
        }
    }
}

#[test]
fn config_validates() {
    assert!(ReadConfig::default().validate().is_ok());
    assert!(ReadConfig {
        max_payload_bytes: 0
    }
    .validate()
    .is_err());
    let parsed: ReadConfig = toml::from_str("max_payload_bytes = 1024").expect("parses");
    assert_eq!(parsed.max_payload_bytes, 1024);
    assert!(toml::from_str::<ReadConfig>("max_bytes = 1").is_err());
}
