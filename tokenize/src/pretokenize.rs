//! Falcon's pre-tokenizer, hand-written over bytes.
//!
//! `tokenizer.json` chains four steps; each one splits the pieces of the one before:
//! 1. `Punctuation(Contiguous)`: runs of punctuation and runs of the rest ([`crate::chars`]).
//! 2. `ByteLevel(add_prefix_space=false, use_regex=true)`: GPT-2's pattern
//!    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, then every
//!    byte becomes one character of the byte-level alphabet. The contractions never match
//!    here: step 1 already cut `'` away from letters.
//! 3. `Digits(individual_digits=false)`: runs of `char::is_numeric` characters *of the
//!    byte-level string*. Besides `0-9`, the bytes 0xB2 0xB3 0xB9 0xBC 0xBD 0xBE map to
//!    `² ³ ¹ ¼ ½ ¾`, which are numeric too, so UTF-8 continuation bytes can split a character
//!    (`ò` = C3 B2 gives `Ã` | `²`): the reference does that, so we do.
//! 4. `Split("[0-9][0-9][0-9]", Isolated)`: leftmost non-overlapping digit triples.
//!
//! Steps 3 and 4 work on bytes because the byte-level alphabet maps each byte to one
//! character. No offsets, no allocation: pieces are handed to a callback as byte slices of
//! the input.

use crate::chars::{flags, LETTER, NUMBER, PUNCT, SPACE};

/// Calls `emit` with each pre-token of `text`, in order.
pub fn pretokenize(text: &str, emit: &mut impl FnMut(&[u8])) {
    let mut start = 0;
    let mut run_punct = None;
    for (i, c) in text.char_indices() {
        let punct = flags(c) & PUNCT != 0;
        if run_punct != Some(punct) {
            if i > start {
                gpt2_split(&text[start..i], emit);
            }
            start = i;
            run_punct = Some(punct);
        }
    }
    if start < text.len() {
        gpt2_split(&text[start..], emit);
    }
}

/// The class GPT-2's alternatives test, in their order: letters, numbers, whitespace, other.
#[inline]
fn kind(c: char) -> u8 {
    let f = flags(c);
    if f & LETTER != 0 {
        LETTER
    } else if f & NUMBER != 0 {
        NUMBER
    } else if f & SPACE != 0 {
        SPACE
    } else {
        0
    }
}

/// Step 2 on one segment of step 1 (the lookahead sees the segment's end as the text's end).
fn gpt2_split(seg: &str, emit: &mut impl FnMut(&[u8])) {
    let bytes = seg.as_bytes();
    let n = bytes.len();
    let char_at = |i: usize| seg[i..].chars().next().map(|c| (c, c.len_utf8()));
    // End of the run of `k`-class characters starting at `i`.
    let run_end = |mut i: usize, k: u8| {
        while let Some((c, len)) = char_at(i) {
            if kind(c) != k {
                break;
            }
            i += len;
        }
        i
    };
    let mut i = 0;
    while i < n {
        let Some((c, len)) = char_at(i) else { break };
        let k = kind(c);
        let mut end = None;
        if c == ' ' {
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space joins the run after it.
            if let Some((d, _)) = char_at(i + 1) {
                let kd = kind(d);
                if kd != SPACE {
                    end = Some(run_end(i + 1, kd));
                }
            }
        } else if k != SPACE {
            end = Some(run_end(i, k));
        }
        let end = end.unwrap_or_else(|| {
            // `\s+(?!\S)`: the whitespace run, less its last character when a non-space
            // follows; `\s+` takes a lone whitespace character before a non-space.
            let e = run_end(i, SPACE);
            if e == n {
                return e;
            }
            let last = seg[..e].char_indices().next_back().map_or(i, |(j, _)| j);
            if last > i {
                last
            } else {
                i + len
            }
        });
        digits_split(&bytes[i..end], emit);
        i = end;
    }
}

/// Whether byte `b` maps to a `char::is_numeric` character of the byte-level alphabet.
#[inline]
fn numeric_byte(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, 0xB2 | 0xB3 | 0xB9 | 0xBC..=0xBE)
}

/// Step 3: contiguous runs of numeric and of other bytes.
fn digits_split(piece: &[u8], emit: &mut impl FnMut(&[u8])) {
    let mut start = 0;
    for i in 1..piece.len() {
        if numeric_byte(piece[i]) != numeric_byte(piece[i - 1]) {
            triples_split(&piece[start..i], emit);
            start = i;
        }
    }
    if start < piece.len() {
        triples_split(&piece[start..], emit);
    }
}

/// Step 4: `[0-9][0-9][0-9]` matches isolated, left to right.
fn triples_split(piece: &[u8], emit: &mut impl FnMut(&[u8])) {
    // After step 3 a piece is all numeric or all not: only numeric ones hold triples.
    if piece.len() < 3 || !numeric_byte(piece[0]) {
        emit(piece);
        return;
    }
    let (mut start, mut i) = (0, 0);
    while i + 3 <= piece.len() {
        if piece[i..i + 3].iter().all(u8::is_ascii_digit) {
            if i > start {
                emit(&piece[start..i]);
            }
            emit(&piece[i..i + 3]);
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < piece.len() {
        emit(&piece[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        pretokenize(text, &mut |p| {
            out.push(String::from_utf8_lossy(p).into_owned())
        });
        out
    }

    macro_rules! splits {
        ($text:expr => [$($p:expr),*]) => {
            assert_eq!(pieces($text), vec![$($p.to_string()),*], "{:?}", $text);
        };
    }

    #[test]
    fn gpt2_pattern() {
        splits!("Hello world" => ["Hello", " world"]);
        splits!("  Hello" => [" ", " Hello"]);
        splits!("a \n\nb" => ["a", " \n", "\n", "b"]);
        splits!("trailing   " => ["trailing", "   "]);
        splits!("x \u{3000}y" => ["x", " ", "\u{3000}", "y"]);
        splits!(" 🦙🦙 x" => [" 🦙🦙", " x"]);
    }

    #[test]
    fn punctuation_runs_split_first() {
        splits!("don't" => ["don", "'", "t"]);
        splits!("Hello, world!" => ["Hello", ",", " world", "!"]);
        splits!("a ...b" => ["a", " ", "...", "b"]);
        splits!("$+=" => ["$+="]);
    }

    #[test]
    fn digits_and_triples() {
        splits!("12345" => ["123", "45"]);
        splits!("abc1234x" => ["abc", "123", "4", "x"]);
        splits!(" 1234567" => [" ", "123", "456", "7"]);
    }

    #[test]
    fn numeric_continuation_bytes_split_characters() {
        // ò is C3 B2; B2 maps to `²`, numeric, so Digits cuts the character in two.
        let mut out: Vec<Vec<u8>> = Vec::new();
        pretokenize("ò", &mut |p| out.push(p.to_vec()));
        assert_eq!(out, vec![vec![0xC3], vec![0xB2]]);
    }
}
