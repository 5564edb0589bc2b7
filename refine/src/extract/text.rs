//! Text of the page: character references decoded, whitespace collapsed.

/// Named character references that web pages commonly use (sorted by name for binary
/// search): markup escapes, spaces, punctuation, currency, Latin letters, Greek and math.
/// Unknown names are kept as written.
const ENTITIES: &[(&[u8], char)] = &[
    (b"AElig", '\u{c6}'),
    (b"Aacute", '\u{c1}'),
    (b"Acirc", '\u{c2}'),
    (b"Agrave", '\u{c0}'),
    (b"Aring", '\u{c5}'),
    (b"Atilde", '\u{c3}'),
    (b"Auml", '\u{c4}'),
    (b"Ccedil", '\u{c7}'),
    (b"Dagger", '\u{2021}'),
    (b"ETH", '\u{d0}'),
    (b"Eacute", '\u{c9}'),
    (b"Ecirc", '\u{ca}'),
    (b"Egrave", '\u{c8}'),
    (b"Euml", '\u{cb}'),
    (b"Iacute", '\u{cd}'),
    (b"Icirc", '\u{ce}'),
    (b"Igrave", '\u{cc}'),
    (b"Iuml", '\u{cf}'),
    (b"Ntilde", '\u{d1}'),
    (b"OElig", '\u{152}'),
    (b"Oacute", '\u{d3}'),
    (b"Ocirc", '\u{d4}'),
    (b"Ograve", '\u{d2}'),
    (b"Omega", '\u{3a9}'),
    (b"Oslash", '\u{d8}'),
    (b"Otilde", '\u{d5}'),
    (b"Ouml", '\u{d6}'),
    (b"Prime", '\u{2033}'),
    (b"Scaron", '\u{160}'),
    (b"THORN", '\u{de}'),
    (b"Uacute", '\u{da}'),
    (b"Ucirc", '\u{db}'),
    (b"Ugrave", '\u{d9}'),
    (b"Uuml", '\u{dc}'),
    (b"Yacute", '\u{dd}'),
    (b"Yuml", '\u{178}'),
    (b"aacute", '\u{e1}'),
    (b"acirc", '\u{e2}'),
    (b"acute", '\u{b4}'),
    (b"aelig", '\u{e6}'),
    (b"agrave", '\u{e0}'),
    (b"alefsym", '\u{2135}'),
    (b"alpha", '\u{3b1}'),
    (b"amp", '\u{26}'),
    (b"and", '\u{2227}'),
    (b"ang", '\u{2220}'),
    (b"aring", '\u{e5}'),
    (b"asymp", '\u{2248}'),
    (b"atilde", '\u{e3}'),
    (b"auml", '\u{e4}'),
    (b"bdquo", '\u{201e}'),
    (b"beta", '\u{3b2}'),
    (b"brvbar", '\u{a6}'),
    (b"bull", '\u{2022}'),
    (b"cap", '\u{2229}'),
    (b"ccedil", '\u{e7}'),
    (b"cedil", '\u{b8}'),
    (b"cent", '\u{a2}'),
    (b"circ", '\u{2c6}'),
    (b"clubs", '\u{2663}'),
    (b"cong", '\u{2245}'),
    (b"copy", '\u{a9}'),
    (b"cup", '\u{222a}'),
    (b"curren", '\u{a4}'),
    (b"dArr", '\u{21d3}'),
    (b"dagger", '\u{2020}'),
    (b"darr", '\u{2193}'),
    (b"deg", '\u{b0}'),
    (b"delta", '\u{3b4}'),
    (b"diams", '\u{2666}'),
    (b"divide", '\u{f7}'),
    (b"eacute", '\u{e9}'),
    (b"ecirc", '\u{ea}'),
    (b"egrave", '\u{e8}'),
    (b"empty", '\u{2205}'),
    (b"emsp", '\u{2003}'),
    (b"ensp", '\u{2002}'),
    (b"equiv", '\u{2261}'),
    (b"eth", '\u{f0}'),
    (b"euml", '\u{eb}'),
    (b"euro", '\u{20ac}'),
    (b"exist", '\u{2203}'),
    (b"fnof", '\u{192}'),
    (b"forall", '\u{2200}'),
    (b"frac12", '\u{bd}'),
    (b"frac14", '\u{bc}'),
    (b"frac34", '\u{be}'),
    (b"frasl", '\u{2044}'),
    (b"gamma", '\u{3b3}'),
    (b"ge", '\u{2265}'),
    (b"gt", '\u{3e}'),
    (b"hArr", '\u{21d4}'),
    (b"harr", '\u{2194}'),
    (b"hearts", '\u{2665}'),
    (b"hellip", '\u{2026}'),
    (b"iacute", '\u{ed}'),
    (b"icirc", '\u{ee}'),
    (b"iexcl", '\u{a1}'),
    (b"igrave", '\u{ec}'),
    (b"image", '\u{2111}'),
    (b"infin", '\u{221e}'),
    (b"int", '\u{222b}'),
    (b"iquest", '\u{bf}'),
    (b"isin", '\u{2208}'),
    (b"iuml", '\u{ef}'),
    (b"lArr", '\u{21d0}'),
    (b"lambda", '\u{3bb}'),
    (b"lang", '\u{2329}'),
    (b"laquo", '\u{ab}'),
    (b"larr", '\u{2190}'),
    (b"lceil", '\u{2308}'),
    (b"ldquo", '\u{201c}'),
    (b"le", '\u{2264}'),
    (b"lfloor", '\u{230a}'),
    (b"lowast", '\u{2217}'),
    (b"loz", '\u{25ca}'),
    (b"lsaquo", '\u{2039}'),
    (b"lsquo", '\u{2018}'),
    (b"lt", '\u{3c}'),
    (b"macr", '\u{af}'),
    (b"mdash", '\u{2014}'),
    (b"micro", '\u{b5}'),
    (b"middot", '\u{b7}'),
    (b"minus", '\u{2212}'),
    (b"mu", '\u{3bc}'),
    (b"nabla", '\u{2207}'),
    (b"nbsp", '\u{a0}'),
    (b"ndash", '\u{2013}'),
    (b"ne", '\u{2260}'),
    (b"ni", '\u{220b}'),
    (b"not", '\u{ac}'),
    (b"notin", '\u{2209}'),
    (b"nsub", '\u{2284}'),
    (b"ntilde", '\u{f1}'),
    (b"oacute", '\u{f3}'),
    (b"ocirc", '\u{f4}'),
    (b"oelig", '\u{153}'),
    (b"ograve", '\u{f2}'),
    (b"oline", '\u{203e}'),
    (b"omega", '\u{3c9}'),
    (b"oplus", '\u{2295}'),
    (b"or", '\u{2228}'),
    (b"ordf", '\u{aa}'),
    (b"ordm", '\u{ba}'),
    (b"oslash", '\u{f8}'),
    (b"otilde", '\u{f5}'),
    (b"otimes", '\u{2297}'),
    (b"ouml", '\u{f6}'),
    (b"para", '\u{b6}'),
    (b"part", '\u{2202}'),
    (b"permil", '\u{2030}'),
    (b"perp", '\u{22a5}'),
    (b"pi", '\u{3c0}'),
    (b"plusmn", '\u{b1}'),
    (b"pound", '\u{a3}'),
    (b"prime", '\u{2032}'),
    (b"prod", '\u{220f}'),
    (b"prop", '\u{221d}'),
    (b"quot", '\u{22}'),
    (b"rArr", '\u{21d2}'),
    (b"radic", '\u{221a}'),
    (b"rang", '\u{232a}'),
    (b"raquo", '\u{bb}'),
    (b"rarr", '\u{2192}'),
    (b"rceil", '\u{2309}'),
    (b"rdquo", '\u{201d}'),
    (b"real", '\u{211c}'),
    (b"reg", '\u{ae}'),
    (b"rfloor", '\u{230b}'),
    (b"rsaquo", '\u{203a}'),
    (b"rsquo", '\u{2019}'),
    (b"sbquo", '\u{201a}'),
    (b"scaron", '\u{161}'),
    (b"sdot", '\u{22c5}'),
    (b"sect", '\u{a7}'),
    (b"shy", '\u{ad}'),
    (b"sigma", '\u{3c3}'),
    (b"sim", '\u{223c}'),
    (b"spades", '\u{2660}'),
    (b"sub", '\u{2282}'),
    (b"sube", '\u{2286}'),
    (b"sum", '\u{2211}'),
    (b"sup", '\u{2283}'),
    (b"sup2", '\u{b2}'),
    (b"sup3", '\u{b3}'),
    (b"supe", '\u{2287}'),
    (b"szlig", '\u{df}'),
    (b"there4", '\u{2234}'),
    (b"theta", '\u{3b8}'),
    (b"thinsp", '\u{2009}'),
    (b"thorn", '\u{fe}'),
    (b"tilde", '\u{2dc}'),
    (b"times", '\u{d7}'),
    (b"trade", '\u{2122}'),
    (b"uArr", '\u{21d1}'),
    (b"uacute", '\u{fa}'),
    (b"uarr", '\u{2191}'),
    (b"ucirc", '\u{fb}'),
    (b"ugrave", '\u{f9}'),
    (b"uml", '\u{a8}'),
    (b"uuml", '\u{fc}'),
    (b"weierp", '\u{2118}'),
    (b"yacute", '\u{fd}'),
    (b"yen", '\u{a5}'),
    (b"yuml", '\u{ff}'),
    (b"zwj", '\u{200d}'),
    (b"zwnj", '\u{200c}'),
    (b"zwsp", '\u{200b}'),
];

