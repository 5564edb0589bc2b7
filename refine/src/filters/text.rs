//! Word splitting and n-gram counting for the Gopher rules, written once.
//!
//! A document is split once: [`Words`] keeps the split with the counts `repetition`, `quality`
//! and `line_correction` ask for, and the document carries it ([`WordsMemo`]) from the first of
//! them to the others. [`Ngrams`] hashes its n-grams for the repetition rules.
//!
//! # Words, as datatrove splits them
//! Gopher's rules (Rae et al. 2021, App. A.1.1) count "words"; datatrove 0.10.1, the peer we
//! match, gets them from `split_into_words(text, "en")`: spaCy's `blank("en")` tokenizer, each
//! token stripped, empty (whitespace) tokens dropped. Punctuation therefore comes out as its own
//! tokens (`"word."` -> `"word"`, `"."`; `"don't"` -> `"do"`, `"n't"`), and the rules lean on it:
//! punctuation tokens count in the `#`/ellipsis-to-word and alphabetic-word ratios and in the
//! n-grams, but not in the word count or the mean word length (`is_symbol_word`).
//!
//! [`split_words`] re-implements spaCy's algorithm (`Tokenizer._split_affixes` and
//! `_attach_tokens`) over borrowed slices, without regexes on the hot path:
//! 1. split on whitespace (Python's `str.isspace`);
//! 2. for each chunk, unless it is a tokenizer exception, repeatedly strip one prefix and one
//!    suffix (English `TOKENIZER_PREFIXES` / `TOKENIZER_SUFFIXES`: punctuation, quotes, currency,
//!    units after digits, `'s`, a final `.` after a lowercase letter, digit or two capitals ...),
//!    stopping at an exception (spaCy's English exception table, generated into
//!    `en_exceptions.tsv` by `scripts/gopher_fixture.py`);
//! 3. split what remains at infixes (`..`, `…`, symbols, `-` between letters, `,` between
//!    letters, `.` before a capital, `/ : < > =` before a letter, arithmetic between digits),
//!    unless it is a URL (spaCy's `URL_MATCH`);
//! 4. re-merge tokens that together spell an exception (`"z"`, `"."` -> `"z."`), as spaCy's
//!    `_apply_special_cases` does.
//!
//! Known differences from spaCy (measured on the parity fixture: see `PARITY.md`):
//! - spaCy's cased letter classes are explicit Latin, Greek and Cyrillic ranges; we use Unicode
//!   `is_lowercase` / `is_uppercase` / `is_alphabetic`, which also admit other cased scripts
//!   (Armenian, Georgian ...). spaCy's uncased script blocks are copied as ranges.
//! - `URL_MATCH`'s private-IP exclusions are not applied (they only keep such IPs unsplit).
//! - Python's `str.isalpha` is approximated by `char::is_alphabetic` (which also admits
//!   letter-numbers and combining vowel signs).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use regex::Regex;
use xxhash_rust::xxh3::xxh3_64;

/// Appends the words of `text` to `out`, as datatrove's English `split_into_words` does.
pub fn split_words<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let bytes = text.as_bytes();
    let (mut i, mut start) = (0, None);
    while i < bytes.len() {
        // ASCII without decoding: nearly all of the whitespace and most of the text.
        let (space, len) = if bytes[i].is_ascii() {
            (matches!(bytes[i], b' ' | b'\t'..=b'\r' | 0x1c..=0x1f), 1)
        } else {
            let c = text[i..].chars().next().expect("i is a char boundary");
            (is_space(c), c.len_utf8())
        };
        if space {
            if let Some(s) = start.take() {
                split_chunk(&text[s..i], out);
            }
        } else if start.is_none() {
            start = Some(i);
        }
        i += len;
    }
    if let Some(s) = start {
        split_chunk(&text[s..], out);
    }
}

/// The words of `text` in a new vector; see [`split_words`].
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / 5);
    split_words(text, &mut out);
    out
}

/// The words of one text, split once, with the counts the filters ask of them.
///
/// `repetition`, `quality` and `line_correction` all count the same words; a document carries
/// them in [`WordsMemo`] so the text is split once for the three stages. Words are kept as byte
/// ranges, read back with the text they were split from.
#[derive(Clone, Debug, Default)]
pub struct Words {
    /// Byte range of word `i` in the text.
    spans: Vec<(usize, usize)>,
    /// Characters (Python's `len`) in words `0..i`; one entry more than words.
    chars_before: Vec<usize>,
    /// Gopher words (not punctuation only: [`is_symbol_word`]) among words `0..i`; one entry
    /// more than words.
    counted_before: Vec<usize>,
    /// Characters in the Gopher words.
    counted_chars: usize,
    /// Words with an alphabetic character.
    alphabetic: usize,
}

impl Words {
    /// Splits `text` ([`split_words`]) and counts.
    pub fn new(text: &str) -> Self {
        let mut tokens = Vec::with_capacity(text.len() / 5);
        split_words(text, &mut tokens);
        let n = tokens.len();
        let mut w = Words {
            spans: Vec::with_capacity(n),
            chars_before: Vec::with_capacity(n + 1),
            counted_before: Vec::with_capacity(n + 1),
            ..Default::default()
        };
        let (mut chars, mut counted) = (0, 0);
        for t in tokens {
            let start = t.as_ptr() as usize - text.as_ptr() as usize;
            w.spans.push((start, start + t.len()));
            w.chars_before.push(chars);
            w.counted_before.push(counted);
            // Most words are ASCII: their bytes answer without decoding characters.
            let (len, symbol, alpha) = if t.is_ascii() {
                let b = t.as_bytes();
                let symbol = b.iter().all(|&c| is_punctuation(char::from(c)));
                (b.len(), symbol, b.iter().any(u8::is_ascii_alphabetic))
            } else {
                (char_len(t), is_symbol_word(t), t.chars().any(is_alpha))
            };
            chars += len;
            if !symbol {
                counted += 1;
                w.counted_chars += len;
            }
            w.alphabetic += usize::from(alpha);
        }
        w.chars_before.push(chars);
        w.counted_before.push(counted);
        w
    }

    /// Number of words, punctuation tokens included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no words.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The words, read from `text`, the text they were split from.
    pub fn iter<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.spans.iter().map(move |&(a, b)| &text[a..b])
    }

    /// Characters in words `i..i + n`.
    pub fn chars(&self, i: usize, n: usize) -> usize {
        self.chars_before[i + n] - self.chars_before[i]
    }

    /// Gopher words: those not made of punctuation only.
    pub fn counted(&self) -> usize {
        self.counted_before[self.len()]
    }

    /// Characters in the Gopher words.
    pub fn counted_chars(&self) -> usize {
        self.counted_chars
    }

    /// Words with at least one alphabetic character.
    pub fn alphabetic(&self) -> usize {
        self.alphabetic
    }

    /// Gopher words from word `*next` up to those ending by byte `end`, moving `*next` past
    /// them: called line after line, the count of each line. Words never cross whitespace, so
    /// it equals the count of the line split on its own.
    pub fn counted_until(&self, next: &mut usize, end: usize) -> usize {
        let first = *next;
        while *next < self.len() && self.spans[*next].1 <= end {
            *next += 1;
        }
        self.counted_before[*next] - self.counted_before[first]
    }
}

