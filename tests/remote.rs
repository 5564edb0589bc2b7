//! `--input` URLs and `warc.paths.gz` listings (issue 12), against a real HTTP server on
//! 127.0.0.1 that refuses its first request (503) and drops every connection after 256 KiB:
//! reads resume by HTTP Range, and refine writes the bytes it writes from the local files,
//! for WARC, JSONL (streamed) and Parquet (ranged reads) inputs alike.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use falconry_refine::inputs::InputId;

use crate::util::{data_dir, TestCommand};

/// Bytes of a body sent before the server hangs up.
pub const DROP_AFTER: usize = 256 << 10;

/// Serves the files under `root` (and `listing` at `/warc.paths.gz`) until the test ends.
struct Server {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start(root: PathBuf, listing: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let (root, listing) = (root.clone(), listing.clone());
                std::thread::spawn(move || answer(stream, &root, &listing, n == 0));
            }
        });
        Server { port, requests }
    }

    fn url(&self, rel: &str) -> String {
        format!("http://127.0.0.1:{}/{rel}", self.port)
    }
}

/// One request per connection: HEAD, GET with or without `Range: bytes=N-` or `bytes=N-M`;
/// the body is cut after [`DROP_AFTER`] bytes; `refuse` answers 503.
fn answer(mut stream: TcpStream, root: &Path, listing: &[u8], refuse: bool) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let mut start = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            let (from, to) = v.trim().split_once('-').unwrap();
            let to = (!to.is_empty()).then(|| to.parse::<usize>().unwrap());
            start = Some((from.parse::<usize>().unwrap(), to));
        }
    }
    let mut words = first.split_whitespace();
    let (method, path) = (words.next().unwrap(), words.next().unwrap());
    let data = match path {
        "/warc.paths.gz" => Some(listing.to_vec()),
        _ => std::fs::read(root.join(path.trim_start_matches('/'))).ok(),
    };
    let head = |status: &str, len: usize, extra: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
    };
    let Some(data) = data.filter(|_| !refuse) else {
        let status = if refuse { "503 Busy" } else { "404 Not Found" };
        let _ = stream.write_all(head(status, 0, "").as_bytes());
        return;
    };
    if method == "HEAD" {
        let _ = stream.write_all(head("200 OK", data.len(), "").as_bytes());
        return;
    }
    let (from, last) = start.unwrap_or((0, None));
    let last = last.unwrap_or(data.len() - 1).min(data.len() - 1);
    let body = &data[from..=last];
    let header = match start {
        Some(_) => head(
            "206 Partial Content",
            body.len(),
            &format!("Content-Range: bytes {from}-{last}/{}\r\n", data.len()),
        ),
        None => head("200 OK", body.len(), ""),
    };
    let _ = stream.write_all(header.as_bytes());
    let _ = stream.write_all(&body[..body.len().min(DROP_AFTER)]);
}

