//! Finding the main content of a parsed page and rendering it as text.
//!
//! The method is Readability's (Mozilla `Readability.js`, the algorithm behind
//! readability-lxml, which trafilatura uses as a fallback), on a flat tree and in a few
//! linear passes:
//! 1. *Prune*: elements that never hold the main text (scripts, navigation, forms controls,
//!    hidden elements) and those whose `class`/`id` name boilerplate (menus, footers,
//!    comments, share bars, ads, related links...) are dropped with their subtrees.
//! 2. *Score*: every block with at least 25 characters of its own inline text is a
//!    paragraph worth `1 + commas + min(chars / 100, 3)`, given to its container, half to
//!    the grandparent and a third per level above; containers start from a tag prior and a
//!    class/id weight (+-25), and end scaled by `1 - link density`.
//! 3. *Select*: the best container plus those siblings that score near it or read like
//!    prose.
//! 4. *Clean and render*: inside the selection, lists, tables and divisions that look like
//!    link farms, image strips or form debris are skipped; paragraphs, headings, list items
//!    and table rows come out one per line, in reading order, with the `[src, alt]` of the
//!    images kept. The `h1` (the page title, not part of the article body) is left out.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::html::{Dom, Event, Tag};
use super::text::push_text;

/// Minimum inline text (chars) for a block to count as a paragraph.
const MIN_PARAGRAPH_CHARS: u32 = 25;

/// What a `class`/`id` value says about an element (bit flags).
const NEGATIVE: u8 = 1;
const POSITIVE: u8 = 2;
const UNLIKELY: u8 = 4;
const MAYBE: u8 = 8;

/// Readability's class/id vocabularies: `negative`, `positive`, `unlikelyCandidates` and
/// `okMaybeItsACandidate`, as substrings, one automaton for all of them.
const PATTERNS: &[(&str, u8)] = &[
    ("-ad-", NEGATIVE | UNLIKELY),
    ("ad-break", UNLIKELY),
    ("agegate", UNLIKELY),
    ("ai2html", UNLIKELY),
    ("banner", NEGATIVE | UNLIKELY),
    ("breadcrumb", UNLIKELY),
    ("combx", NEGATIVE | UNLIKELY),
    ("comment", NEGATIVE | UNLIKELY),
    ("com-", NEGATIVE),
    ("community", UNLIKELY),
    ("contact", NEGATIVE),
    ("cookie", NEGATIVE | UNLIKELY),
    ("cover-wrap", UNLIKELY),
    ("disqus", UNLIKELY),
    ("extra", UNLIKELY),
    ("foot", NEGATIVE),
    ("footer", UNLIKELY),
    ("gdpr", NEGATIVE | UNLIKELY),
    ("header", UNLIKELY),
    ("hidden", NEGATIVE),
    ("legends", UNLIKELY),
    ("masthead", NEGATIVE),
    ("media", NEGATIVE),
    ("menu", UNLIKELY),
    ("meta", NEGATIVE),
    ("newsletter", NEGATIVE | UNLIKELY),
    ("outbrain", NEGATIVE),
    ("pagination", UNLIKELY | POSITIVE),
    ("pager", UNLIKELY),
    ("popup", UNLIKELY),
    ("promo", NEGATIVE),
    ("related", NEGATIVE | UNLIKELY),
    ("remark", UNLIKELY),
    ("replies", UNLIKELY),
    ("rss", UNLIKELY),
    ("scroll", NEGATIVE),
    ("share", NEGATIVE),
    ("shopping", NEGATIVE),
    ("shoutbox", NEGATIVE | UNLIKELY),
    ("sidebar", NEGATIVE | UNLIKELY),
    ("skyscraper", NEGATIVE | UNLIKELY),
    ("social", UNLIKELY),
    ("sponsor", NEGATIVE | UNLIKELY),
    ("supplemental", UNLIKELY),
    ("tags", NEGATIVE),
    ("tool", NEGATIVE),
    ("widget", NEGATIVE),
    ("yom-remote", UNLIKELY),
    ("article", POSITIVE | MAYBE),
    ("body", POSITIVE | MAYBE),
    ("content", POSITIVE | MAYBE),
    ("entry", POSITIVE),
    ("main", POSITIVE | MAYBE),
    ("page", POSITIVE),
    ("post", POSITIVE),
    ("text", POSITIVE),
    ("blog", POSITIVE),
    ("story", POSITIVE),
    ("and", MAYBE),
    ("column", MAYBE),
    ("shadow", MAYBE),
];

