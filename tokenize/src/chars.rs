//! Character classes of Falcon's pre-tokenizer, as the reference implementation defines them.
//!
//! `\p{L}`, `\p{N}` and `\s` come from `regex-syntax`, the Unicode tables behind the
//! `fancy-regex` engine that HuggingFace `tokenizers` runs the GPT-2 pattern with; punctuation
//! is `tokenizers`' own `is_punc` (ASCII punctuation or a Unicode `P*` category, from the
//! `unicode_categories` crate it uses). One byte of flags per code point (1.1 MB, built once)
//! makes every lookup a load.

use std::sync::LazyLock;

use regex_syntax::hir::{Class, HirKind};
use unicode_categories::UnicodeCategories;

/// `\p{L}`.
pub const LETTER: u8 = 1;
/// `\p{N}`.
pub const NUMBER: u8 = 2;
/// `\s` (Unicode `White_Space`).
pub const SPACE: u8 = 4;
/// `tokenizers`' `is_punc`.
pub const PUNCT: u8 = 8;

static TABLE: LazyLock<Vec<u8>> = LazyLock::new(build);

/// The class flags of `c`.
#[inline]
pub fn flags(c: char) -> u8 {
    TABLE[c as usize]
}

fn build() -> Vec<u8> {
    let mut table = vec![0u8; 0x11_0000];
    for (pattern, flag) in [(r"\p{L}", LETTER), (r"\p{N}", NUMBER), (r"\s", SPACE)] {
        for (lo, hi) in unicode_ranges(pattern) {
            for cp in lo..=hi {
                table[cp as usize] |= flag;
            }
        }
    }
    for cp in 0..0x11_0000u32 {
        if let Some(c) = char::from_u32(cp) {
            if c.is_ascii_punctuation() || c.is_punctuation() {
                table[cp as usize] |= PUNCT;
            }
        }
    }
    table
}

/// The code point ranges of a Unicode class pattern; the patterns are constants that parse.
fn unicode_ranges(pattern: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::Parser::new()
        .parse(pattern)
        .expect("constant class pattern parses");
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => class
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        other => unreachable!("{pattern} is a Unicode class, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_unicode() {
        assert_eq!(flags('a'), LETTER);
        assert_eq!(flags('é'), LETTER);
        assert_eq!(flags('中'), LETTER);
        assert_eq!(flags('7'), NUMBER);
        assert_eq!(flags('²'), NUMBER);
        assert_eq!(flags(' '), SPACE);
        assert_eq!(flags('\u{3000}'), SPACE);
        assert_eq!(flags('\n'), SPACE);
        assert_eq!(flags(','), PUNCT);
        // ASCII symbols count as punctuation for `tokenizers`, though Unicode says `Sm`/`Sc`.
        assert_eq!(flags('$'), PUNCT);
        assert_eq!(flags('+'), PUNCT);
        assert_eq!(flags('«'), PUNCT);
        assert_eq!(flags('€'), 0);
        assert_eq!(flags('🦙'), 0);
    }
}