#[test]
fn urls_and_listings_stream_through_dropped_connections_to_the_local_bytes() {
    let root = std::fs::canonicalize(data_dir()).unwrap();
    let local = falconry_refine::run::expand_inputs(&[root.join("warc")]).unwrap();
    let rel: Vec<String> = local
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // CommonCrawl's form: gzip, one path a line, relative to the server.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(rel.join("\n").as_bytes()).unwrap();
    let server = Server::start(root.clone(), gz.finish().unwrap());

    // The largest file, read through the client: the same bytes over several connections.
    let (big, big_rel) = local
        .iter()
        .zip(&rel)
        .max_by_key(|(p, _)| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let want = std::fs::read(big).unwrap();
    assert!(want.len() > 2 * DROP_AFTER, "{} bytes", want.len());
    let before = server.requests.load(Ordering::SeqCst);
    let mut got = Vec::new();
    falconry_refine::remote::open(Path::new(&server.url(big_rel)))
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(
        got == want,
        "{} bytes read, {} in the file",
        got.len(),
        want.len()
    );
    let connections = server.requests.load(Ordering::SeqCst) - before;
    assert!(
        connections > want.len() / DROP_AFTER,
        "{connections} requests"
    );

    // refine from the listing writes the parts refine writes from the local files.
    let t = TestCommand::new();
    let (from_urls, from_files) = (t.path("urls"), t.path("files"));
    let listing = server.url("warc.paths.gz");
    let folder = root.join("warc").to_string_lossy().into_owned();
    for (input, out) in [(&listing, &from_urls), (&folder, &from_files)] {
        t.assert_exit_code(
            &[
                "-q",
                "refine",
                "--input",
                input,
                "--output",
                out.to_str().unwrap(),
            ],
            0,
        );
    }
    assert_eq!(t.stats("urls"), t.stats("files"));
    for (file, rel) in local.iter().zip(&rel) {
        let url = server.url(rel);
        let part = |dir: &Path, input: &Path| {
            let key = InputId::stat(input).unwrap().key();
            std::fs::read(dir.join(format!("part-{key}.parquet"))).unwrap()
        };
        assert!(
            part(&from_urls, Path::new(&url)) == part(&from_files, file),
            "{url} and {} differ",
            file.display()
        );
    }

    // JSONL (streamed) and Parquet (ranged reads of blocks, over cut connections) URLs.
    let text = text_inputs(&from_files, &t.path("text"));
    let text_server = Server::start(t.path("text"), Vec::new());
    let text_arg = t.path("text").to_string_lossy().into_owned();
    let mut urls = vec!["-q", "refine", "--output"];
    let text_urls = t.path("text-urls").to_string_lossy().into_owned();
    urls.push(&text_urls);
    let names: Vec<String> = text
        .iter()
        .map(|f| text_server.url(&f.file_name().unwrap().to_string_lossy()))
        .collect();
    for url in &names {
        urls.extend(["--input", url]);
    }
    t.assert_exit_code(&urls, 0);
    let text_files = t.path("text-files").to_string_lossy().into_owned();
    t.assert_exit_code(
        &[
            "-q",
            "refine",
            "--input",
            &text_arg,
            "--output",
            &text_files,
        ],
        0,
    );
    assert_eq!(t.stats("text-urls"), t.stats("text-files"));
    for (file, url) in text.iter().zip(&names) {
        let part = |dir: &str, input: &Path| {
            let key = InputId::stat(input).unwrap().key();
            std::fs::read(t.path(dir).join(format!("part-{key}.parquet"))).unwrap()
        };
        assert!(
            part("text-urls", Path::new(url)) == part("text-files", file),
            "{url}"
        );
    }

    // A URL that is not there is an error that names it, after no retries (404 is final).
    let missing = server.url("warc/none.warc.gz");
    let out = t.assert_exit_code(
        &[
            "refine",
            "--input",
            &missing,
            "--output",
            t.path("none").to_str().unwrap(),
        ],
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&missing) && err.contains("HTTP 404"), "{err}");
}

/// Text inputs made from the documents of the refine folder `parts`, written to `dir`:
/// `refined.jsonl.gz` (each once) and `refined.parquet` (repeated, under other ids, to
/// about 5 MB of text in row groups of 16 rows, so that it spans several of the 1 MiB blocks
/// a remote Parquet file is read by). Returns their paths.
pub fn text_inputs(parts: &Path, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    names.sort();
    let mut docs = Vec::new();
    for name in &names {
        for doc in falconry_refine::dataset::read_parquet(name).unwrap() {
            docs.push(doc.unwrap());
        }
    }
    assert!(!docs.is_empty());
    let jsonl = dir.join("refined.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for doc in &docs {
        let line = serde_json::json!({"id": doc.id, "url": doc.url, "text": doc.content});
        writeln!(gz, "{line}").unwrap();
    }
    std::fs::write(&jsonl, gz.finish().unwrap()).unwrap();
    let parquet = dir.join("refined.parquet");
    let config = falconry_refine::OutputConfig {
        row_group_rows: 16,
        ..Default::default()
    };
    let mut writer = falconry_refine::dataset::ShardWriter::create(&parquet, &config).unwrap();
    let text: usize = docs.iter().map(|d| d.content.len()).sum();
    for copy in 0..(5_000_000 / text + 1) {
        for doc in &docs {
            let mut doc = doc.clone();
            doc.id = format!("{}-{copy}", doc.id);
            writer.write(doc).unwrap();
        }
    }
    writer.finish().unwrap();
    let size = std::fs::metadata(&parquet).unwrap().len();
    assert!(size > 2 << 20, "{size} bytes of Parquet");
    vec![jsonl, parquet]
}