/// Appends `raw` to `out`, decoding character references and collapsing runs of whitespace
/// (including no-break spaces) to one space; `space` carries a pending space across calls so
/// inline elements join words correctly.
pub(crate) fn push_text(out: &mut String, raw: &str, space: &mut bool) {
    let bytes = raw.as_bytes();
    let mut i = 0;
    let mut run = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'&' || c.is_ascii_whitespace() {
            flush(out, &raw[run..i], space);
            if c == b'&' {
                let (ch, len) = reference(&bytes[i..]);
                match ch {
                    Some(ch) if ch.is_whitespace() => *space = true,
                    Some(ch) if is_invisible(ch) => {}
                    Some(ch) => {
                        let mut buf = [0u8; 4];
                        flush(out, ch.encode_utf8(&mut buf), space);
                    }
                    None => flush(out, &raw[i..i + len], space),
                }
                i += len;
            } else {
                *space = true;
                i += 1;
            }
            run = i;
        } else if c >= 0x80 {
            // Unicode spaces (no-break, em, ideographic) count as whitespace too.
            let ch = raw[i..].chars().next().unwrap_or(' ');
            let len = ch.len_utf8();
            if ch.is_whitespace() || is_invisible(ch) {
                flush(out, &raw[run..i], space);
                *space |= ch.is_whitespace();
                run = i + len;
            }
            i += len;
        } else {
            i += 1;
        }
    }
    flush(out, &raw[run..], space);
}