/// The [`Words`] of a document's text, kept with the length and hash of the text they were
/// split from: a stage that rewrites the text (`line_correction`) needs to invalidate nothing,
/// the next reader splits the new text. A cache, not data: every memo equals every other.
#[derive(Clone, Default)]
pub struct WordsMemo(Option<Box<(usize, u64, Words)>>);

impl WordsMemo {
    /// The words of `text`: the kept ones when they were split from `text`, else split now.
    pub fn of(&mut self, text: &str) -> &Words {
        let (len, hash) = (text.len(), xxh3_64(text.as_bytes()));
        let fresh = matches!(&self.0, Some(m) if m.0 == len && m.1 == hash);
        if !fresh {
            self.0 = Some(Box::new((len, hash, Words::new(text))));
        }
        &self.0.as_ref().expect("just filled").2
    }
}

impl PartialEq for WordsMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for WordsMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = self.0.as_ref().map(|m| m.2.len());
        f.debug_tuple("WordsMemo").field(&words).finish()
    }
}

/// Python's `str.isspace`: Unicode `White_Space` plus the separators U+001C..U+001F.
#[inline]
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.splitlines()`: splits on `\n`, `\r`, `\r\n`, VT, FF, FS, GS, RS, NEL, LS, PS;
/// no empty last line after a final separator.
pub fn py_splitlines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.char_indices().find(|&(_, c)| is_line_break(c)) {
            Some((i, c)) => {
                let line = &rest[..i];
                let mut next = i + c.len_utf8();
                if c == '\r' && rest[next..].starts_with('\n') {
                    next += 1;
                }
                rest = &rest[next..];
                Some(line)
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{b}'
            | '\u{c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Length in characters, as Python's `len(str)`.
#[inline]
pub fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Whether `c` is in datatrove's `PUNCTUATION_SET` (ASCII punctuation, C0/C1 controls other
/// than tab and newline, and the terminal punctuation of many scripts).
#[inline]
pub fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() || (c.is_ascii_control() && c != '\t' && c != '\n');
    }
    static SORTED: OnceLock<Vec<char>> = OnceLock::new();
    let sorted = SORTED.get_or_init(|| {
        let mut chars: Vec<char> = PUNCTUATION_NON_ASCII
            .iter()
            .flat_map(|s| s.chars())
            .collect();
        chars.sort_unstable();
        chars
    });
    ('\u{80}'..='\u{9f}').contains(&c) || sorted.binary_search(&c).is_ok()
}

/// A word made only of punctuation (`"."`, `"--"`, `"…"`): datatrove leaves these out of the
/// word count and the mean word length.
#[inline]
pub fn is_symbol_word(word: &str) -> bool {
    word.chars().all(is_punctuation)
}

/// Python's `str.isalpha` for one character, approximated by Unicode `Alphabetic`.
#[inline]
pub fn is_alpha(c: char) -> bool {
    c.is_alphabetic()
}

// ---------------------------------------------------------------------------------------------
// spaCy's English affix rules

fn split_chunk<'a>(chunk: &'a str, out: &mut Vec<&'a str>) {
    let exceptions = exceptions();
    if let Some(tokens) = exceptions.get(chunk) {
        push_exception(chunk, tokens, out);
        return;
    }
    if is_plain(chunk) {
        out.push(chunk);
        return;
    }
    let from = out.len();
    match plain_before_suffix(chunk) {
        // What the affix loop does to it: one suffix off, then the plain rest (an exception or
        // not) is left alone.
        Some(body) => {
            match exceptions.get(body) {
                Some(tokens) => push_exception(body, tokens, out),
                None => out.push(body),
            }
            out.push(&chunk[body.len()..]);
        }
        None => split_affixes(chunk, out),
    }
    if out.len() - from > 1 {
        merge_exceptions(chunk, out, from);
    }
}

/// Whether no affix or infix rule can split `chunk`: most chunks are plain words or numbers.
/// Digits alone take no unit; letters (not symbols, which are icons) alone have no punctuation,
/// quote, currency or icon to split at, and no digit before which a unit could start.
fn is_plain(chunk: &str) -> bool {
    chunk.bytes().all(|b| b.is_ascii_digit()) || chunk.chars().all(is_plain_letter)
}

/// The plain word before the last character of `chunk`, when that character is the suffix the
/// affix rules strip and nothing is a prefix: `"word,"`, `"end."`, `"why?"` (a tenth of all
/// chunks).
fn plain_before_suffix(chunk: &str) -> Option<&str> {
    let last = chunk.chars().next_back()?;
    let body = &chunk[..chunk.len() - last.len_utf8()];
    let plain = !body.is_empty() && is_plain(body);
    (plain && find_prefix(chunk) == 0 && find_suffix(chunk) == last.len_utf8()).then_some(body)
}

fn is_plain_letter(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        c.is_alphabetic() && !is_icon(c)
    }
}

/// spaCy's `_apply_special_cases`: tokens that the affix rules split apart but that together
/// spell an exception (`"z"`, `"."` -> `"z."`; `")"`, `":"` -> `"):"`) are re-tokenized as the
/// exception says; longest match first, left to right.
fn merge_exceptions<'a>(chunk: &'a str, tokens: &mut Vec<&'a str>, from: usize) {
    let exceptions = exceptions();
    let offset = |t: &str| t.as_ptr() as usize - chunk.as_ptr() as usize;
    let mut i = from;
    while i + 1 < tokens.len() {
        let start = offset(tokens[i]);
        let found = (i + 2..=tokens.len()).rev().find_map(|j| {
            let end = offset(tokens[j - 1]) + tokens[j - 1].len();
            exceptions
                .get(&chunk[start..end])
                .map(|lens| (j, end, lens))
        });
        match found {
            Some((j, end, lens)) => {
                let mut merged = Vec::with_capacity(lens.len());
                push_exception(&chunk[start..end], lens, &mut merged);
                let n = merged.len();
                tokens.splice(i..j, merged);
                i += n;
            }
            None => i += 1,
        }
    }
}

/// spaCy's `_split_affixes` and `_attach_tokens` for one chunk that is not an exception.
fn split_affixes<'a>(chunk: &'a str, out: &mut Vec<&'a str>) {
    let exceptions = exceptions();
    let mut s = chunk;
    let mut prefixes: Vec<&'a str> = Vec::new();
    let mut suffixes: Vec<&'a str> = Vec::new();
    let mut last_len = usize::MAX;
    while !s.is_empty() && s.len() != last_len {
        if exceptions.contains(s) {
            break;
        }
        last_len = s.len();
        let pre = find_prefix(s);
        if pre > 0 && exceptions.contains(&s[pre..]) {
            prefixes.push(&s[..pre]);
            s = &s[pre..];
            break;
        }
        let suf = find_suffix(&s[pre..]);
        if suf > 0 && exceptions.contains(&s[..s.len() - suf]) {
            suffixes.push(&s[s.len() - suf..]);
            s = &s[..s.len() - suf];
            break;
        }
        if pre > 0 && suf > 0 && pre + suf <= s.len() {
            prefixes.push(&s[..pre]);
            suffixes.push(&s[s.len() - suf..]);
            s = &s[pre..s.len() - suf];
        } else if pre > 0 {
            prefixes.push(&s[..pre]);
            s = &s[pre..];
        } else if suf > 0 {
            suffixes.push(&s[s.len() - suf..]);
            s = &s[..s.len() - suf];
        }
        if !s.is_empty() && exceptions.contains(s) {
            break;
        }
    }
    out.extend(prefixes.iter().filter(|p| !p.is_empty()));
    if !s.is_empty() {
        if let Some(tokens) = exceptions.get(s) {
            push_exception(s, tokens, out);
        } else {
            split_infixes(s, out);
        }
    }
    out.extend(suffixes.iter().rev());
}

fn push_exception<'a>(s: &'a str, lens: &[u8], out: &mut Vec<&'a str>) {
    let mut at = 0;
    for &len in lens {
        out.push(&s[at..at + len as usize]);
        at += len as usize;
    }
}

/// Splits at spaCy's English infixes; a URL stays whole.
fn split_infixes<'a>(s: &'a str, out: &mut Vec<&'a str>) {
    let mut start = 0;
    let mut found = false;
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let Some(c) = rest.chars().next() else { break };
        if let Some(len) = infix_at(prev, rest) {
            // spaCy skips an infix at the very start of what remains.
            if i != 0 {
                if !found && may_be_url(s) && url_match().is_match(s) {
                    out.push(s);
                    return;
                }
                found = true;
                if i != start {
                    out.push(&s[start..i]);
                }
                out.push(&s[i..i + len]);
                start = i + len;
            }
            prev = s[..i + len].chars().next_back();
            i += len;
        } else {
            prev = Some(c);
            i += c.len_utf8();
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
}

fn may_be_url(s: &str) -> bool {
    s.contains('.')
}

/// The length of the infix starting at `rest` (after character `prev`), trying spaCy's
/// alternatives in order.
fn infix_at(prev: Option<char>, rest: &str) -> Option<usize> {
    let mut it = rest.chars();
    let c = it.next()?;
    let next = it.next();
    if c == '.' && next == Some('.') {
        return Some(rest.bytes().take_while(|&b| b == b'.').count());
    }
    if c == '…' || is_icon(c) {
        return Some(c.len_utf8());
    }
    let prev = prev?;
    let next = next?;
    if matches!(c, '+' | '-' | '*' | '^')
        && prev.is_ascii_digit()
        && (next.is_ascii_digit() || next == '-')
    {
        return Some(1);
    }
    if c == '.' && (is_lower(prev) || is_quote(prev)) && (is_upper(next) || is_quote(next)) {
        return Some(1);
    }
    if c == ',' && is_alpha_class(prev) && is_alpha_class(next) {
        return Some(1);
    }
    if is_alpha_class(prev) || prev.is_ascii_digit() {
        // Every hyphen starts with one of these: most characters skip the loop.
        if matches!(c, '-' | '–' | '—' | '~') {
            for h in HYPHENS {
                if let Some(after) = rest.strip_prefix(h) {
                    if after.chars().next().is_some_and(is_alpha_class) {
                        return Some(h.len());
                    }
                }
            }
        }
        if matches!(c, ':' | '<' | '>' | '=' | '/') && is_alpha_class(next) {
            return Some(1);
        }
    }
    None
}

/// `find_prefix`: the first of spaCy's prefix alternatives that matches at the start.
fn find_prefix(s: &str) -> usize {
    let Some(c) = s.chars().next() else { return 0 };
    if c.is_ascii_alphanumeric() && !matches!(c, 'U' | 'C' | 'A') {
        return 0;
    }
    if PREFIX_CHARS.contains(c)
        || PUNCT_CHARS.contains(c)
        || is_quote(c)
        || CURRENCY_CHARS.contains(c)
        || is_icon(c)
    {
        return c.len_utf8();
    }
    match c {
        '+' if !s[1..].starts_with(|d: char| d.is_ascii_digit()) => 1,
        '.' if s[1..].starts_with('.') => s.bytes().take_while(|&b| b == b'.').count(),
        _ => ["US$", "C$", "A$"]
            .iter()
            .find(|p| s.starts_with(*p))
            .map_or(0, |p| p.len()),
    }
}

/// `find_suffix`: `re.search` over `$`-anchored alternatives returns the leftmost, i.e. the
/// longest, matching suffix.
fn find_suffix(s: &str) -> usize {
    let Some(last) = s.chars().next_back() else {
        return 0;
    };
    let body = &s[..s.len() - last.len_utf8()];
    let before = body.chars().next_back();
    let mut best = unit_after_digit(s);
    if last.is_ascii_alphanumeric() {
        return ["'s", "'S", "’s", "’S"]
            .iter()
            .filter(|q| s.ends_with(*q))
            .map(|q| q.len())
            .fold(best, usize::max);
    }
    if PUNCT_CHARS.contains(last) || is_quote(last) || is_icon(last) || last == '—' || last == '–'
    {
        best = last.len_utf8();
    }
    if s.ends_with("……") {
        best = best.max("……".len());
    }
    if s.ends_with("..") {
        best = best.max(s.len() - s.trim_end_matches('.').len());
    }
    for q in ["'s", "'S", "’s", "’S"] {
        if s.ends_with(q) {
            best = best.max(q.len());
        }
    }
    if last == '+' && before.is_some_and(|b| b.is_ascii_digit()) {
        best = best.max(1);
    }
    if last == '.' {
        let mut back = body.chars().rev();
        let (b1, b2) = (back.next(), back.next());
        let after_degree = b2 == Some('°') && matches!(b1, Some('F' | 'f' | 'C' | 'c' | 'K' | 'k'));
        let after_class = b1.is_some_and(is_dot_suffix_context);
        let after_caps = b1.is_some_and(is_upper) && b2.is_some_and(is_upper);
        if after_degree || after_class || after_caps {
            best = best.max(1);
        }
    }
    best
}

/// spaCy's `(?<=[0-9])(?:{currency}|{units})$` suffixes: a unit or currency preceded by a digit
/// is exactly the text after the last digit.
fn unit_after_digit(s: &str) -> usize {
    let Some(digit) = s.bytes().rposition(|b| b.is_ascii_digit()) else {
        return 0;
    };
    let tail = &s[digit + 1..];
    // Most tails are punctuation ("2019," "5)"), which starts no unit: rejected by first byte.
    static FIRST_BYTES: OnceLock<[bool; 256]> = OnceLock::new();
    let first_bytes = FIRST_BYTES.get_or_init(|| {
        let mut set = [false; 256];
        for u in CURRENCIES.iter().chain(UNITS) {
            set[usize::from(u.as_bytes()[0])] = true;
        }
        set
    });
    let unit = tail
        .as_bytes()
        .first()
        .is_some_and(|&b| first_bytes[usize::from(b)])
        && CURRENCIES.iter().chain(UNITS).any(|u| *u == tail);
    if unit {
        tail.len()
    } else {
        0
    }
}

/// The lookbehind class of spaCy's `(?<=[0-9{al}{e}{p}(?:{q})])\.` suffix: a digit, a lowercase
/// letter, `% ² - +`, punctuation, quotes, and the regex syntax characters `| ( ? : )` that the
/// class picks up from its own source.
fn is_dot_suffix_context(c: char) -> bool {
    c.is_ascii_digit()
        || is_lower(c)
        || "%²-+|(?:)".contains(c)
        || PUNCT_CHARS.contains(c)
        || is_quote(c)
}

fn is_quote(c: char) -> bool {
    QUOTE_CHARS.contains(c)
}

/// spaCy's `ALPHA_LOWER`: lowercase letters plus the uncased scripts (CJK, Arabic, Indic ...).
fn is_lower(c: char) -> bool {
    c.is_lowercase() || is_uncased_letter(c)
}

/// spaCy's `ALPHA_UPPER`: uppercase letters plus the uncased scripts.
fn is_upper(c: char) -> bool {
    c.is_uppercase() || is_uncased_letter(c)
}

/// spaCy's `ALPHA`.
fn is_alpha_class(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        c.is_alphabetic() || is_uncased_letter(c)
    }
}

/// spaCy's `_uncased` scripts (Ethiopic, Bengali, Hebrew, Arabic/Persian, Sinhala, Devanagari,
/// Kannada, Tamil, Telugu, Hangul, Kana, CJK): whole blocks, digits and signs included, count as
/// both lowercase and uppercase letters.
fn is_uncased_letter(c: char) -> bool {
    let c = c as u32;
    c >= 0x591
        && UNCASED_RANGES
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&c))
}

#[rustfmt::skip]
const UNCASED_RANGES: &[(u32, u32)] = &[
    (0x1200, 0x137F), (0x0980, 0x09FF), (0x0591, 0x05F4), (0xFB1D, 0xFB4F), (0x0620, 0x064A),
    (0x066E, 0x06D5), (0x06E5, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08BD), (0xFB50, 0xFBB1),
    (0xFBD3, 0xFD3D), (0xFD50, 0xFDC7), (0xFDF0, 0xFDFB), (0xFE70, 0xFEFC), (0x1EE00, 0x1EEBB),
    (0x0D80, 0x0DFF), (0x0900, 0x097F), (0x0C80, 0x0CFF), (0x0B80, 0x0BFF), (0x0C00, 0x0C7F),
    (0xAC00, 0xD7AF), (0x1100, 0x11FF), (0x3040, 0x309F), (0x30A0, 0x30FF), (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF), (0x2E80, 0x2EFF), (0x2F00, 0x2FDF),
    (0x2FF0, 0x2FFF), (0x3000, 0x303F), (0x31C0, 0x31EF), (0x3200, 0x32FF), (0x3300, 0x33FF),
    (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0x1F200, 0x1F2FF), (0x2F800, 0x2FA1F),
];

fn is_icon(c: char) -> bool {
    let c = c as u32;
    if c < 0xA6 {
        return false;
    }
    ICON_RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// spaCy's `_punct` (single characters; `……` is handled apart).
const PUNCT_CHARS: &str = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪";
/// spaCy's `_quotes`.
const QUOTE_CHARS: &str = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉\u{2329}\u{232a}⟦⟧";
/// The prefixes spaCy adds before the shared lists.
const PREFIX_CHARS: &str = "§%=—–";
/// Single-character currencies of spaCy's `_currency`.
const CURRENCY_CHARS: &str = "$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿";
/// spaCy's `_currency`, split off after a digit.
#[rustfmt::skip]
const CURRENCIES: &[&str] = &[
    "$", "£", "€", "¥", "฿", "US$", "C$", "A$", "₽", "﷼", "₴", "₠", "₡", "₢", "₣", "₤", "₥", "₦", "₧",
    "₨", "₩", "₪", "₫", "₭", "₮", "₯", "₰", "₱", "₲", "₳", "₵", "₶", "₷", "₸", "₹", "₺", "₻", "₼", "₾",
    "₿",
];
/// spaCy's `_units`, split off after a digit.
#[rustfmt::skip]
const UNITS: &[&str] = &[
    "km", "km²", "km³", "m", "m²", "m³", "dm", "dm²", "dm³", "cm", "cm²", "cm³", "mm", "mm²", "mm³",
    "ha", "µm", "nm", "yd", "in", "ft", "kg", "g", "mg", "µg", "t", "lb", "oz", "m/s", "km/h", "kmh",
    "mph", "hPa", "Pa", "mbar", "mb", "MB", "kb", "KB", "gb", "GB", "tb", "TB", "T", "G", "M", "K",
    "%", "км", "км²", "км³", "м", "м²", "м³", "дм", "дм²", "дм³", "см", "см²", "см³", "мм", "мм²",
    "мм³", "нм", "кг", "г", "мг", "м/с", "км/ч", "кПа", "Па", "мбар", "Кб", "КБ", "кб", "Мб", "МБ",
    "мб", "Гб", "ГБ", "гб", "Тб", "ТБ", "тбكم", "كم²", "كم³", "م", "م²", "م³", "سم", "سم²", "سم³",
    "مم", "مم²", "مم³", "كم", "غرام", "جرام", "جم", "كغ", "ملغ", "كوب", "اكواب",
];
/// spaCy's `_hyphens`, in its alternation order.
const HYPHENS: &[&str] = &["-", "–", "—", "--", "---", "——", "~"];

/// spaCy's `_other_symbols` (Unicode `So`), as sorted inclusive ranges.
#[rustfmt::skip]
const ICON_RANGES: &[(u32, u32)] = &[
    (0xA6, 0xA6), (0xA9, 0xA9), (0xAE, 0xAE), (0xB0, 0xB0), (0x482, 0x482), (0x58D, 0x58D),
    (0x58E, 0x58E), (0x60E, 0x60E), (0x60F, 0x60F), (0x6DE, 0x6DE), (0x6E9, 0x6E9), (0x6FD, 0x6FD),
    (0x6FE, 0x6FE), (0x7F6, 0x7F6), (0x9FA, 0x9FA), (0xB70, 0xB70), (0xBF3, 0xBF8), (0xBFA, 0xBFA),
    (0xC7F, 0xC7F), (0xD4F, 0xD4F), (0xD79, 0xD79), (0xF01, 0xF03), (0xF13, 0xF13), (0xF15, 0xF17),
    (0xF1A, 0xF1F), (0xF34, 0xF34), (0xF36, 0xF36), (0xF38, 0xF38), (0xFBE, 0xFC5), (0xFC7, 0xFCC),
    (0xFCE, 0xFCE), (0xFCF, 0xFCF), (0xFD5, 0xFD8), (0x109E, 0x109E), (0x109F, 0x109F),
    (0x1390, 0x1399), (0x1940, 0x1940), (0x19DE, 0x19FF), (0x1B61, 0x1B6A), (0x1B74, 0x1B7C),
    (0x2100, 0x2100), (0x2101, 0x2101), (0x2103, 0x2106), (0x2108, 0x2108), (0x2109, 0x2109),
    (0x2114, 0x2114), (0x2116, 0x2116), (0x2117, 0x2117), (0x211E, 0x2123), (0x2125, 0x2125),
    (0x2127, 0x2127), (0x2129, 0x2129), (0x212E, 0x212E), (0x213A, 0x213A), (0x213B, 0x213B),
    (0x214A, 0x214A), (0x214C, 0x214C), (0x214D, 0x214D), (0x214F, 0x214F), (0x218A, 0x218A),
    (0x218B, 0x218B), (0x2195, 0x2199), (0x219C, 0x219F), (0x21A1, 0x21A1), (0x21A2, 0x21A2),
    (0x21A4, 0x21A4), (0x21A5, 0x21A5), (0x21A7, 0x21AD), (0x21AF, 0x21CD), (0x21D0, 0x21D0),
    (0x21D1, 0x21D1), (0x21D3, 0x21D3), (0x21D5, 0x21F3), (0x2300, 0x2307), (0x230C, 0x231F),
    (0x2322, 0x2328), (0x232B, 0x237B), (0x237D, 0x239A), (0x23B4, 0x23DB), (0x23E2, 0x2426),
    (0x2440, 0x244A), (0x249C, 0x24E9), (0x2500, 0x25B6), (0x25B8, 0x25C0), (0x25C2, 0x25F7),
    (0x2600, 0x266E), (0x2670, 0x2767), (0x2794, 0x27BF), (0x2800, 0x28FF), (0x2B00, 0x2B2F),
    (0x2B45, 0x2B45), (0x2B46, 0x2B46), (0x2B4D, 0x2B73), (0x2B76, 0x2B95), (0x2B98, 0x2BC8),
    (0x2BCA, 0x2BFE), (0x2CE5, 0x2CEA), (0x2E80, 0x2E99), (0x2E9B, 0x2EF3), (0x2F00, 0x2FD5),
    (0x2FF0, 0x2FFB), (0x3004, 0x3004), (0x3012, 0x3012), (0x3013, 0x3013), (0x3020, 0x3020),
    (0x3036, 0x3036), (0x3037, 0x3037), (0x303E, 0x303E), (0x303F, 0x303F), (0x3190, 0x3190),
    (0x3191, 0x3191), (0x3196, 0x319F), (0x31C0, 0x31E3), (0x3200, 0x321E), (0x322A, 0x3247),
    (0x3250, 0x3250), (0x3260, 0x327F), (0x328A, 0x32B0), (0x32C0, 0x32FE), (0x3300, 0x33FF),
    (0x4DC0, 0x4DFF), (0xA490, 0xA4C6), (0xA828, 0xA82B), (0xA836, 0xA836), (0xA837, 0xA837),
    (0xA839, 0xA839), (0xAA77, 0xAA79), (0xFDFD, 0xFDFD), (0xFFE4, 0xFFE4), (0xFFE8, 0xFFE8),
    (0xFFED, 0xFFED), (0xFFEE, 0xFFEE), (0xFFFC, 0xFFFC), (0xFFFD, 0xFFFD), (0x10137, 0x1013F),
    (0x10179, 0x10189), (0x1018C, 0x1018E), (0x10190, 0x1019B), (0x101A0, 0x101A0),
    (0x101D0, 0x101FC), (0x10877, 0x10877), (0x10878, 0x10878), (0x10AC8, 0x10AC8),
    (0x1173F, 0x1173F), (0x16B3C, 0x16B3F), (0x16B45, 0x16B45), (0x1BC9C, 0x1BC9C),
    (0x1D000, 0x1D0F5), (0x1D100, 0x1D126), (0x1D129, 0x1D164), (0x1D16A, 0x1D16C),
    (0x1D183, 0x1D183), (0x1D184, 0x1D184), (0x1D18C, 0x1D1A9), (0x1D1AE, 0x1D1E8),
    (0x1D200, 0x1D241), (0x1D245, 0x1D245), (0x1D300, 0x1D356), (0x1D800, 0x1D9FF),
    (0x1DA37, 0x1DA3A), (0x1DA6D, 0x1DA74), (0x1DA76, 0x1DA83), (0x1DA85, 0x1DA85),
    (0x1DA86, 0x1DA86), (0x1ECAC, 0x1ECAC), (0x1F000, 0x1F02B), (0x1F030, 0x1F093),
    (0x1F0A0, 0x1F0AE), (0x1F0B1, 0x1F0BF), (0x1F0C1, 0x1F0CF), (0x1F0D1, 0x1F0F5),
    (0x1F110, 0x1F16B), (0x1F170, 0x1F1AC), (0x1F1E6, 0x1F202), (0x1F210, 0x1F23B),
    (0x1F240, 0x1F248), (0x1F250, 0x1F250), (0x1F251, 0x1F251), (0x1F260, 0x1F265),
    (0x1F300, 0x1F3FA), (0x1F400, 0x1F6D4), (0x1F6E0, 0x1F6EC), (0x1F6F0, 0x1F6F9),
    (0x1F700, 0x1F773), (0x1F780, 0x1F7D8), (0x1F800, 0x1F80B), (0x1F810, 0x1F847),
    (0x1F850, 0x1F859), (0x1F860, 0x1F887), (0x1F890, 0x1F8AD), (0x1F900, 0x1F90B),
    (0x1F910, 0x1F93E), (0x1F940, 0x1F970), (0x1F973, 0x1F976), (0x1F97A, 0x1F97A),
    (0x1F97C, 0x1F9A2), (0x1F9B0, 0x1F9B9), (0x1F9C0, 0x1F9C2), (0x1F9D0, 0x1F9FF),
    (0x1FA60, 0x1FA6D),
];

/// The non-ASCII part of datatrove's `PUNCTUATION_SET`.
#[rustfmt::skip]
const PUNCTUATION_NON_ASCII: &[&str] = &[
    "\u{AB}\u{B4}\u{BB}\u{589}\u{61D}\u{61E}\u{61F}\u{6D4}\u{700}\u{701}",
    "\u{702}\u{7F9}\u{837}\u{839}\u{83D}\u{83E}\u{964}\u{965}\u{104A}\u{104B}",
    "\u{1362}\u{1367}\u{1368}\u{166E}\u{1735}\u{1736}\u{17D4}\u{17D5}\u{17D6}\u{17D9}",
    "\u{17DA}\u{1803}\u{1809}\u{1944}\u{1945}\u{1AA8}\u{1AA9}\u{1AAA}\u{1AAB}\u{1B5A}",
    "\u{1B5B}\u{1B5E}\u{1B5F}\u{1B7D}\u{1B7E}\u{1C3B}\u{1C3C}\u{1C7E}\u{1C7F}\u{2013}",
    "\u{2014}\u{2019}\u{201C}\u{201D}\u{201E}\u{2026}\u{203C}\u{203D}\u{2047}\u{2048}",
    "\u{2049}\u{2236}\u{2501}\u{25BA}\u{2E2E}\u{2E3C}\u{2E53}\u{2E54}\u{3001}\u{3002}",
    "\u{3008}\u{3009}\u{300A}\u{300B}\u{300C}\u{300D}\u{3010}\u{3011}\u{A4FF}\u{A60E}",
    "\u{A60F}\u{A6F3}\u{A6F7}\u{A876}\u{A877}\u{A8CE}\u{A8CF}\u{A92F}\u{A9C8}\u{A9C9}",
    "\u{AA5D}\u{AA5E}\u{AA5F}\u{AAF0}\u{AAF1}\u{ABEB}\u{FE52}\u{FE56}\u{FE57}\u{FF01}",
    "\u{FF05}\u{FF08}\u{FF09}\u{FF0C}\u{FF0E}\u{FF11}\u{FF1A}\u{FF1B}\u{FF1F}\u{FF5E}",
    "\u{FF61}\u{10A56}\u{10A57}\u{10F55}\u{10F56}\u{10F57}\u{10F58}\u{10F59}\u{10F86}\u{10F87}",
    "\u{10F88}\u{10F89}\u{11047}\u{11048}\u{110BE}\u{110BF}\u{110C0}\u{110C1}\u{11141}\u{11142}",
    "\u{11143}\u{111C5}\u{111C6}\u{111CD}\u{111DE}\u{111DF}\u{11238}\u{11239}\u{1123B}\u{1123C}",
    "\u{112A9}\u{1144B}\u{1144C}\u{115C2}\u{115C3}\u{115C9}\u{115CA}\u{115CB}\u{115CC}\u{115CD}",
    "\u{115CE}\u{115CF}\u{115D0}\u{115D1}\u{115D2}\u{115D3}\u{115D4}\u{115D5}\u{115D6}\u{115D7}",
    "\u{11641}\u{11642}\u{1173C}\u{1173D}\u{1173E}\u{11944}\u{11946}\u{11A42}\u{11A43}\u{11A9B}",
    "\u{11A9C}\u{11C41}\u{11C42}\u{11EF7}\u{11EF8}\u{11F43}\u{11F44}\u{16A6E}\u{16A6F}\u{16AF5}",
    "\u{16B37}\u{16B38}\u{16B44}\u{16E98}\u{1BC9F}\u{1DA88}",
];

/// spaCy's English tokenizer exceptions: chunk -> byte lengths of its tokens.
struct Exceptions {
    /// xxh3 of the chunk -> (chunk, byte lengths of its tokens).
    map: HashedMap<(String, Vec<u8>)>,
    max_len: usize,
    /// One bit per exception, at [`Exceptions::bit`]: the tokenizer asks about every chunk and
    /// most of its affix-stripped parts, and nearly all are misses, which this rejects unhashed.
    bits: Box<[u64; 256]>,
}

impl Exceptions {
    /// A bit of `bits` for `s`, from its length and first, second and last bytes.
    fn bit(s: &[u8]) -> (usize, u64) {
        let key = (s.len() as u64) << 24
            | u64::from(s[0]) << 16
            | u64::from(s.get(1).copied().unwrap_or(0)) << 8
            | u64::from(s[s.len() - 1]);
        let h = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 50) as usize;
        (h >> 6, 1 << (h & 63))
    }

    fn get(&self, s: &str) -> Option<&[u8]> {
        if s.is_empty() || s.len() > self.max_len {
            return None;
        }
        let (word, bit) = Self::bit(s.as_bytes());
        if self.bits[word] & bit == 0 {
            return None;
        }
        match self.map.get(&xxh3_64(s.as_bytes())) {
            Some((key, lens)) if key == s => Some(lens),
            _ => None,
        }
    }
    fn contains(&self, s: &str) -> bool {
        self.get(s).is_some()
    }
}

fn exceptions() -> &'static Exceptions {
    static TABLE: OnceLock<Exceptions> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Exceptions {
            map: HashedMap::default(),
            max_len: 0,
            bits: Box::new([0; 256]),
        };
        let text: &'static str = include_str!("en_exceptions.tsv");
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            // The key is the line without its tabs.
            let key = line.replace('\t', "");
            let lens = line.split('\t').map(|t| t.len() as u8).collect();
            table.max_len = table.max_len.max(key.len());
            let (word, bit) = Exceptions::bit(key.as_bytes());
            table.bits[word] |= bit;
            table.map.insert(xxh3_64(key.as_bytes()), (key, lens));
        }
        table
    })
}

/// spaCy's `URL_MATCH` (without its private-IP exclusions).
fn url_match() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let host = r"[A-Za-z0-9\x{a1}-\x{ffff}]";
        let pattern = format!(
            r"^(?:[\w+\-.]{{2,}}://)?(?:\S+(?::\S*)?@)?(?:(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{{1,2}}|2[0-4]\d|25[0-5])){{2}}(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))|(?:(?:{host}[A-Za-z0-9\x{{a1}}-\x{{ffff}}_-]{{0,62}})?{host}\.)+[\p{{Ll}}\p{{Lo}}]{{2,63}})(?::\d{{2,5}})?(?:[/?#]\S*)?$"
        );
        Regex::new(&pattern).expect("URL pattern is valid")
    })
}

// ---------------------------------------------------------------------------------------------
// n-grams

/// A hasher for keys that are already xxh3 hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashedMap<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// The word n-grams of one document, for Gopher's repetition rules, compared as datatrove
/// compares them: as strings, joined by spaces (`" ".join`, for the top n-grams) or
/// concatenated (`"".join`, for the duplicated n-grams, where `["ab", "c"]` and `["a", "bc"]`
/// are the same n-gram).
///
/// Strings are hashed Rabin–Karp style, polynomials mod the prime 2^61 - 1: each word's bytes
/// once, then an n-gram's hash is its (n-1)-gram's extended by one word, `H(xy) = H(x)·B^|y| +
/// H(y)`. No n-gram is laid out or hashed byte by byte.
pub struct Ngrams<'w> {
    words: &'w Words,
    /// Per word: (hash, B^length) of its bytes followed by a space.
    spaced: Vec<(u64, u64)>,
    /// Per word: (hash, B^length) of its bytes.
    joined: Vec<(u64, u64)>,
    /// Hashes of the `n`-grams starting at each word, by the last `n` asked, of each layout.
    spaced_grams: (usize, Vec<u64>),
    joined_grams: (usize, Vec<u64>),
    table: Table,
}