fn patterns() -> &'static AhoCorasick {
    static AC: OnceLock<AhoCorasick> = OnceLock::new();
    AC.get_or_init(|| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(PATTERNS.iter().map(|p| p.0))
            .expect("static patterns build")
    })
}

/// The flags of one `class` or `id` value.
fn name_flags(value: &str) -> u8 {
    if value.is_empty() {
        return 0;
    }
    let mut flags = 0;
    for m in patterns().find_overlapping_iter(value) {
        // `pageRow` is not `pager`: a camel-case word boundary inside the match breaks it.
        let matched = &value.as_bytes()[m.start()..m.end()];
        if matched.windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase()) {
            continue;
        }
        flags |= PATTERNS[m.pattern().as_usize()].1;
    }
    if value.split_ascii_whitespace().any(|t| t.eq_ignore_ascii_case("hid")) {
        flags |= NEGATIVE;
    }
    flags
}

/// Readability's class weight: -25 for a negative name, +25 for a positive one, per
/// attribute.
fn weight(flags: [u8; 2]) -> f32 {
    let mut w = 0.0;
    for f in flags {
        if f & NEGATIVE != 0 {
            w -= 25.0;
        }
        if f & POSITIVE != 0 {
            w += 25.0;
        }
    }
    w
}

/// Per-node facts gathered in linear passes over the arena.
#[derive(Clone, Default)]
struct Stats {
    /// The node or an ancestor was pruned.
    pruned: bool,
    /// Inside an `<a>`.
    in_link: bool,
    /// Class weight of the node.
    weight: f32,
    /// Characters of text in the subtree (pruned parts excluded), and of link text.
    chars: u32,
    link_chars: u32,
    commas: u32,
    /// Characters and commas of the node's own inline text (not inside a nested block).
    inline_chars: u32,
    inline_commas: u32,
    /// Descendant counts that the conditional clean-up looks at.
    paragraphs: u32,
    images: u32,
    items: u32,
    inputs: u32,
    embeds: u32,
    /// Readability's content score; `None` if the node never became a candidate.
    score: Option<f32>,
}

impl Stats {
    fn link_density(&self) -> f32 {
        if self.chars == 0 {
            0.0
        } else {
            self.link_chars as f32 / self.chars as f32
        }
    }
}

/// The main text and images of a parsed page.
pub(crate) fn main_content(dom: &Dom) -> (String, Vec<[String; 2]>) {
    let bytes = subtree_text_bytes(dom);
    let first = extract_with(dom, &bytes, true);
    if first.0.len() >= RETRY_BELOW_BYTES {
        return first;
    }
    // Like Readability, try again without the class/id vocabulary when it left too little:
    // some sites name their page wrapper `ad-margins` or `header-style`.
    let second = extract_with(dom, &bytes, false);
    if second.0.len() > first.0.len() {
        second
    } else {
        first
    }
}

/// Below this many bytes of text, extraction is retried without name-based pruning.
const RETRY_BELOW_BYTES: usize = 250;

/// A name-based prune never removes an element holding more than this share of the page's
/// text: it is a page wrapper with an unlucky name, not a sidebar.
const MAX_PRUNED_SHARE: f32 = 0.6;

fn extract_with(dom: &Dom, bytes: &[u32], by_name: bool) -> (String, Vec<[String; 2]>) {
    let mut stats = vec![Stats::default(); dom.nodes.len()];
    prune(dom, &mut stats, bytes, by_name);
    count_text(dom, &mut stats);
    let Some(top) = score(dom, &mut stats) else { return (String::new(), Vec::new()) };
    let selected = select(dom, &stats, top);
    render(dom, &stats, &selected)
}

/// Bytes of text under each node, before any pruning.
fn subtree_text_bytes(dom: &Dom) -> Vec<u32> {
    let mut bytes = vec![0u32; dom.nodes.len()];
    let mut cur = 0usize;
    for ev in &dom.events {
        match *ev {
            Event::Open(i) => cur = i as usize,
            Event::Close(i) => cur = dom.nodes[i as usize].parent as usize,
            Event::Text(s, e) => bytes[cur] += e - s,
            Event::Break => {}
        }
    }
    for i in (1..dom.nodes.len()).rev() {
        let b = bytes[i];
        bytes[dom.nodes[i].parent as usize] += b;
    }
    bytes
}

