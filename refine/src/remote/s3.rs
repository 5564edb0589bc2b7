//! `s3://bucket/key` objects through object_store's S3 client, configured from the standard
//! AWS environment as the AWS tools are: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (another S3 server: path-style
//! requests), `AWS_ALLOW_HTTP` (a server without TLS), `AWS_SKIP_SIGNATURE` (public buckets),
//! and the rest of object_store's `AWS_*` keys. A failed request is retried by object_store,
//! with our backoff; a body stream that drops is resumed by [`super::RangeReader`].
//!
//! object_store is async: its requests run on one small tokio runtime that every reader
//! shares, and a reader waits for each chunk of a body in turn, so the callers stay plain
//! `Read`ers on rayon threads.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, GetRange, ObjectMeta, ObjectStore, RetryConfig,
};

use super::{failure, Object, ATTEMPTS, FIRST_BACKOFF};
use crate::Result;

/// A request taking longer is cut (and its body resumed from where it stopped): the bound on
/// a stalled connection. `AWS_TIMEOUT` overrides it.
const REQUEST_TIMEOUT: &str = "5 minutes";

/// An object whose size the server told.
pub(super) struct S3Object {
    url: String,
    store: Arc<AmazonS3>,
    key: Key,
    size: u64,
}

impl S3Object {
    /// Asks for the size (`HEAD`).
    pub(super) fn open(url: &str) -> Result<S3Object> {
        let (bucket, key) = split(url)?;
        let key = Key::parse(key).map_err(|e| failure(url, &format!("not an object key: {e}")))?;
        let store = store(url, bucket)?;
        let meta = runtime()
            .block_on(store.head(&key))
            .map_err(|e| failure(url, &format!("HEAD: {e}")))?;
        Ok(S3Object {
            url: url.into(),
            store,
            key,
            size: meta.size,
        })
    }
}

impl Object for S3Object {
    fn url(&self) -> &str {
        &self.url
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn get(&self, range: Range<u64>) -> std::io::Result<Box<dyn Read + Send>> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let result = runtime()
            .block_on(self.store.get_opts(&self.key, options))
            .map_err(|e| std::io::Error::other(failure(&self.url, &format!("GET: {e}"))))?;
        Ok(Box::new(Body {
            stream: result.into_stream(),
            chunk: Bytes::new(),
        }))
    }
}

/// The objects under `s3://bucket/prefix/` (every object of `s3://bucket`), sorted.
pub(super) fn list(url: &str) -> Result<Vec<PathBuf>> {
    let (bucket, prefix) = split(url)?;
    let prefix = prefix.trim_end_matches('/');
    let prefix = match prefix.is_empty() {
        true => None,
        false => {
            Some(Key::parse(prefix).map_err(|e| failure(url, &format!("not a key prefix: {e}")))?)
        }
    };
    let store = store(url, bucket)?;
    let metas: Vec<ObjectMeta> = runtime()
        .block_on(store.list(prefix.as_ref()).try_collect())
        .map_err(|e| failure(url, &format!("LIST: {e}")))?;
    let mut out: Vec<PathBuf> = metas
        .iter()
        .map(|m| PathBuf::from(format!("s3://{bucket}/{}", m.location)))
        .collect();
    out.sort();
    Ok(out)
}

/// `s3://bucket/key` -> (`bucket`, `key`).
fn split(url: &str) -> Result<(&str, &str)> {
    let rest = url.strip_prefix("s3://").unwrap_or(url);
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(failure(url, "no bucket: write s3://BUCKET/KEY"));
    }
    Ok((bucket, key))
}

/// The client of `bucket`, made once (its connections are reused by every reader).
fn store(url: &str, bucket: &str) -> Result<Arc<AmazonS3>> {
    static STORES: OnceLock<Mutex<BTreeMap<String, Arc<AmazonS3>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .expect("no thread panics holding the store map");
    if let Some(store) = stores.get(bucket) {
        return Ok(store.clone());
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: FIRST_BACKOFF,
                max_backoff: FIRST_BACKOFF * 2u32.pow(ATTEMPTS - 2),
                base: 2.0,
            },
            max_retries: ATTEMPTS as usize - 1,
            retry_timeout: Duration::from_secs(180),
        });
    if std::env::var_os("AWS_TIMEOUT").is_none() {
        builder = builder.with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            REQUEST_TIMEOUT,
        );
    }
    let store = Arc::new(
        builder
            .build()
            .map_err(|e| failure(url, &format!("S3 client: {e}")))?,
    );
    stores.insert(bucket.into(), store.clone());
    Ok(store)
}

/// The runtime object_store's requests run on: two threads, started on first use.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("falconry-s3")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

/// A GET's body as a `Read`: each chunk is awaited on the runtime as it is needed.
struct Body {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    /// What is left of the last chunk.
    chunk: Bytes,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match runtime().block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}
