//! The `url_filter` stage: RefinedWeb's URL filtering, run on the WARC record before extraction
//! (Penedo et al. 2023, §3.1 "URL filtering" and App. G.1).
//!
//! Rules, checked in this order (DCLM's `refinedweb.yaml` order); each is a config key and the
//! drop reason it gives:
//!
//! | reason | paper | rule |
//! |---|---|---|
//! | `blocklist_domains` | G.1.1 | the host, or any parent domain of it, is on the 4.6M-domain blocklist |
//! | `blocklist_urls` | G.1.1 | the URL, or a `/`-bounded prefix of it, is on the URL blocklist |
//! | `curated_sources` | G.1.3 | the host is (a subdomain of) a source kept for curated corpora |
//! | `strict_words` | G.1.2 | a strict subword occurs anywhere in the URL (letters and digits only) |
//! | `hard_words` | G.1.2 | a hard word is one of the URL's words |
//! | `soft_words` | G.1.2 | at least `soft_words_min` (2) distinct soft words are URL words |
//!
//! The lists are the ones datatrove 0.10.1 ships (Apache-2.0) and are *not* part of this
//! repository: `datatrove/assets/url_filterblacklistsv0_3_0.tar.gz` (members `domains`, 4.56M
//! lines, and `urls`), `banned_subwords.txt` (strict), `banned_words.txt` (hard) and
//! `soft_banned_words.txt` (soft). Get them with `pip download --no-deps datatrove==0.10.1` and
//! unzip the wheel; point `blocklist_domains` and `blocklist_urls` at the `.tar.gz` itself (the
//! member is picked by name) or at extracted files, plain or `.gz`. With no list configured the
//! stage applies `curated_sources` only, which is our own config (DCLM's list, below), and says
//! so in a warning at start.
//!
//! Where we differ from datatrove's `URLFilter`, and why:
//! - Domains match on label boundaries at every level (`a.b.example.com` is checked as itself,
//!   `b.example.com` and `example.com`), not only the public-suffix "registered domain" and the
//!   full host: the paper bans a domain with its subdomains, and this needs no suffix-list download.
//!   So the list's public-suffix entries act as UT1 means them to: `xxx`, `porn`, `adult`, `sex`
//!   ban those top-level domains and `sex.pl`, `sex.hu`, `sexsyte.nom.br` the sites below them
//!   (datatrove's registered-domain test never matches these 7 of the 4.56M entries).
//! - URLs are compared without scheme, `www.` or trailing `/`, as the UT1 `urls` list is written
//!   (datatrove compares the raw URL, scheme included, which the list can never match), and a
//!   listed URL also bans the pages below it (squidGuard's `urllist` semantics).
//! - URL words are lowercased before the hard/soft look-up (datatrove lowercases only the lists;
//!   DCLM matches case-insensitively).
//! - `curated_sources` is DCLM's exclusion list for RefinedWeb (App. G.1.3 table), matched as a
//!   domain with its subdomains (DCLM matches the exact host only, so `en.wikipedia.org` slipped).
//!
//! The domain list is held as one sorted `Vec<u64>` of xxh3-64 hashes (8 bytes per domain:
//! 36 MB for the full list) searched by bisection; a false match needs a 64-bit collision, about
//! 2.5e-13 per look-up with 4.56M domains.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aho_corasick::AhoCorasick;
use flate2::read::MultiGzDecoder;
use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::{Document, Error, Result, Stage, Verdict};

/// The `url_filter` stage's settings. Paths are relative to the current directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlFilterConfig {
    /// Whether the stage runs.
    pub enabled: bool,
    /// Domain blocklist (G.1.1): one domain per line, plain, `.gz`, or a `.tar.gz` holding a
    /// member named `domains` (datatrove's `url_filterblacklistsv0_3_0.tar.gz`). Unset: no check.
    pub blocklist_domains: Option<PathBuf>,
    /// URL blocklist (G.1.1): one `host/path` per line, plain, `.gz`, or a `.tar.gz` holding a
    /// member named `urls`. Unset: no check.
    pub blocklist_urls: Option<PathBuf>,
    /// Sources of curated corpora, excluded so RefinedWeb can be mixed with them (G.1.3); each
    /// domain bans its subdomains too. Default: the 16 domains of DCLM's `refinedweb.yaml`.
    pub curated_sources: Vec<String>,
    /// Strict subwords (G.1.2), matched anywhere in the URL reduced to its letters and digits
    /// (datatrove's `banned_subwords.txt`). Unset: no check.
    pub strict_words: Option<PathBuf>,
    /// Hard words (G.1.2): one is enough to drop (datatrove's `banned_words.txt`). Unset: no check.
    pub hard_words: Option<PathBuf>,
    /// Soft words (G.1.2): `soft_words_min` distinct ones drop (datatrove's
    /// `soft_banned_words.txt`). Unset: no check.
    pub soft_words: Option<PathBuf>,
    /// How many distinct soft words a URL may hold before it is dropped: 2 in datatrove and DCLM.
    pub soft_words_min: usize,
}