impl<'w> Ngrams<'w> {
    /// Hashes `words`, split from `text`.
    pub fn new(text: &str, words: &'w Words) -> Self {
        let (mut spaced, mut joined) = (
            Vec::with_capacity(words.len()),
            Vec::with_capacity(words.len()),
        );
        for w in words.iter(text) {
            let (h, p) = poly::hash(w.as_bytes());
            joined.push((h, p));
            let space = u64::from(b' ') + 1;
            spaced.push((
                poly::add(poly::mul(h, poly::BASE), space),
                poly::mul(p, poly::BASE),
            ));
        }
        Ngrams {
            words,
            spaced,
            joined,
            spaced_grams: (0, Vec::new()),
            joined_grams: (0, Vec::new()),
            table: Table::default(),
        }
    }

    fn len(&self) -> usize {
        self.words.len()
    }

    fn chars(&self, i: usize, n: usize) -> usize {
        self.words.chars(i, n)
    }

    /// The hashes of the `n`-grams (`n` <= words) of one layout, extended from the last ones.
    fn grams(words: &[(u64, u64)], cache: &mut (usize, Vec<u64>), n: usize) {
        let (have, hashes) = cache;
        if *have > n {
            *have = 0;
        }
        if *have == 0 {
            hashes.clear();
            hashes.resize(words.len(), 0);
        }
        for k in *have..n {
            // Word `i + k` joins the gram at `i`; grams running past the end are not read.
            for (i, h) in hashes[..words.len() - k].iter_mut().enumerate() {
                let (word, power) = words[i + k];
                *h = poly::add(poly::mul(*h, power), word);
            }
        }
        *have = n;
    }