fn is_invisible(ch: char) -> bool {
    matches!(ch, '\u{ad}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{feff}')
}

/// Appends a run without whitespace, preceded by the pending space if any.
fn flush(out: &mut String, s: &str, space: &mut bool) {
    if s.is_empty() {
        return;
    }
    if *space && !out.is_empty() && !out.ends_with(['\n', ' ']) {
        out.push(' ');
    }
    *space = false;
    out.push_str(s);
}

/// Decodes the character reference at the start of `s` (which starts with `&`): the
/// character (`None` if it is not one) and how many bytes it spans.
fn reference(s: &[u8]) -> (Option<char>, usize) {
    if s.get(1) == Some(&b'#') {
        let hex = matches!(s.get(2), Some(b'x' | b'X'));
        let start = if hex { 3 } else { 2 };
        let mut end = start;
        let mut value: u32 = 0;
        while end < s.len() && end - start < 8 {
            let d = match (hex, s[end]) {
                (_, c @ b'0'..=b'9') => (c - b'0') as u32,
                (true, c @ b'a'..=b'f') => (c - b'a' + 10) as u32,
                (true, c @ b'A'..=b'F') => (c - b'A' + 10) as u32,
                _ => break,
            };
            value = value * if hex { 16 } else { 10 } + d;
            end += 1;
        }
        if end == start {
            return (None, 1);
        }
        let len = if s.get(end) == Some(&b';') { end + 1 } else { end };
        // Windows-1252 code points that pages send as numeric references.
        let value = match value {
            0x91 | 0x92 => 0x2019,
            0x93 | 0x94 => 0x201d,
            0x96 => 0x2013,
            0x97 => 0x2014,
            0 => 0xfffd,
            _ => value,
        };
        return (Some(char::from_u32(value).unwrap_or('\u{fffd}')), len);
    }
    let mut end = 1;
    while end < s.len() && end <= 9 && s[end].is_ascii_alphanumeric() {
        end += 1;
    }
    match ENTITIES.binary_search_by(|(name, _)| (*name).cmp(&s[1..end])) {
        Ok(k) => {
            let len = if s.get(end) == Some(&b';') { end + 1 } else { end };
            (Some(ENTITIES[k].1), len)
        }
        Err(_) => (None, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&str]) -> String {
        let mut out = String::new();
        let mut space = false;
        for p in parts {
            push_text(&mut out, p, &mut space);
        }
        out
    }

    #[test]
    fn references_and_whitespace() {
        assert_eq!(decode(&["  a&amp;b &lt;c&gt;\n\t d&nbsp;&nbsp;e "]), "a&b <c> d e");
        assert_eq!(decode(&["caf&eacute; &#233;&#xE9;&#8217;s &unknown; &"]), "café éé’s &unknown; &");
        assert_eq!(decode(&["no", "join ", "<", " x"]), "nojoin < x");
        assert_eq!(decode(&["soft&shy;hy\u{ad}phen\u{a0}x"]), "softhyphen x");
        assert_eq!(decode(&["&#150;&#x2014;&#0;&#99999999;"]), "–—\u{fffd}\u{fffd}");
    }

    #[test]
    fn entity_table_is_sorted() {
        assert!(ENTITIES.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
