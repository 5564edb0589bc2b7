//! Inputs where the crawl lives: `http://` and `https://` URLs, read as a stream with no local
//! copy. A request that fails is retried with exponential backoff; a connection that drops
//! mid-file is picked up where it broke (`Range: bytes=OFFSET-`). CommonCrawl's
//! `warc.paths.gz` listings (a local file or a URL) expand into their files.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Result};

/// Tries per request, and reconnections in a row without a byte read, before giving up.
const ATTEMPTS: u32 = 6;
/// The first retry waits this long, each next one twice as long (0.2 s ... 6.4 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Whether `path` names a URL rather than a file.
pub fn is_url(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether `path` is a listing of inputs, one a line, as CommonCrawl publishes them.
pub fn is_listing(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".paths.gz")
}

/// An input file or URL, for reading from its start.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    if is_url(path) {
        Ok(Box::new(RemoteFile::open(path)?))
    } else {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Box::new(file))
    }
}

/// The size of an input file or URL (a URL's `Content-Length`).
pub fn size(path: &Path) -> Result<u64> {
    if is_url(path) {
        Ok(RemoteFile::open(path)?.size)
    } else {
        Ok(std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len())
    }
}

/// The entries of a `.paths.gz` listing. A relative entry (CommonCrawl's
/// `crawl-data/CC-MAIN-.../x.warc.gz`) is taken from the listing's server, or from the
/// folder of a local listing.
pub fn listing(path: &Path) -> Result<Vec<PathBuf>> {
    let text = BufReader::new(flate2::read::MultiGzDecoder::new(open(path)?));
    let s = path.to_string_lossy();
    // `https://host/a/b.paths.gz` -> `https://host`.
    let origin = is_url(path).then(|| {
        let host = s.find("://").map_or(0, |i| i + 3);
        s[..s[host..].find('/').map_or(s.len(), |i| host + i)].to_string()
    });
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        out.push(match &origin {
            _ if is_url(Path::new(line)) || line.starts_with('/') => PathBuf::from(line),
            Some(origin) => PathBuf::from(format!("{origin}/{line}")),
            None => path.parent().unwrap_or(Path::new(".")).join(line),
        });
    }
    Ok(out)
}

/// A URL read from start to end over as many connections as it takes.
pub struct RemoteFile {
    url: String,
    agent: ureq::Agent,
    size: u64,
    /// Bytes handed out so far: where a new connection starts.
    offset: u64,
    body: Option<Box<dyn Read + Send>>,
    /// Connections lost in a row with no byte read in between.
    lost: u32,
}

impl RemoteFile {
    /// Asks for the size (`HEAD`); the body is fetched on the first read.
    pub fn open(path: &Path) -> Result<RemoteFile> {
        let url = path.to_string_lossy().into_owned();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(60))
            .build();
        let head = retry(&url, "HEAD", || agent.head(&url).call().map_err(Box::new))?;
        let size = head
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| failure(&url, "no Content-Length: the size must be known to resume"))?;
        Ok(RemoteFile {
            url,
            agent,
            size,
            offset: 0,
            body: None,
            lost: 0,
        })
    }

    fn connect(&mut self) -> std::io::Result<()> {
        let (url, offset) = (&self.url, self.offset);
        let response = retry(url, "GET", || {
            let request = self.agent.get(url);
            match offset {
                0 => request.call(),
                _ => request.set("Range", &format!("bytes={offset}-")).call(),
            }
            .map_err(Box::new)
        })
        .map_err(std::io::Error::other)?;
        if offset > 0 && response.status() != 206 {
            return Err(std::io::Error::other(format!(
                "{url}: the server answered a range request with {}: cannot resume at byte {offset}",
                response.status()
            )));
        }
        self.body = Some(Box::new(response.into_reader()));
        Ok(())
    }

    /// Drops the connection after `why`; an error after [`ATTEMPTS`] in a row.
    fn lose(&mut self, why: &str) -> std::io::Result<()> {
        self.body = None;
        self.lost += 1;
        if self.lost >= ATTEMPTS {
            return Err(std::io::Error::other(format!(
                "{}: connection lost {ATTEMPTS} times at byte {}: {why}",
                self.url, self.offset
            )));
        }
        let wait = FIRST_BACKOFF * 2u32.pow(self.lost - 1);
        tracing::warn!(
            "{}: connection lost at byte {} ({why}); resuming in {wait:?}",
            self.url,
            self.offset
        );
        std::thread::sleep(wait);
        Ok(())
    }
}

impl Read for RemoteFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if buf.is_empty() || self.offset >= self.size {
                return Ok(0);
            }
            if self.body.is_none() {
                self.connect()?;
            }
            let body = self.body.as_mut().expect("connected above");
            let want = buf.len().min((self.size - self.offset) as usize);
            match body.read(&mut buf[..want]) {
                Ok(0) => self.lose("closed before the end")?,
                Ok(n) => {
                    self.offset += n as u64;
                    self.lost = 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => self.lose(&e.to_string())?,
            }
        }
    }
}

/// Runs `request` until it answers, [`ATTEMPTS`] times at most, backing off exponentially; a
/// client error (4xx, other than 408 and 429) is final at once.
fn retry(
    url: &str,
    what: &str,
    mut request: impl FnMut() -> std::result::Result<ureq::Response, Box<ureq::Error>>,
) -> Result<ureq::Response> {
    let mut wait = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let e = match request() {
            Ok(response) => return Ok(response),
            Err(e) => e,
        };
        match *e {
            ureq::Error::Status(code, _) if code < 500 && code != 408 && code != 429 => {
                return Err(failure(url, &format!("{what}: HTTP {code}")))
            }
            _ if attempt < ATTEMPTS => {
                tracing::warn!("{url}: {what}: {e}; retry {attempt} in {wait:?}");
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
            _ => {
                return Err(failure(
                    url,
                    &format!("{what} failed {ATTEMPTS} times: {e}"),
                ))
            }
        }
    }
}

fn failure(url: &str, message: &str) -> Error {
    Error::Input {
        path: url.into(),
        message: message.into(),
    }
}