    /// datatrove's `find_top_duplicate` over `" ".join`ed n-grams: characters of the most
    /// frequent n-gram (ties: the first seen) times its count; 0 when there are fewer than `n`
    /// words.
    pub fn top_char_count(&mut self, n: usize) -> usize {
        if n == 0 || self.len() < n {
            return 0;
        }
        let count = self.len() - n + 1;
        Self::grams(&self.spaced, &mut self.spaced_grams, n);
        self.table.reset(count);
        let (mut best_count, mut best_first) = (0u32, 0u32);
        for (i, &hash) in self.spaced_grams.1[..count].iter().enumerate() {
            let (count, first) = self.table.slot(hash, i as u32);
            *count += 1;
            if *count > best_count || (*count == best_count && *first < best_first) {
                (best_count, best_first) = (*count, *first);
            }
        }
        (self.chars(best_first as usize, n) + n - 1) * best_count as usize
    }

    /// datatrove's `find_all_duplicate` over `"".join`ed n-grams: characters in n-grams that
    /// repeat an earlier one, skipping `n` words past each repeat so overlaps count once.
    pub fn duplicate_char_count(&mut self, n: usize) -> usize {
        if n == 0 || self.len() < n {
            return 0;
        }
        Self::grams(&self.joined, &mut self.joined_grams, n);
        self.table.reset(self.len() - n + 1);
        let (mut repeated, mut i) = (0, 0);
        while i + n <= self.len() {
            if self.table.insert(self.joined_grams.1[i]) {
                i += 1;
            } else {
                repeated += self.chars(i, n);
                i += n;
            }
        }
        repeated
    }
}