/// DCLM's `refinedweb.yaml` list of curated-corpus sources excluded from RefinedWeb (App. G.1.3).
pub const CURATED_SOURCES: [&str; 16] = [
    "arxiv.org",
    "askubuntu.com",
    "stackoverflow.com",
    "stackapps.com",
    "stackexchange.com",
    "mathoverflow.net",
    "exporter.nih.gov",
    "ncbi.nlm.nih.gov",
    "github.com",
    "irclogs.ubuntu.com",
    "news.ycombinator.com",
    "courtlistener.com",
    "reddit.com",
    "statmt.org",
    "uspto.gov",
    "wikipedia.org",
];

impl Default for UrlFilterConfig {
    fn default() -> Self {
        UrlFilterConfig {
            enabled: true,
            blocklist_domains: None,
            blocklist_urls: None,
            curated_sources: CURATED_SOURCES.iter().map(|s| s.to_string()).collect(),
            strict_words: None,
            hard_words: None,
            soft_words: None,
            soft_words_min: 2,
        }
    }
}

impl UrlFilterConfig {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.soft_words_min == 0 {
            return Err("url_filter.soft_words_min must be at least 1".into());
        }
        if let Some(bad) = self
            .curated_sources
            .iter()
            .find(|d| d.is_empty() || d.contains('/'))
        {
            return Err(format!(
                "url_filter.curated_sources: `{bad}` is not a domain"
            ));
        }
        Ok(())
    }
}

/// A set of strings kept as a sorted vector of xxh3-64 hashes: compact and fast to build.
#[derive(Debug, Default)]
struct HashSet64 {
    hashes: Vec<u64>,
}

impl HashSet64 {
    fn from_hashes(mut hashes: Vec<u64>) -> Self {
        hashes.par_sort_unstable();
        hashes.dedup();
        hashes.shrink_to_fit();
        HashSet64 { hashes }
    }

    fn contains(&self, key: &str) -> bool {
        self.hashes.binary_search(&xxh3_64(key.as_bytes())).is_ok()
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether `host` or one of its parent domains, down to the top-level domain, is in the set.
    fn contains_domain(&self, host: &str) -> bool {
        if host.is_empty() {
            return false;
        }
        std::iter::once(host)
            .chain(host.match_indices('.').map(|(dot, _)| &host[dot + 1..]))
            .any(|domain| self.contains(domain))
    }
}

/// The URL filter, built once from its config and shared across threads.
pub struct UrlFilter {
    domains: HashSet64,
    urls: HashSet64,
    curated: HashSet64,
    strict: Option<AhoCorasick>,
    hard: HashSet<String>,
    soft: HashSet<String>,
    soft_words_min: usize,
}

impl UrlFilter {
    /// Loads the configured lists; a missing or unreadable list is an error naming it.
    pub fn new(config: &UrlFilterConfig) -> Result<Self> {
        let start = Instant::now();
        let domains = match &config.blocklist_domains {
            Some(path) => load_hashes(path, "domains", normalize_host)?,
            None => HashSet64::default(),
        };
        let urls = match &config.blocklist_urls {
            Some(path) => load_hashes(path, "urls", |line| {
                let (host, rest) = split_url(line);
                url_key(&host, rest)
            })?,
            None => HashSet64::default(),
        };
        let curated = HashSet64::from_hashes(
            config
                .curated_sources
                .iter()
                .map(|d| xxh3_64(normalize_host(d).as_bytes()))
                .collect(),
        );
        let strict_words = load_words(config.strict_words.as_deref())?;
        let strict = if strict_words.is_empty() {
            None
        } else {
            let mut words: Vec<&String> = strict_words.iter().collect();
            words.sort();
            Some(AhoCorasick::new(words).map_err(|e| Error::Input {
                path: config.strict_words.clone().unwrap_or_default(),
                message: format!("cannot build the strict_words matcher: {e}"),
            })?)
        };
        let filter = UrlFilter {
            domains,
            urls,
            curated,
            strict,
            hard: load_words(config.hard_words.as_deref())?,
            soft: load_words(config.soft_words.as_deref())?,
            soft_words_min: config.soft_words_min,
        };
        tracing::info!(
            domains = filter.domains.len(),
            urls = filter.urls.len(),
            strict_words = strict_words.len(),
            hard_words = filter.hard.len(),
            soft_words = filter.soft.len(),
            seconds = start.elapsed().as_secs_f64(),
            "url_filter lists loaded"
        );
        if filter.domains.len() + filter.urls.len() + strict_words.len() + filter.hard.len() == 0 {
            tracing::warn!(
                "url_filter: no blocklist or word list configured, only curated_sources applies; \
                 set url_filter.blocklist_domains and the word lists (see the url_filter docs)"
            );
        }
        Ok(filter)
    }

