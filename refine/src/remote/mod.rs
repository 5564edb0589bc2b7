//! Inputs where the crawl lives: `http://` and `https://` URLs and `s3://bucket/key` objects,
//! read as streams with no local copy, beside local files.
//!
//! A remote input is an [`Object`]: a size and ranged reads, one request each ([`http`],
//! [`s3`]). Everything else is written once, here, for both: a request that fails is retried
//! with exponential backoff; a stream that drops mid-file is picked up where it broke by a
//! request for the rest ([`RangeReader`]); Parquet's random access is served by ranged reads
//! of aligned blocks ([`RandomAccess`]). CommonCrawl's `warc.paths.gz` listings (a local file
//! or a URL) and `s3://bucket/prefix/` folders expand into their files.

mod http;
mod random_access;
mod s3;

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use random_access::RandomAccess;

use crate::{Error, Result};

/// Tries per request, and reconnections in a row without a byte read, before giving up.
const ATTEMPTS: u32 = 6;
/// The first retry waits this long, each next one twice as long (0.2 s ... 6.4 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Whether `path` names a remote object (`http://`, `https://`, `s3://`) rather than a file.
pub fn is_url(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("s3://")
}

/// Whether `path` is a listing of inputs, one a line, as CommonCrawl publishes them.
pub fn is_listing(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".paths.gz")
}

/// Whether `path` names a folder of a bucket, `s3://bucket/prefix/` or `s3://bucket`: its
/// objects are the inputs.
pub fn is_prefix(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s.strip_prefix("s3://")
        .is_some_and(|rest| rest.ends_with('/') || !rest.contains('/'))
}

/// The objects under an `s3://bucket/prefix/` ([`is_prefix`]), sorted, as `s3://` URLs.
pub fn list_prefix(path: &Path) -> Result<Vec<PathBuf>> {
    s3::list(&path.to_string_lossy())
}

/// An input file or URL, for reading from its start.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    open_at(path, 0)
}

/// An input file or URL, for reading from byte `offset` (a download picking up where an
/// earlier one stopped).
pub fn open_at(path: &Path, offset: u64) -> Result<Box<dyn Read + Send>> {
    if is_url(path) {
        let object = object(path)?;
        let end = object.size();
        Ok(Box::new(RangeReader::new(object, offset.min(end)..end)))
    } else {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io(path, e))?;
        }
        Ok(Box::new(file))
    }
}

/// The first `n` bytes of an input file or URL (fewer if it is shorter): for a URL one
/// request for those bytes only.
pub fn head(path: &Path, n: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let read = match is_url(path) {
        true => {
            let object = object(path)?;
            let end = n.min(object.size());
            RangeReader::new(object, 0..end).read_to_end(&mut out)
        }
        false => open(path)?.take(n).read_to_end(&mut out),
    };
    read.map_err(|e| Error::io(path, e))?;
    Ok(out)
}

/// The size of an input file or URL (a URL's `Content-Length`, an object's size).
pub fn size(path: &Path) -> Result<u64> {
    if is_url(path) {
        Ok(object(path)?.size())
    } else {
        Ok(std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len())
    }
}

/// The entries of a `.paths.gz` listing. A relative entry (CommonCrawl's
/// `crawl-data/CC-MAIN-.../x.warc.gz`) is taken from the listing's server or bucket, or from
/// the folder of a local listing.
pub fn listing(path: &Path) -> Result<Vec<PathBuf>> {
    let s = path.to_string_lossy();
    // `https://host/a/b.paths.gz` -> `https://host`, `s3://bucket/a/b.paths.gz` -> `s3://bucket`.
    let origin = is_url(path).then(|| {
        let host = s.find("://").map_or(0, |i| i + 3);
        s[..s[host..].find('/').map_or(s.len(), |i| host + i)].to_string()
    });
    Ok(listing_lines(path)?
        .into_iter()
        .map(|line| match &origin {
            _ if is_url(Path::new(&line)) || line.starts_with('/') => PathBuf::from(line),
            Some(origin) => PathBuf::from(format!("{origin}/{line}")),
            None => path.parent().unwrap_or(Path::new(".")).join(line),
        })
        .collect())
}

/// The lines of a `.paths.gz` listing as written (blank lines left out).
pub fn listing_lines(path: &Path) -> Result<Vec<String>> {
    let text = BufReader::new(flate2::read::MultiGzDecoder::new(open(path)?));
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let line = line.trim();
        if !line.is_empty() {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// A remote object: its size, and its bytes by ranges.
trait Object: Send + Sync {
    /// The URL, for messages.
    fn url(&self) -> &str;
    /// Its size in bytes, known when it was opened.
    fn size(&self) -> u64;
    /// Bytes `range` (not empty, within the size) as one request's stream; the request is
    /// retried until it answers, the stream is not.
    fn get(&self, range: Range<u64>) -> std::io::Result<Box<dyn Read + Send>>;
}

/// The object `path` names (asking for its size).
fn object(path: &Path) -> Result<Arc<dyn Object>> {
    let url = path.to_string_lossy();
    Ok(match url.starts_with("s3://") {
        true => Arc::new(s3::S3Object::open(&url)?),
        false => Arc::new(http::HttpObject::open(&url)?),
    })
}

/// Bytes `range` of an object, read over as many requests as it takes: a stream that ends
/// early or fails is replaced by a request for the bytes still missing, after a backoff.
struct RangeReader {
    object: Arc<dyn Object>,
    /// The next byte to hand out: where a new request starts.
    offset: u64,
    end: u64,
    body: Option<Box<dyn Read + Send>>,
    /// Streams lost in a row with no byte read in between.
    lost: u32,
}

impl RangeReader {
    fn new(object: Arc<dyn Object>, range: Range<u64>) -> RangeReader {
        RangeReader {
            object,
            offset: range.start,
            end: range.end,
            body: None,
            lost: 0,
        }
    }

    /// Drops the stream after `why`; an error after [`ATTEMPTS`] in a row.
    fn lose(&mut self, why: &str) -> std::io::Result<()> {
        self.body = None;
        self.lost += 1;
        if self.lost >= ATTEMPTS {
            return Err(std::io::Error::other(format!(
                "{}: connection lost {ATTEMPTS} times at byte {}: {why}",
                self.object.url(),
                self.offset
            )));
        }
        let wait = backoff(self.lost);
        tracing::warn!(
            "{}: connection lost at byte {} ({why}); resuming in {wait:?}",
            self.object.url(),
            self.offset
        );
        std::thread::sleep(wait);
        Ok(())
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if buf.is_empty() || self.offset >= self.end {
                return Ok(0);
            }
            if self.body.is_none() {
                self.body = Some(self.object.get(self.offset..self.end)?);
            }
            let body = self.body.as_mut().expect("connected above");
            let want = buf.len().min((self.end - self.offset) as usize);
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

/// Waits before retry `attempt` (1, 2, ...): [`FIRST_BACKOFF`] doubled each time.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF * 2u32.pow(attempt - 1)
}

fn failure(url: &str, message: &str) -> Error {
    Error::Input {
        path: url.into(),
        message: message.into(),
    }
}