/// Arithmetic mod the Mersenne prime 2^61 - 1, for polynomial string hashes.
mod poly {
    const P: u64 = (1 << 61) - 1;
    /// The polynomial's base: any number in 2..P, fixed so that runs are reproducible.
    pub const BASE: u64 = 0x0F3A_5C2B_9D71_E6A5 % P;

    #[inline]
    pub fn add(a: u64, b: u64) -> u64 {
        let r = a + b;
        if r >= P {
            r - P
        } else {
            r
        }
    }

    #[inline]
    pub fn mul(a: u64, b: u64) -> u64 {
        reduce(u128::from(a) * u128::from(b))
    }

    /// `x` mod P, for `x` < 2^122.
    #[inline]
    fn reduce(x: u128) -> u64 {
        add((x as u64) & P, (x >> 61) as u64)
    }

    /// The hash of `bytes` (each counted as its value + 1, so that zeros count) and B^length.
    /// A word's terms are independent products with powers from a table, summed unreduced
    /// (each < 2^70, 64 of them < 2^76) and reduced once: no chain of multiplications.
    #[inline]
    pub fn hash(bytes: &[u8]) -> (u64, u64) {
        const TABLE: usize = 64;
        static POWERS: std::sync::OnceLock<[u64; TABLE + 1]> = std::sync::OnceLock::new();
        let powers = POWERS.get_or_init(|| {
            let mut p = [1; TABLE + 1];
            for k in 1..=TABLE {
                p[k] = mul(p[k - 1], BASE);
            }
            p
        });
        if bytes.len() > TABLE {
            let (mut h, mut p) = (0, 1);
            for &b in bytes {
                h = add(mul(h, BASE), u64::from(b) + 1);
                p = mul(p, BASE);
            }
            return (h, p);
        }
        let last = bytes.len().saturating_sub(1);
        let sum: u128 = bytes
            .iter()
            .enumerate()
            .map(|(j, &b)| u128::from(u64::from(b) + 1) * u128::from(powers[last - j]))
            .sum();
        (reduce(sum), powers[bytes.len()])
    }
}