    /// The rule that drops `url`, or `None` to keep it.
    pub fn check(&self, url: &str) -> Option<&'static str> {
        let (host, rest) = split_url(url);
        if self.domains.contains_domain(&host) {
            return Some("blocklist_domains");
        }
        if self.on_url_list(&host, rest) {
            return Some("blocklist_urls");
        }
        if self.curated.contains_domain(&host) {
            return Some("curated_sources");
        }
        if let Some(strict) = &self.strict {
            if strict.is_match(&normalize_word(url)) {
                return Some("strict_words");
            }
        }
        if self.hard.is_empty() && self.soft.is_empty() {
            return None;
        }
        let mut words: Vec<String> = url_words(url).map(|w| w.to_ascii_lowercase()).collect();
        words.sort_unstable();
        words.dedup();
        if words.iter().any(|w| self.hard.contains(w)) {
            return Some("hard_words");
        }
        if words.iter().filter(|w| self.soft.contains(*w)).count() >= self.soft_words_min {
            return Some("soft_words");
        }
        None
    }

    /// The URL and each of its `/`- or `?`-bounded prefixes below the host, against the URL list.
    fn on_url_list(&self, host: &str, rest: &str) -> bool {
        let key = url_key(host, rest);
        if self.urls.contains(&key) {
            return true;
        }
        let host_len = host.strip_prefix("www.").unwrap_or(host).len();
        key[host_len..]
            .match_indices(['/', '?'])
            .map(|(i, _)| host_len + i)
            .filter(|&end| end > host_len)
            .any(|end| self.urls.contains(&key[..end]))
    }
}

impl Stage for UrlFilter {
    fn name(&self) -> &'static str {
        "url_filter"
    }

    fn apply(&self, doc: &mut Document) -> Verdict {
        // A text input without URL has nothing to judge here.
        match self.check(&doc.url) {
            Some(reason) => Verdict::Drop(reason),
            None => Verdict::Keep,
        }
    }
}

