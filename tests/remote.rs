//! `--input` URLs and `warc.paths.gz` listings (issue 12), against a real HTTP server on
//! 127.0.0.1 that refuses its first request (503) and drops every connection after 256 KiB:
//! reads resume by HTTP Range, and refine writes the bytes it writes from the local files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use falconry_refine::inputs::InputId;

use crate::util::{data_dir, TestCommand};

/// Bytes of a body sent before the server hangs up.
const DROP_AFTER: usize = 256 << 10;

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

/// One request per connection: HEAD, GET with or without `Range: bytes=N-`; the body is cut
/// after [`DROP_AFTER`] bytes; `refuse` answers 503.
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
            start = Some(v.trim().trim_end_matches('-').parse::<usize>().unwrap());
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
    let from = start.unwrap_or(0);
    let body = &data[from..];
    let header = match start {
        Some(s) => head(
            "206 Partial Content",
            body.len(),
            &format!(
                "Content-Range: bytes {s}-{}/{}\r\n",
                data.len() - 1,
                data.len()
            ),
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