/// datatrove's `find_duplicates`: how many items repeat an earlier one, and their characters.
pub fn duplicates(items: &[&str]) -> (usize, usize) {
    let mut seen = Table::default();
    seen.reset(items.len());
    let (mut count, mut chars) = (0, 0);
    for item in items {
        if !seen.insert(xxh3_64(item.as_bytes())) {
            count += 1;
            chars += char_len(item);
        }
    }
    (count, chars)
}

/// A set of xxh3 hashes with a count and a first position each: open addressing, linear
/// probing, cleared and reused for each n-gram length. A document's n-grams fit in a few
/// kilobytes, where this beats a general-purpose map by skipping its hashing and bookkeeping;
/// the keys sit apart from the counts so that probing reads 8 bytes a slot.
#[derive(Default)]
struct Table {
    /// Key 0 marks an empty slot (a hash of 0 is stored as 1).
    keys: Vec<u64>,
    /// (count, first position) of the key in the same slot, set when the key is put there:
    /// never read for an empty slot, so never cleared.
    counts: Vec<(u32, u32)>,
}

impl Table {
    /// Empties the table, with room for `n` keys (at most half full: short probes).
    fn reset(&mut self, n: usize) {
        let cap = (2 * n).next_power_of_two().max(16);
        self.keys.clear();
        self.keys.resize(cap, 0);
        self.counts.resize(cap, (0, 0));
    }