/// Step 1: marks pruned subtrees and class weights. Parents come before children.
fn prune(dom: &Dom, stats: &mut [Stats], bytes: &[u32], by_name: bool) {
    let big = (bytes[0] as f32 * MAX_PRUNED_SHARE) as u32;
    for (i, node) in dom.nodes.iter().enumerate().skip(1) {
        let parent = &stats[node.parent as usize];
        let (parent_pruned, parent_link) = (parent.pruned, parent.in_link);
        let flags = [name_flags(dom.slice(node.class)), name_flags(dom.slice(node.id))];
        let st = &mut stats[i];
        st.weight = weight(flags);
        st.in_link = parent_link || node.tag == Tag::A;
        if parent_pruned {
            st.pruned = true;
            continue;
        }
        let both = flags[0] | flags[1];
        let small = bytes[i] <= big;
        let unlikely = by_name
            && small
            && both & UNLIKELY != 0
            && both & MAYBE == 0
            && !matches!(node.tag, Tag::Body | Tag::A | Tag::Article | Tag::Main | Tag::Html);
        st.pruned = unlikely
            || (node.hidden && small)
            || pruned_tag(node.tag)
            || pruned_role(dom.slice(node.role));
    }
}

/// Elements that never carry the main text.
fn pruned_tag(tag: Tag) -> bool {
    use Tag::*;
    matches!(
        tag,
        Aside
            | Button
            | Canvas
            | Dialog
            | Embed
            | Footer
            | Head
            | Iframe
            | Input
            | Label
            | Map
            | Nav
            | Noscript
            | Object
            | Option
            | Script
            | Select
            | Style
            | Svg
            | Template
            | Textarea
            | Title
    )
}

/// ARIA roles of navigation and pop-ups.
fn pruned_role(role: &str) -> bool {
    matches!(
        role.trim().to_ascii_lowercase().as_str(),
        "navigation"
            | "menu"
            | "menubar"
            | "complementary"
            | "contentinfo"
            | "banner"
            | "alert"
            | "alertdialog"
            | "dialog"
            | "search"
    )
}

/// The nearest block-level ancestor-or-self of every node.
fn block_owners(dom: &Dom) -> Vec<u32> {
    let mut owner = vec![0u32; dom.nodes.len()];
    for (i, node) in dom.nodes.iter().enumerate().skip(1) {
        owner[i] = if node.tag.is_block() { i as u32 } else { owner[node.parent as usize] };
    }
    owner
}

/// Step 2a: text, link text and commas per node; descendant counts.
fn count_text(dom: &Dom, stats: &mut [Stats]) {
    let owner = block_owners(dom);
    let mut cur = 0usize;
    for ev in &dom.events {
        match *ev {
            Event::Open(i) => cur = i as usize,
            Event::Close(i) => cur = dom.nodes[i as usize].parent as usize,
            Event::Text(s, e) => {
                if stats[cur].pruned {
                    continue;
                }
                let raw = dom.slice((s, e)).trim();
                let chars = raw.bytes().filter(|&b| (b & 0xc0) != 0x80).count() as u32;
                let commas = raw.bytes().filter(|&b| b == b',').count() as u32;
                let st = &mut stats[cur];
                st.chars += chars;
                st.commas += commas;
                if st.in_link {
                    st.link_chars += chars;
                }
                let block = &mut stats[owner[cur] as usize];
                block.inline_chars += chars;
                block.inline_commas += commas;
            }
            Event::Break => {}
        }
    }
    // Children have higher indices than their parents: one reverse pass sums subtrees.
    for i in (1..dom.nodes.len()).rev() {
        let node = &dom.nodes[i];
        if stats[i].pruned {
            continue;
        }
        match node.tag {
            Tag::P => stats[i].paragraphs += 1,
            Tag::Img => stats[i].images += 1,
            Tag::Li => stats[i].items += 1,
            Tag::Input => stats[i].inputs += 1,
            Tag::Embed | Tag::Object | Tag::Iframe => stats[i].embeds += 1,
            _ => {}
        }
        let c = stats[i].clone();
        let p = &mut stats[node.parent as usize];
        p.chars += c.chars;
        p.link_chars += c.link_chars;
        p.commas += c.commas;
        p.paragraphs += c.paragraphs;
        p.images += c.images;
        p.items += c.items;
        p.inputs += c.inputs;
        p.embeds += c.embeds;
    }
}

/// Readability's prior for a candidate container, by tag.
fn tag_prior(tag: Tag) -> f32 {
    use Tag::*;
    match tag {
        Div | Article | Main | Section => 5.0,
        Pre | Td | Blockquote => 3.0,
        Address | Ol | Ul | Dl | Dd | Dt | Li | Form => -3.0,
        H1 | H2 | H3 | H4 | H5 | H6 | Th => -5.0,
        _ => 0.0,
    }
}