#[test]
fn fetch_cc_downloads_whole_segments_resumably() {
    let root = std::fs::canonicalize(data_dir()).unwrap();
    let local = falconry_refine::run::expand_inputs(&[root.join("warc")]).unwrap();
    let t = TestCommand::new();
    // A fake crawl as CommonCrawl lays one out: three segments, a listing in segment order.
    let crawl = "CC-MAIN-2024-10";
    let served = t.path("served");
    let mut entries = Vec::new();
    for (i, file) in local.iter().enumerate() {
        let segment =
            ["1700000000000.11", "1700000000000.22", "1700000000000.33"][i * 3 / local.len()];
        let rel = format!(
            "crawl-data/{crawl}/segments/{segment}/warc/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        let dest = served.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(file, &dest).unwrap();
        entries.push((rel, file.clone(), segment));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let lines: Vec<&str> = entries.iter().map(|(rel, _, _)| rel.as_str()).collect();
    gz.write_all(lines.join("\n").as_bytes()).unwrap();
    let listing = served.join(format!("crawl-data/{crawl}/warc.paths.gz"));
    std::fs::write(&listing, gz.finish().unwrap()).unwrap();
    let server = Server::start(served.clone(), Vec::new());
    let base = server.url("");
    let out = t.path("out").to_string_lossy().into_owned();
    let fetch = |extra: &[&str]| {
        let mut args = vec!["-q", "fetch-cc", "--crawl", crawl, "--segments", "2"];
        args.extend(["--output", &out, "--base-url", &base]);
        args.extend(extra);
        t.assert_exit_code(&args, 0);
    };

    fetch(&[]);
    let wanted: Vec<_> = entries
        .iter()
        .filter(|(_, _, s)| !s.ends_with("33"))
        .collect();
    assert!(wanted.len() >= 2 && wanted.len() < entries.len());
    for (rel, file, _) in &entries {
        let got = std::fs::read(t.path("out").join(rel)).ok();
        match wanted.iter().any(|(r, _, _)| r == rel) {
            true => assert!(got == Some(std::fs::read(file).unwrap()), "{rel}"),
            false => assert!(got.is_none(), "{rel} is of the third segment"),
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path("out/_manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["segments"],
        serde_json::json!(["1700000000000.11", "1700000000000.22"])
    );
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), wanted.len());
    for (f, (rel, file, _)) in files.iter().zip(&wanted) {
        assert_eq!(f["path"], rel.as_str());
        assert_eq!(f["size"], std::fs::metadata(file).unwrap().len());
        assert_eq!(f["url"], format!("{base}{rel}"));
    }

    // Half a file left as NAME.tmp (a download cut off): the re-run finishes it from there;
    // the complete ones are not fetched again.
    let (big_rel, big, _) = wanted
        .iter()
        .max_by_key(|(_, f, _)| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let bytes = std::fs::read(big).unwrap();
    let dest = t.path("out").join(big_rel);
    std::fs::remove_file(&dest).unwrap();
    let tmp = PathBuf::from(format!("{}.tmp", dest.display()));
    std::fs::write(&tmp, &bytes[..bytes.len() / 2]).unwrap();
    let before = server.requests.load(Ordering::SeqCst);
    fetch(&[]);
    assert!(std::fs::read(&dest).unwrap() == bytes);
    assert!(!tmp.exists());
    // The listing (HEAD, GET), a HEAD per file, and for the cut one a HEAD to open it and
    // GETs for its second half only.
    let requests = server.requests.load(Ordering::SeqCst) - before;
    let halves = (bytes.len() - bytes.len() / 2).div_ceil(DROP_AFTER);
    assert_eq!(requests, 2 + wanted.len() + 1 + halves);

    // One file per segment; a malformed crawl name is a usage error.
    let one = t.path("one").to_string_lossy().into_owned();
    let args = [
        "-q",
        "fetch-cc",
        "--crawl",
        crawl,
        "--segments",
        "3",
        "--files-per-segment",
        "1",
    ];
    t.assert_exit_code(
        &[&args[..], &["--output", &one, "--base-url", &base]].concat(),
        0,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path("one/_manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["files"].as_array().unwrap().len(), 3);
    t.assert_exit_code(
        &[
            "fetch-cc",
            "--crawl",
            "CC-MAIN-24",
            "--segments",
            "1",
            "--output",
            &one,
        ],
        2,
    );
}
