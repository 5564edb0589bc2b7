//! `http://` and `https://` objects through ureq: `HEAD` for the size, `GET` with `Range` for
//! the bytes.

use std::io::Read;
use std::ops::Range;
use std::time::Duration;

use super::{backoff, failure, Object, ATTEMPTS};
use crate::Result;

/// A URL whose server told its size.
pub(super) struct HttpObject {
    url: String,
    agent: ureq::Agent,
    size: u64,
}

impl HttpObject {
    /// Asks for the size (`HEAD`).
    pub(super) fn open(url: &str) -> Result<HttpObject> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(60))
            .build();
        let head = retry(url, "HEAD", || agent.head(url).call().map_err(Box::new))?;
        let size = head
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| failure(url, "no Content-Length: the size must be known to resume"))?;
        Ok(HttpObject {
            url: url.into(),
            agent,
            size,
        })
    }
}

impl Object for HttpObject {
    fn url(&self) -> &str {
        &self.url
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn get(&self, range: Range<u64>) -> std::io::Result<Box<dyn Read + Send>> {
        let url = &self.url;
        // The whole file is a plain GET, so a server that ignores ranges still serves it.
        let whole = range == (0..self.size);
        let response = retry(url, "GET", || {
            let request = self.agent.get(url);
            match whole {
                true => request.call(),
                false => request
                    .set("Range", &format!("bytes={}-{}", range.start, range.end - 1))
                    .call(),
            }
            .map_err(Box::new)
        })
        .map_err(std::io::Error::other)?;
        // A 200 to a range from byte 0 is the whole file, of which the caller reads its range.
        if !whole && response.status() != 206 && !(range.start == 0 && response.status() == 200) {
            return Err(std::io::Error::other(format!(
                "{url}: the server answered a range request with {}: cannot read from byte {}",
                response.status(),
                range.start
            )));
        }
        Ok(Box::new(response.into_reader()))
    }
}

/// Runs `request` until it answers, [`ATTEMPTS`] times at most, backing off exponentially; a
/// client error (4xx, other than 408 and 429) is final at once.
fn retry(
    url: &str,
    what: &str,
    mut request: impl FnMut() -> std::result::Result<ureq::Response, Box<ureq::Error>>,
) -> Result<ureq::Response> {
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
                let wait = backoff(attempt);
                tracing::warn!("{url}: {what}: {e}; retry {attempt} in {wait:?}");
                std::thread::sleep(wait);
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