    /// The slot of `hash`, and whether it was empty (then `hash` is put there).
    #[inline]
    fn find(&mut self, hash: u64) -> (usize, bool) {
        let key = hash.max(1);
        let mask = self.keys.len() - 1;
        let mut i = key as usize & mask;
        loop {
            match self.keys[i] {
                k if k == key => return (i, false),
                0 => break,
                _ => i = (i + 1) & mask,
            }
        }
        self.keys[i] = key;
        (i, true)
    }

    /// The (count, first position) of `hash`: found, or new with count 0 and position `at`.
    #[inline]
    fn slot(&mut self, hash: u64, at: u32) -> &mut (u32, u32) {
        let (i, new) = self.find(hash);
        if new {
            self.counts[i] = (0, at);
        }
        &mut self.counts[i]
    }

    /// Adds `hash` (without a count); whether it was new.
    #[inline]
    fn insert(&mut self, hash: u64) -> bool {
        self.find(hash).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! splits {
        ($text:expr, [$($w:expr),* $(,)?]) => {
            assert_eq!(words($text), vec![$($w),*] as Vec<&str>, "{:?}", $text);
        };
    }

    #[test]
    fn splits_as_spacy_english() {
        splits!("Hello, world.", ["Hello", ",", "world", "."]);
        splits!("I don't know.", ["I", "do", "n't", "know", "."]);
        splits!(
            "John's car (red) costs $5.",
            ["John", "'s", "car", "(", "red", ")", "costs", "$", "5", "."]
        );
        splits!(
            "e.g. the U.S. and Mr. Smith",
            ["e.g.", "the", "U.S.", "and", "Mr.", "Smith"]
        );
        splits!(
            "well-known 10km 3-4 a/b",
            ["well", "-", "known", "10", "km", "3", "-", "4", "a", "/", "b"]
        );
        splits!(
            "see www.example.com/a-b now...",
            ["see", "www.example.com/a-b", "now", "..."]
        );
        splits!(
            "end.Next \"quoted\" word",
            ["end", ".", "Next", "\"", "quoted", "\"", "word"]
        );
        splits!("NASA. A. 10pm", ["NASA", ".", "A.", "10", "pm"]);
        splits!(
            "(see below): z.B. (Mr.)",
            ["(", "see", "below", "):", "z.", "B.", "(", "Mr.", ")"]
        );
        splits!("  \n\t ", []);
    }

    #[test]
    fn plain_letters_take_no_affix_or_infix() {
        // The fast path of `split_chunk` must give what the rules give: no letter is a prefix,
        // a suffix or an infix, alone or between letters.
        for c in (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| is_plain_letter(c))
        {
            let s = format!("a{c}{c}a");
            let mut out = Vec::new();
            split_affixes(&s[1..1 + c.len_utf8()], &mut out);
            split_affixes(&s, &mut out);
            assert_eq!(out, [&s[1..1 + c.len_utf8()], &s], "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn words_count_once_for_every_filter() {
        let text = "Hello, world.\n\n“Don't” — 3 items...\nZ.B. 10km";
        let w = Words::new(text);
        assert_eq!(w.iter(text).collect::<Vec<_>>(), words(text));
        let gopher = |t: &str| words(t).iter().filter(|w| !is_symbol_word(w)).count();
        assert_eq!(w.counted(), gopher(text));
        assert_eq!(
            w.alphabetic(),
            words(text)
                .iter()
                .filter(|w| w.chars().any(is_alpha))
                .count()
        );
        let (mut at, mut next) = (0, 0);
        for line in text.split('\n') {
            at += line.len();
            assert_eq!(w.counted_until(&mut next, at), gopher(line), "{line:?}");
            at += 1;
        }
        assert_eq!(w.chars(0, 2), "Hello,".len());
    }

    #[test]
    fn memo_follows_the_text() {
        let mut memo = WordsMemo::default();
        assert_eq!(memo.of("one two").len(), 2);
        assert_eq!(memo.of("one two").len(), 2);
        // A rewritten text of the same length is split again.
        assert_eq!(memo.of("one-two").len(), 3);
        assert_eq!(memo.of("").len(), 0);
    }

    #[test]
    fn python_string_helpers() {
        assert_eq!(
            py_splitlines("a\r\nb\rc\n\nd\n").collect::<Vec<_>>(),
            ["a", "b", "c", "", "d"]
        );
        assert_eq!(py_splitlines("").count(), 0);
        assert_eq!(py_strip("\u{1f} x \u{a0}"), "x");
        assert!(is_symbol_word("...") && is_symbol_word("—") && !is_symbol_word("a."));
        assert_eq!(char_len("héllo"), 5);
    }

    #[test]
    fn ngram_counts_match_datatrove() {
        let text = "a b a b a b";
        let w = Words::new(text);
        let mut g = Ngrams::new(text, &w);
        // "a b" x3 = 3 * 3 chars.
        assert_eq!(g.top_char_count(2), 9);
        // 2-grams "ab","ba","ab"(dup at 2 -> +2, jump to 4) ... "ab" at 4 dup -> +2.
        assert_eq!(g.duplicate_char_count(2), 4);
        assert_eq!(g.top_char_count(7), 0);
        // Asked out of order, the hashes start over.
        assert_eq!(g.top_char_count(2), 9);
        // As strings: `"".join` makes ["ab", "c", ...] and ["a", "bc", ...] the same 5-gram,
        // `" ".join` tells "d e" (twice, first of the most frequent) from "ab c".
        let text = "ab c d e f g x a bc d e f g";
        let w = Words::new(text);
        let mut g = Ngrams::new(text, &w);
        assert_eq!(g.duplicate_char_count(5), "abcdef".len());
        assert_eq!(g.top_char_count(2), 2 * "d e".len());
        assert_eq!(duplicates(&["x", "y", "x", "x"]), (2, 2));
    }
}