/// Step 2b: distributes paragraph scores to ancestors; returns the best candidate.
fn score(dom: &Dom, stats: &mut [Stats]) -> Option<usize> {
    for i in 1..dom.nodes.len() {
        let node = &dom.nodes[i];
        let st = &stats[i];
        if st.pruned || !node.tag.is_block() || st.inline_chars < MIN_PARAGRAPH_CHARS {
            continue;
        }
        let points = 1.0 + st.inline_commas as f32 + (st.inline_chars as f32 / 100.0).min(3.0);
        // A paragraph element feeds its container; a division with loose text is its own.
        let mut at = if is_paragraph(node.tag) { node.parent as usize } else { i };
        for level in 0..5 {
            if at == 0 {
                break;
            }
            let divider = match level {
                0 => 1.0,
                1 => 2.0,
                l => l as f32 * 3.0,
            };
            let cand = &mut stats[at];
            let prior = tag_prior(dom.nodes[at].tag) + cand.weight;
            *cand.score.get_or_insert(prior) += points / divider;
            at = dom.nodes[at].parent as usize;
        }
    }
    let mut best: Option<(usize, f32)> = None;
    for (i, st) in stats.iter_mut().enumerate() {
        let ld = st.link_density();
        if let Some(s) = st.score.as_mut() {
            *s *= 1.0 - ld;
            if best.is_none_or(|(_, b)| *s > b) {
                best = Some((i, *s));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Elements that are paragraphs themselves (their score goes to their container).
fn is_paragraph(tag: Tag) -> bool {
    use Tag::*;
    matches!(tag, P | Pre | Td | Th | Li | Dd | Dt | H1 | H2 | H3 | H4 | H5 | H6 | Blockquote)
}

/// Step 3: the top candidate and the siblings that belong with it, in document order.
fn select(dom: &Dom, stats: &[Stats], top: usize) -> Vec<usize> {
    let parent = dom.nodes[top].parent as usize;
    if top == 0 || parent == 0 {
        return vec![top];
    }
    let top_score = stats[top].score.unwrap_or(0.0);
    let threshold = (top_score * 0.2).max(10.0);
    let top_class = dom.slice(dom.nodes[top].class);
    let mut out = Vec::new();
    let end = dom.nodes[parent].close;
    let mut i = parent + 1;
    while i < dom.nodes.len() && dom.nodes[i].open < end {
        let node = &dom.nodes[i];
        // Children of `parent` only: jump over each child's subtree.
        let next = next_after_subtree(dom, i);
        if node.parent as usize != parent {
            i = next;
            continue;
        }
        let st = &stats[i];
        let keep = i == top
            || (!st.pruned && {
                let bonus = if !top_class.is_empty() && dom.slice(node.class) == top_class {
                    top_score * 0.2
                } else {
                    0.0
                };
                st.score.is_some_and(|s| s + bonus >= threshold)
                    || (node.tag == Tag::P && {
                        let ld = st.link_density();
                        (st.chars > 80 && ld < 0.25)
                            || (st.chars > 0 && st.chars <= 80 && ld == 0.0 && ends_sentence(dom, i))
                    })
            });
        if keep {
            out.push(i);
        }
        i = next;
    }
    out
}

/// The first node index after `i`'s subtree.
fn next_after_subtree(dom: &Dom, i: usize) -> usize {
    let close = dom.nodes[i].close;
    let mut j = i + 1;
    // Descendants are contiguous after `i`; their `open` events precede `i`'s close.
    while j < dom.nodes.len() && dom.nodes[j].open < close {
        j += 1;
    }
    j
}

/// Whether the node's text contains a sentence end (Readability's `\.( |$)` test).
fn ends_sentence(dom: &Dom, i: usize) -> bool {
    let node = &dom.nodes[i];
    dom.events[node.open as usize..node.close as usize].iter().any(|e| match *e {
        Event::Text(s, e) => {
            let t = dom.slice((s, e)).trim_end();
            t.ends_with('.') || t.contains(". ")
        }
        _ => false,
    })
}

/// Readability's `_cleanConditionally`: whether a container inside the selection is debris.
fn is_debris(dom: &Dom, stats: &[Stats], i: usize) -> bool {
    let node = &dom.nodes[i];
    use Tag::*;
    if !matches!(node.tag, Div | Section | Ul | Ol | Table | Form | Fieldset | Dl) {
        return false;
    }
    let st = &stats[i];
    let weight = st.weight;
    if weight < 0.0 {
        return true;
    }
    if st.commas >= 10 {
        return false;
    }
    let is_list = matches!(node.tag, Ul | Ol);
    let p = st.paragraphs as f32;
    let img = st.images as f32;
    let li = st.items as f32 - 100.0;
    let ld = st.link_density();
    (img > 1.0 && p / img < 0.5)
        || (!is_list && li > p)
        || st.inputs as f32 > (p / 3.0).floor()
        || (!is_list && st.chars < MIN_PARAGRAPH_CHARS && (st.images == 0 || st.images > 2))
        || (!is_list && weight < 25.0 && ld > 0.2)
        || (weight >= 25.0 && ld > 0.5)
        || (st.embeds == 1 && st.chars < 75)
        || st.embeds > 1
}

/// Step 4: text and images of the selected subtrees.
fn render(dom: &Dom, stats: &[Stats], selected: &[usize]) -> (String, Vec<[String; 2]>) {
    let mut text = String::new();
    let mut images = Vec::new();
    let mut space = false;
    for &root in selected {
        let mut k = dom.nodes[root].open as usize;
        let end = dom.nodes[root].close as usize;
        while k <= end {
            match dom.events[k] {
                Event::Open(i) => {
                    let i = i as usize;
                    let node = &dom.nodes[i];
                    let skip = stats[i].pruned
                        || node.tag == Tag::H1
                        || (i != root && is_debris(dom, stats, i));
                    if skip {
                        k = node.close as usize + 1;
                        continue;
                    }
                    if node.tag.is_block() {
                        end_line(&mut text, &mut space);
                    } else if node.tag == Tag::Img {
                        let src = dom.slice(node.src).trim();
                        if !src.is_empty() {
                            let mut alt = String::new();
                            push_text(&mut alt, dom.slice(node.alt), &mut false);
                            images.push([src.to_string(), alt]);
                        }
                    }
                }
                Event::Close(i) => {
                    if dom.nodes[i as usize].tag.is_block() {
                        end_line(&mut text, &mut space);
                    }
                }
                Event::Text(s, e) => push_text(&mut text, dom.slice((s, e)), &mut space),
                Event::Break => end_line(&mut text, &mut space),
            }
            k += 1;
        }
        end_line(&mut text, &mut space);
    }
    (text, images)
}

/// Ends the current line (no empty lines from nested blocks).
fn end_line(text: &mut String, space: &mut bool) {
    while text.ends_with(' ') {
        text.pop();
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    *space = false;
}

#[cfg(test)]
mod scratch {
    use super::*;
    #[test]
    fn explain_page() {
        let Ok(path) = std::env::var("EXPLAIN_PAGE") else { return };
        let raw = std::fs::read(&path).unwrap();
        let mut out = Vec::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        let html = String::from_utf8_lossy(&out).into_owned();
        let dom = Dom::parse(&html, 256, 200_000).unwrap();
        let mut stats = vec![Stats::default(); dom.nodes.len()];
        prune(&dom, &mut stats, &subtree_text_bytes(&dom), true);
        count_text(&dom, &mut stats);
        let top = score(&dom, &mut stats);
        let mut cands: Vec<(f32, usize)> = stats.iter().enumerate().filter_map(|(i, s)| s.score.map(|x| (x, i))).collect();
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        let path_of = |mut i: usize| {
            let mut v = Vec::new();
            while i != 0 {
                let n = &dom.nodes[i];
                v.push(format!("{:?}.{}#{}{}", n.tag, dom.slice(n.class), dom.slice(n.id), if stats[i].pruned { "!P" } else { "" }));
                i = n.parent as usize;
            }
            v.reverse();
            v.join(" > ")
        };
        for (s, i) in cands.iter().take(6) {
            eprintln!("{s:.1} chars={} ld={:.2} {}", stats[*i].chars, stats[*i].link_density(), path_of(*i));
        }
        if let Ok(needle) = std::env::var("EXPLAIN_TEXT") {
            for ev in &dom.events { if let Event::Text(s, e) = *ev { if dom.slice((s, e)).contains(&needle) {
                let mut cur = 0; for (k, ev2) in dom.events.iter().enumerate() { match *ev2 { Event::Open(i) => cur = i as usize, Event::Close(i) => cur = dom.nodes[i as usize].parent as usize, _ => {} } if std::ptr::eq(ev2, ev) { let _ = k; break; } }
                eprintln!("TEXT at {}", path_of(cur)); break; } } }
        }
        eprintln!("top {:?} selected {:?}", top, top.map(|t| select(&dom, &stats, t)));
    }
}