/// Host (lowercased, without userinfo, port or trailing dot) and the rest of a URL (path and
/// query, fragment dropped). A URL without scheme is read as `host/path`, as the lists write it.
fn split_url(url: &str) -> (String, &str) {
    // wget writes `WARC-Target-URI: <https://...>`.
    let url = url.trim().trim_start_matches('<').trim_end_matches('>');
    let after_scheme = match url.find("://") {
        Some(i) if is_scheme(&url[..i]) => &url[i + 3..],
        _ => url,
    };
    let end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(end);
    let rest = rest.split('#').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(ipv6) => ipv6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    (normalize_host(host), rest)
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn normalize_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// How a URL is keyed in the URL list: host without `www.`, then path and query, no trailing `/`.
fn url_key(host: &str, rest: &str) -> String {
    let host = host.strip_prefix("www.").unwrap_or(host);
    let mut key = String::with_capacity(host.len() + rest.len());
    key.push_str(host);
    key.push_str(rest);
    while key.ends_with('/') {
        key.pop();
    }
    key
}

/// The URL's words: maximal runs of ASCII letters and digits (datatrove's `[^a-zA-Z0-9]+` split).
fn url_words(url: &str) -> impl Iterator<Item = &str> {
    url.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Letters and digits only, lowercased: datatrove's `normalize`, for list words and strict matching.
fn normalize_word(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A word list: one entry per line, `#` lines are comments (datatrove's format), normalized.
fn load_words(path: Option<&Path>) -> Result<HashSet<String>> {
    let mut words = HashSet::new();
    if let Some(path) = path {
        for_each_line(path, "", |line| {
            let word = normalize_word(line);
            if !word.is_empty() {
                words.insert(word);
            }
        })?;
    }
    Ok(words)
}

/// A blocklist: each non-comment line, keyed by `key`, hashed.
fn load_hashes(path: &Path, member: &str, key: impl Fn(&str) -> String) -> Result<HashSet64> {
    let mut hashes = Vec::new();
    for_each_line(path, member, |line| {
        hashes.push(xxh3_64(key(line).as_bytes()))
    })?;
    Ok(HashSet64::from_hashes(hashes))
}

/// Calls `f` on every trimmed line of a list that is not empty or a `#` comment. The list is a
/// plain file, a `.gz`, or a `.tar.gz`/`.tgz` whose member named `member` is read.
fn for_each_line(path: &Path, member: &str, mut f: impl FnMut(&str)) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let name = path.file_name().and_then(OsStr::to_str).unwrap_or_default();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let mut archive = tar::Archive::new(MultiGzDecoder::new(BufReader::new(file)));
        for entry in archive.entries().map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let entry_path = entry.path().map_err(|e| Error::io(path, e))?;
            if entry_path.file_name() == Some(OsStr::new(member)) {
                return read_lines(entry, path, &mut f);
            }
        }
        Err(Error::Input {
            path: path.into(),
            message: format!("no member `{member}` in the archive"),
        })
    } else if name.ends_with(".gz") {
        read_lines(MultiGzDecoder::new(BufReader::new(file)), path, &mut f)
    } else {
        read_lines(file, path, &mut f)
    }
}

fn read_lines(reader: impl Read, path: &Path, f: &mut impl FnMut(&str)) -> Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?
            == 0
        {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            f(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::test_data;

    fn lists() -> PathBuf {
        test_data().join("filters/datatrove-url-filter")
    }

    /// The filter with datatrove's word lists, the shared domain sample and the URL list.
    fn shared_filter() -> UrlFilter {
        let dir = lists();
        UrlFilter::new(&UrlFilterConfig {
            blocklist_domains: Some(dir.join("blocklist_domains.sample-every-100th.txt")),
            blocklist_urls: Some(dir.join("blocklist_urls.txt")),
            strict_words: Some(dir.join("banned_subwords.txt")),
            hard_words: Some(dir.join("banned_words.txt")),
            soft_words: Some(dir.join("soft_banned_words.txt")),
            ..UrlFilterConfig::default()
        })
        .expect("shared lists load")
    }

    macro_rules! drops {
        ($filter:expr, $url:expr, $reason:expr) => {
            assert_eq!($filter.check($url), $reason, "{}", $url)
        };
    }

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("https://user:pw@WWW.Example.COM.:8080/a/b?q=1#frag"),
            ("www.example.com".into(), "/a/b?q=1")
        );
        assert_eq!(
            split_url("<https://example.org/x>"),
            ("example.org".into(), "/x")
        );
        assert_eq!(
            split_url("example.org/x?u=http://other.com/"),
            ("example.org".into(), "/x?u=http://other.com/")
        );
        assert_eq!(split_url("http://[::1]:80/p"), ("::1".into(), "/p"));
        assert_eq!(split_url(""), ("".into(), ""));
    }

    #[test]
    fn blocklist_domains_bans_domain_and_subdomains() {
        let f = shared_filter();
        // Lines of the shared sample of datatrove's domain list.
        drops!(f, "http://0-1avsex.com/", Some("blocklist_domains"));
        drops!(
            f,
            "https://WWW.0-1avsex.com/page.html",
            Some("blocklist_domains")
        );
        drops!(f, "https://0000.1.free.fr/index", Some("blocklist_domains"));
        drops!(
            f,
            "https://deep.sub.0000.1.free.fr/index",
            Some("blocklist_domains")
        );
        // A parent of a listed domain is not banned, nor is a look-alike.
        drops!(f, "https://free.fr/index", None);
        drops!(f, "https://x0-1avsex.com.example.net/", None);
        // A top-level domain on the list bans every site under it.
        let plain = UrlFilter::new(&UrlFilterConfig::default()).unwrap();
        let tld = UrlFilter {
            domains: HashSet64::from_hashes(vec![xxh3_64(b"xxx")]),
            ..plain
        };
        drops!(tld, "https://some.site.xxx/", Some("blocklist_domains"));
        drops!(tld, "https://xxx.com/", None);
    }

    #[test]
    fn blocklist_urls_bans_listed_pages_and_below() {
        let f = UrlFilter::new(&UrlFilterConfig {
            blocklist_urls: Some(lists().join("blocklist_urls.txt")),
            ..UrlFilterConfig::default()
        })
        .unwrap();
        let listed = "0149614511.strimbat.fr/porno-anal-escort-granville-faire-sa-salope-baise-une-vache-video-gratuite-x-escort-girl-auxerre";
        drops!(f, &format!("http://{listed}"), Some("blocklist_urls"));
        drops!(f, &format!("https://www.{listed}/"), Some("blocklist_urls"));
        drops!(
            f,
            &format!("https://{listed}/more?page=2"),
            Some("blocklist_urls")
        );
        drops!(f, "https://0149614511.strimbat.fr/", None);
        drops!(f, &format!("https://{listed}x"), None);
    }

    #[test]
    fn curated_sources_excluded_with_subdomains() {
        let f = UrlFilter::new(&UrlFilterConfig::default()).unwrap();
        drops!(
            f,
            "https://en.wikipedia.org/wiki/Falcon",
            Some("curated_sources")
        );
        drops!(
            f,
            "https://arxiv.org/abs/2306.01116",
            Some("curated_sources")
        );
        drops!(
            f,
            "https://math.stackexchange.com/questions/1",
            Some("curated_sources")
        );
        drops!(f, "https://old.reddit.com/r/rust", Some("curated_sources"));
        drops!(
            f,
            "https://github.com/huggingface/datatrove",
            Some("curated_sources")
        );
        drops!(f, "https://notwikipedia.org/wiki/Falcon", None);
        drops!(f, "https://example.com/github.com", None);
        drops!(
            f,
            "https://www.ncbi.nlm.nih.gov/pmc/",
            Some("curated_sources")
        );
        drops!(f, "https://nih.gov/", None);
    }

    #[test]
    fn word_rules_follow_datatrove() {
        let f = shared_filter();
        // strict: "2 girls 1 cup" normalizes to "2girls1cup", matched inside any run of letters.
        drops!(
            f,
            "https://videos.example.com/watch-2-girls-1-cup-now",
            Some("strict_words")
        );
        // hard: `bdsm` is a word of banned_words.txt; as a part of a longer word it is not.
        drops!(f, "https://shop.example.com/BDSM/gear", Some("hard_words"));
        drops!(f, "https://shop.example.com/bdsmgear", None);
        // soft: two distinct words of soft_banned_words.txt drop, one does not.
        drops!(f, "https://example.com/naked-lingerie", Some("soft_words"));
        drops!(f, "https://example.com/naked-naked", None);
        drops!(f, "https://example.com/lingerie-sale", None);
    }

    #[test]
    fn ordinary_urls_survive() {
        let f = shared_filter();
        for url in [
            "https://www.bbc.co.uk/news/science-environment-65759555",
            "http://commoncrawl.org/",
            "https://an.wikipedia.org.mirror.example/wiki/Escopete",
            "https://www.tagesspiegel.de/berlin/abstandsregeln.html",
            "https://docs.rs/fasttext-pure-rs",
            "",
        ] {
            drops!(f, url, None);
        }
    }

    #[test]
    fn lists_read_from_gz_and_tar_gz() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("domains.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        enc.write_all(b"# comment\nbad.example\n\n").unwrap();
        enc.finish().unwrap();

        let tgz = dir.path().join("lists.tar.gz");
        let enc = flate2::write::GzEncoder::new(File::create(&tgz).unwrap(), Default::default());
        let mut tar = tar::Builder::new(enc);
        for (name, body) in [
            ("blacklists/urls", &b"evil.example/page\n"[..]),
            ("blacklists/domains", b"worse.example\n"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, body).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();

        let f = UrlFilter::new(&UrlFilterConfig {
            blocklist_domains: Some(gz),
            ..Default::default()
        })
        .unwrap();
        drops!(f, "https://a.bad.example/", Some("blocklist_domains"));
        let f = UrlFilter::new(&UrlFilterConfig {
            blocklist_domains: Some(tgz.clone()),
            blocklist_urls: Some(tgz.clone()),
            ..Default::default()
        })
        .unwrap();
        drops!(f, "https://worse.example/", Some("blocklist_domains"));
        drops!(f, "https://evil.example/page", Some("blocklist_urls"));
        drops!(f, "https://a.bad.example/", None);

        let err = UrlFilter::new(&UrlFilterConfig {
            hard_words: Some(dir.path().join("nope.txt")),
            ..Default::default()
        });
        assert!(matches!(err, Err(Error::Io { .. })));
    }

    #[test]
    fn stage_drops_with_reason() {
        let f = UrlFilter::new(&UrlFilterConfig::default()).unwrap();
        let mut doc = Document {
            url: "https://de.wikipedia.org/wiki/Falke".into(),
            ..Default::default()
        };
        assert_eq!(f.apply(&mut doc), Verdict::Drop("curated_sources"));
        doc.url = "https://falconry.example/".into();
        assert_eq!(f.apply(&mut doc), Verdict::Keep);
        assert!(UrlFilterConfig {
            soft_words_min: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
