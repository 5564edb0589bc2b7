//! A lenient, bounded HTML tokenizer and tree builder made for extraction.
//!
//! It is not an HTML5 parser: it keeps what main-text extraction needs (elements, the
//! attributes that name and hide them, text, images) and applies the few implied-end-tag
//! rules that matter for paragraphs, list items and table cells. The tree is flat: nodes in
//! an arena (a child's index is above its parent's) and the document as a list of
//! [`Event`]s, so nothing downstream recurses and hostile nesting cannot overflow a stack.
//! Nesting past `max_depth` is flattened into the deepest kept element; more than
//! `max_elements` elements stops the parse with [`ParseError::TooComplex`].

use memchr::{memchr, memmem};

/// Element kinds the extractor treats specially; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub(crate) enum Tag {
    A,
    Address,
    Article,
    Aside,
    B,
    Blockquote,
    Body,
    Br,
    Button,
    Canvas,
    Caption,
    Center,
    Code,
    Dd,
    Details,
    Dialog,
    Div,
    Dl,
    Dt,
    Em,
    Embed,
    Fieldset,
    Figcaption,
    Figure,
    Font,
    Footer,
    Form,
    H1,
    H2,
    H3,
    H4,
    H5,
    H6,
    Head,
    Header,
    Hr,
    Html,
    I,
    Iframe,
    Img,
    Input,
    Label,
    Li,
    Main,
    Map,
    Menu,
    Nav,
    Noscript,
    Object,
    Ol,
    Option,
    P,
    Picture,
    Pre,
    Q,
    S,
    Script,
    Section,
    Select,
    Small,
    Span,
    Strong,
    Style,
    Sub,
    Summary,
    Sup,
    Svg,
    Table,
    Tbody,
    Td,
    Template,
    Textarea,
    Tfoot,
    Th,
    Thead,
    Time,
    Title,
    Tr,
    U,
    Ul,
    Other,
}

impl Tag {
    fn from_lower(name: &[u8]) -> Tag {
        use Tag::*;
        match name {
            b"a" => A,
            b"address" => Address,
            b"article" => Article,
            b"aside" => Aside,
            b"b" => B,
            b"blockquote" => Blockquote,
            b"body" => Body,
            b"br" => Br,
            b"button" => Button,
            b"canvas" => Canvas,
            b"caption" => Caption,
            b"center" => Center,
            b"code" => Code,
            b"dd" => Dd,
            b"details" => Details,
            b"dialog" => Dialog,
            b"div" => Div,
            b"dl" => Dl,
            b"dt" => Dt,
            b"em" => Em,
            b"embed" => Embed,
            b"fieldset" => Fieldset,
            b"figcaption" => Figcaption,
            b"figure" => Figure,
            b"font" => Font,
            b"footer" => Footer,
            b"form" => Form,
            b"h1" => H1,
            b"h2" => H2,
            b"h3" => H3,
            b"h4" => H4,
            b"h5" => H5,
            b"h6" => H6,
            b"head" => Head,
            b"header" => Header,
            b"hr" => Hr,
            b"html" => Html,
            b"i" => I,
            b"iframe" => Iframe,
            b"img" => Img,
            b"input" => Input,
            b"label" => Label,
            b"li" => Li,
            b"main" => Main,
            b"map" => Map,
            b"menu" => Menu,
            b"nav" => Nav,
            b"noscript" => Noscript,
            b"object" => Object,
            b"ol" => Ol,
            b"option" => Option,
            b"p" => P,
            b"picture" => Picture,
            b"pre" => Pre,
            b"q" => Q,
            b"s" => S,
            b"script" => Script,
            b"section" => Section,
            b"select" => Select,
            b"small" => Small,
            b"span" => Span,
            b"strong" => Strong,
            b"style" => Style,
            b"sub" => Sub,
            b"summary" => Summary,
            b"sup" => Sup,
            b"svg" => Svg,
            b"table" => Table,
            b"tbody" => Tbody,
            b"td" => Td,
            b"template" => Template,
            b"textarea" => Textarea,
            b"tfoot" => Tfoot,
            b"th" => Th,
            b"thead" => Thead,
            b"time" => Time,
            b"title" => Title,
            b"tr" => Tr,
            b"u" => U,
            b"ul" => Ul,
            _ => Other,
        }
    }

    /// Elements with no content and no end tag.
    fn is_void(self, name: &[u8]) -> bool {
        matches!(self, Tag::Br | Tag::Hr | Tag::Img | Tag::Input | Tag::Embed)
            || (self == Tag::Other
                && matches!(
                    name,
                    b"area"
                        | b"base"
                        | b"col"
                        | b"link"
                        | b"meta"
                        | b"param"
                        | b"source"
                        | b"track"
                        | b"wbr"
                        | b"keygen"
                ))
    }

    /// Elements whose content is raw text up to the matching end tag.
    fn is_raw_text(self) -> bool {
        matches!(
            self,
            Tag::Script | Tag::Style | Tag::Textarea | Tag::Title | Tag::Noscript | Tag::Iframe
        )
    }

    /// Block-level elements: they end a line of text, and an open `<p>` before them.
    pub(crate) fn is_block(self) -> bool {
        use Tag::*;
        matches!(
            self,
            Address
                | Article
                | Aside
                | Blockquote
                | Body
                | Caption
                | Center
                | Dd
                | Details
                | Dialog
                | Div
                | Dl
                | Dt
                | Fieldset
                | Figcaption
                | Figure
                | Footer
                | Form
                | H1
                | H2
                | H3
                | H4
                | H5
                | H6
                | Header
                | Hr
                | Html
                | Li
                | Main
                | Menu
                | Nav
                | Ol
                | P
                | Pre
                | Section
                | Summary
                | Table
                | Tbody
                | Td
                | Tfoot
                | Th
                | Thead
                | Tr
                | Ul
        )
    }

    /// Headings `h1`..`h6`.
    pub(crate) fn is_heading(self) -> bool {
        matches!(self, Tag::H1 | Tag::H2 | Tag::H3 | Tag::H4 | Tag::H5 | Tag::H6)
    }
}

/// One element of the arena.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub tag: Tag,
    /// Hash of the lower-case tag name: matches end tags of unknown elements.
    name_hash: u32,
    /// Parent index; the root (index 0) is its own parent.
    pub parent: u32,
    /// Depth below the root.
    pub depth: u32,
    /// Index of this node's `Open` event; its `Close` event index.
    pub open: u32,
    pub close: u32,
    /// `class` and `id` attribute values (byte ranges into the page).
    pub class: (u32, u32),
    pub id: (u32, u32),
    /// Hidden by `hidden`, `aria-hidden="true"` or an inline `display:none`.
    pub hidden: bool,
    /// `role`, `itemprop` values (byte ranges).
    pub role: (u32, u32),
    pub itemprop: (u32, u32),
    /// `<img>`: `src` (or a lazy-loading `data-src`) and `alt`.
    pub src: (u32, u32),
    pub alt: (u32, u32),
}

/// The document in reading order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// An element starts.
    Open(u32),
    /// An element ends.
    Close(u32),
    /// Raw (undecoded) text: a byte range of the page.
    Text(u32, u32),
    /// A `<br>`.
    Break,
}

/// Why a page was not parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// More elements than the configured budget.
    TooComplex,
}

/// A parsed page: the node arena and the event list. Node 0 is a synthetic root.
pub(crate) struct Dom<'a> {
    pub html: &'a str,
    pub nodes: Vec<Node>,
    pub events: Vec<Event>,
}

impl<'a> Dom<'a> {
    /// The bytes of a range recorded in a node.
    pub fn slice(&self, r: (u32, u32)) -> &'a str {
        self.html.get(r.0 as usize..r.1 as usize).unwrap_or("")
    }

    /// Parses `html` with at most `max_depth` nesting and `max_elements` elements.
    pub fn parse(html: &'a str, max_depth: usize, max_elements: usize) -> Result<Self, ParseError> {
        let mut b = Builder {
            bytes: html.as_bytes(),
            nodes: Vec::with_capacity(html.len() / 64 + 8),
            events: Vec::with_capacity(html.len() / 24 + 8),
            stack: Vec::with_capacity(64),
            max_depth: max_depth.max(2),
            max_elements,
            open_p: 0,
        };
        b.nodes.push(Node::new(Tag::Other, 0, 0, 0));
        b.events.push(Event::Open(0));
        b.stack.push(0);
        b.run()?;
        while let Some(&top) = b.stack.last() {
            b.pop(top);
        }
        Ok(Dom { html, nodes: b.nodes, events: b.events })
    }
}

impl Node {
    fn new(tag: Tag, name_hash: u32, parent: u32, depth: u32) -> Self {
        Node {
            tag,
            name_hash,
            parent,
            depth,
            open: 0,
            close: 0,
            class: (0, 0),
            id: (0, 0),
            hidden: false,
            role: (0, 0),
            itemprop: (0, 0),
            src: (0, 0),
            alt: (0, 0),
        }
    }
}

struct Builder<'a> {
    bytes: &'a [u8],
    nodes: Vec<Node>,
    events: Vec<Event>,
    /// Open elements, root first.
    stack: Vec<u32>,
    max_depth: usize,
    max_elements: usize,
    /// How many `<p>` are on the stack (skips the scope search when none is).
    open_p: usize,
}

/// FNV-1a over a lower-case name.
fn name_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &c in name {
        h = (h ^ c as u32).wrapping_mul(0x0100_0193);
    }
    h
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

impl<'a> Builder<'a> {
    fn run(&mut self) -> Result<(), ParseError> {
        let bytes = self.bytes;
        let n = bytes.len();
        let mut pos = 0usize;
        let mut text_start = 0usize;
        while pos < n {
            let Some(off) = memchr(b'<', &bytes[pos..]) else { break };
            let lt = pos + off;
            let next = bytes.get(lt + 1).copied().unwrap_or(0);
            if next.is_ascii_alphabetic() {
                self.text(text_start, lt);
                let (end, raw) = self.start_tag(lt)?;
                pos = end;
                if let Some(tag) = raw {
                    pos = self.skip_raw(pos, tag);
                }
                text_start = pos;
            } else if next == b'/' && bytes.get(lt + 2).is_some_and(|c| c.is_ascii_alphabetic()) {
                self.text(text_start, lt);
                pos = self.end_tag(lt);
                text_start = pos;
            } else if next == b'!' {
                self.text(text_start, lt);
                pos = if bytes[lt..].starts_with(b"<!--") {
                    match memmem::find(&bytes[lt + 4..], b"-->") {
                        Some(i) => lt + 4 + i + 3,
                        None => n,
                    }
                } else {
                    skip_past(bytes, lt, b'>')
                };
                text_start = pos;
            } else if next == b'?' || next == b'/' {
                self.text(text_start, lt);
                pos = skip_past(bytes, lt, b'>');
                text_start = pos;
            } else {
                // A literal '<' in text.
                pos = lt + 1;
            }
        }
        self.text(text_start, n);
        Ok(())
    }

    fn text(&mut self, start: usize, end: usize) {
        if start < end && !self.bytes[start..end].iter().all(|&c| is_space(c)) {
            self.events.push(Event::Text(start as u32, end as u32));
        }
    }

    /// Parses a start tag at `lt`; returns the position after it and, for raw-text
    /// elements, their tag (the caller skips their content).
    fn start_tag(&mut self, lt: usize) -> Result<(usize, Option<Tag>), ParseError> {
        let bytes = self.bytes;
        let n = bytes.len();
        let mut i = lt + 1;
        while i < n && !is_space(bytes[i]) && bytes[i] != b'>' && bytes[i] != b'/' {
            i += 1;
        }
        let raw_name = &bytes[lt + 1..i];
        let mut buf = [0u8; 16];
        let (tag, hash) = if raw_name.len() <= buf.len() {
            let lower = &mut buf[..raw_name.len()];
            lower.copy_from_slice(raw_name);
            lower.make_ascii_lowercase();
            (Tag::from_lower(lower), name_hash(lower))
        } else {
            (Tag::Other, name_hash(&raw_name.to_ascii_lowercase()))
        };
        let void = tag.is_void(&buf[..raw_name.len().min(16)]);
        let mut node = Node::new(tag, hash, 0, 0);
        // Attributes.
        let mut self_closing = false;
        loop {
            while i < n && is_space(bytes[i]) {
                i += 1;
            }
            if i >= n {
                break;
            }
            match bytes[i] {
                b'>' => {
                    i += 1;
                    break;
                }
                b'/' => {
                    self_closing = bytes.get(i + 1) == Some(&b'>');
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let name_start = i;
            while i < n && !is_space(bytes[i]) && !matches!(bytes[i], b'>' | b'=' | b'/') {
                i += 1;
            }
            // A lone '=' or other junk: step over it.
            if i == name_start {
                i += 1;
                continue;
            }
            let name_end = i;
            while i < n && is_space(bytes[i]) {
                i += 1;
            }
            let mut value = (0u32, 0u32);
            let mut has_value = false;
            if i < n && bytes[i] == b'=' {
                i += 1;
                while i < n && is_space(bytes[i]) {
                    i += 1;
                }
                if i < n && (bytes[i] == b'"' || bytes[i] == b'\'') {
                    let q = bytes[i];
                    let vs = i + 1;
                    let ve = memchr(q, &bytes[vs..]).map_or(n, |o| vs + o);
                    value = (vs as u32, ve as u32);
                    i = (ve + 1).min(n);
                } else {
                    let vs = i;
                    while i < n && !is_space(bytes[i]) && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = (vs as u32, i as u32);
                }
                has_value = true;
            }
            self.attribute(&mut node, &bytes[name_start..name_end], value, has_value);
        }
        let raw = tag.is_raw_text().then_some(tag);
        if tag == Tag::Br {
            self.events.push(Event::Break);
            return Ok((i, None));
        }
        self.open(node, void || (self_closing && tag == Tag::Other && raw.is_none()))?;
        if raw.is_some() && !(void || self_closing) {
            return Ok((i, raw));
        }
        if raw.is_some() {
            // `<script/>`: nothing to skip, close it now.
            self.pop_if(tag);
        }
        Ok((i, None))
    }

    fn attribute(&self, node: &mut Node, name: &[u8], value: (u32, u32), has_value: bool) {
        let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        let v = &self.bytes[value.0 as usize..value.1 as usize];
        if eq("class") {
            node.class = value;
        } else if eq("id") {
            node.id = value;
        } else if eq("hidden") {
            node.hidden = true;
        } else if eq("aria-hidden") {
            node.hidden |= has_value && v.eq_ignore_ascii_case(b"true");
        } else if eq("style") {
            node.hidden |= display_none(v);
        } else if eq("role") {
            node.role = value;
        } else if eq("itemprop") {
            node.itemprop = value;
        } else if node.tag == Tag::Img {
            if eq("src") || (node.src.0 == node.src.1 && (eq("data-src") || eq("data-lazy-src"))) {
                node.src = value;
            } else if eq("alt") {
                node.alt = value;
            }
        }
    }

    /// Skips the content of a raw-text element up to its end tag; returns the position
    /// after the end tag.
    fn skip_raw(&mut self, mut pos: usize, tag: Tag) -> usize {
        let bytes = self.bytes;
        let name: &[u8] = match tag {
            Tag::Script => b"script",
            Tag::Style => b"style",
            Tag::Textarea => b"textarea",
            Tag::Title => b"title",
            Tag::Noscript => b"noscript",
            _ => b"iframe",
        };
        let finder = memmem::Finder::new(b"</");
        while let Some(off) = finder.find(&bytes[pos..]) {
            let at = pos + off;
            let after = at + 2 + name.len();
            if bytes.len() >= after && bytes[at + 2..after].eq_ignore_ascii_case(name) {
                self.pop_if(tag);
                return skip_past(bytes, at, b'>');
            }
            pos = at + 2;
        }
        self.pop_if(tag);
        bytes.len()
    }

    fn end_tag(&mut self, lt: usize) -> usize {
        let bytes = self.bytes;
        let n = bytes.len();
        let mut i = lt + 2;
        while i < n && !is_space(bytes[i]) && bytes[i] != b'>' && bytes[i] != b'/' {
            i += 1;
        }
        let lower = bytes[lt + 2..i].to_ascii_lowercase();
        let tag = Tag::from_lower(&lower);
        let hash = name_hash(&lower);
        let end = skip_past(bytes, i, b'>');
        if tag == Tag::Br {
            self.events.push(Event::Break);
            return end;
        }
        // Close the nearest open element of this name, and everything opened inside it.
        if let Some(k) = self.stack.iter().rposition(|&s| {
            let node = &self.nodes[s as usize];
            node.tag == tag && node.name_hash == hash
        }) {
            if k > 0 {
                while self.stack.len() > k {
                    let top = self.stack[self.stack.len() - 1];
                    self.pop(top);
                }
            }
        }
        end
    }

    /// Pushes a new element (applying implied end tags first), or, past the depth cap,
    /// keeps its content in the current element.
    fn open(&mut self, mut node: Node, void: bool) -> Result<(), ParseError> {
        if self.nodes.len() >= self.max_elements {
            return Err(ParseError::TooComplex);
        }
        self.implied_ends(node.tag);
        if self.stack.len() >= self.max_depth && !void {
            return Ok(());
        }
        let parent = *self.stack.last().unwrap_or(&0);
        node.parent = parent;
        node.depth = self.stack.len() as u32;
        let idx = self.nodes.len() as u32;
        node.open = self.events.len() as u32;
        self.events.push(Event::Open(idx));
        if void {
            node.close = self.events.len() as u32;
            self.events.push(Event::Close(idx));
        } else {
            if node.tag == Tag::P {
                self.open_p += 1;
            }
            self.stack.push(idx);
        }
        self.nodes.push(node);
        Ok(())
    }

    /// The end tags HTML implies before a start tag of `tag`: a block closes an open `<p>`,
    /// `<li>` closes the previous item, cells and rows close theirs.
    fn implied_ends(&mut self, tag: Tag) {
        use Tag::*;
        let (closes, boundary): (&[Tag], &[Tag]) = match tag {
            Li => (&[Li], &[Ul, Ol, Menu, Table, Div, Section, Article]),
            Dt | Dd => (&[Dt, Dd], &[Dl, Table, Div]),
            Tr => (&[Tr], &[Table, Tbody, Thead, Tfoot]),
            Td | Th => (&[Td, Th], &[Tr, Table]),
            Tbody | Thead | Tfoot => (&[Tbody, Thead, Tfoot], &[Table]),
            Option => (&[Option], &[Select]),
            _ => (&[], &[]),
        };
        if tag.is_block() && self.open_p > 0 {
            self.close_in_scope(&[P], &[Table, Td, Th, Button, Caption]);
        }
        if !closes.is_empty() {
            self.close_in_scope(closes, boundary);
        }
        if tag.is_heading() {
            if let Some(&top) = self.stack.last() {
                if self.nodes[top as usize].tag.is_heading() {
                    self.pop(top);
                }
            }
        }
    }

    /// Closes the nearest open element among `closes` unless a `boundary` element is nearer.
    fn close_in_scope(&mut self, closes: &[Tag], boundary: &[Tag]) {
        for k in (1..self.stack.len()).rev() {
            let t = self.nodes[self.stack[k] as usize].tag;
            if closes.contains(&t) {
                while self.stack.len() > k {
                    let top = self.stack[self.stack.len() - 1];
                    self.pop(top);
                }
                return;
            }
            if boundary.contains(&t) {
                return;
            }
        }
    }

    /// Closes the current element if it is a `tag` (it is not when the depth cap kept it out).
    fn pop_if(&mut self, tag: Tag) {
        if let Some(&top) = self.stack.last() {
            if top != 0 && self.nodes[top as usize].tag == tag {
                self.pop(top);
            }
        }
    }

    fn pop(&mut self, idx: u32) {
        if self.stack.last() == Some(&idx) {
            self.stack.pop();
        }
        let node = &mut self.nodes[idx as usize];
        if node.tag == Tag::P {
            self.open_p = self.open_p.saturating_sub(1);
        }
        node.close = self.events.len() as u32;
        self.events.push(Event::Close(idx));
    }
}

/// The position after the next `c` at or after `from` (or the end).
fn skip_past(bytes: &[u8], from: usize, c: u8) -> usize {
    memchr(c, &bytes[from.min(bytes.len())..]).map_or(bytes.len(), |o| from + o + 1)
}

/// Whether an inline style hides the element.
fn display_none(style: &[u8]) -> bool {
    let mut compact = [0u8; 64];
    let mut k = 0;
    for &c in style {
        if !is_space(c) {
            if k == compact.len() {
                break;
            }
            compact[k] = c.to_ascii_lowercase();
            k += 1;
        }
    }
    let s = &compact[..k];
    memmem::find(s, b"display:none").is_some() || memmem::find(s, b"visibility:hidden").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(dom: &Dom) -> Vec<(Tag, u32)> {
        dom.nodes.iter().skip(1).map(|n| (n.tag, n.parent)).collect()
    }

    #[test]
    fn implied_ends_close_paragraphs_items_and_cells() {
        let dom = Dom::parse("<p>a<p>b<div>c</div><ul><li>x<li>y</ul>", 64, 1000).unwrap();
        use Tag::*;
        // p, p, div (sibling of the second p), ul, li, li.
        assert_eq!(tags(&dom), vec![(P, 0), (P, 0), (Div, 0), (Ul, 0), (Li, 4), (Li, 4)]);
        let dom = Dom::parse("<table><tr><td>1<td>2<tr><td>3</table>", 64, 1000).unwrap();
        assert_eq!(
            tags(&dom),
            vec![(Table, 0), (Tr, 1), (Td, 2), (Td, 2), (Tr, 1), (Td, 5)]
        );
    }

    #[test]
    fn raw_text_comments_and_attributes() {
        let html = "<script>if (a<b) {'</p>'}</script><!-- <p>no</p> --><P CLASS='x y' id=z hidden>t</P>\
                    <img alt=\"A > B\" data-src=i.png><style>p{}</STYLE>";
        let dom = Dom::parse(html, 64, 1000).unwrap();
        let p = dom.nodes.iter().find(|n| n.tag == Tag::P).unwrap();
        assert_eq!(dom.slice(p.class), "x y");
        assert_eq!(dom.slice(p.id), "z");
        assert!(p.hidden);
        let img = dom.nodes.iter().find(|n| n.tag == Tag::Img).unwrap();
        assert_eq!((dom.slice(img.src), dom.slice(img.alt)), ("i.png", "A > B"));
        let texts: Vec<&str> = dom
            .events
            .iter()
            .filter_map(|e| match *e {
                Event::Text(s, e) => Some(&html[s as usize..e as usize]),
                _ => None,
            })
            .collect();
        assert_eq!(texts, vec!["t"]);
    }

    #[test]
    fn depth_and_element_caps() {
        let deep = "<div>".repeat(10_000) + "x" + &"</div>".repeat(10_000);
        let dom = Dom::parse(&deep, 100, 1_000_000).unwrap();
        assert!(dom.nodes.iter().all(|n| n.depth < 100));
        assert!(dom.events.contains(&Event::Text(50_000, 50_001)));
        let wide = "<b>x</b>".repeat(10_000);
        assert_eq!(Dom::parse(&wide, 100, 5_000).err(), Some(ParseError::TooComplex));
    }

    #[test]
    fn every_open_has_a_close() {
        for html in ["<div><p>a<span>b", "</div></p>x<b><i>y</b>z</i>", "<a href=x", "<", "<!--", "<p/>a"] {
            let dom = Dom::parse(html, 64, 1000).unwrap();
            let opens = dom.events.iter().filter(|e| matches!(e, Event::Open(_))).count();
            let closes = dom.events.iter().filter(|e| matches!(e, Event::Close(_))).count();
            assert_eq!(opens, closes, "{html}");
            for (i, n) in dom.nodes.iter().enumerate() {
                assert_eq!(dom.events[n.open as usize], Event::Open(i as u32));
                assert_eq!(dom.events[n.close as usize], Event::Close(i as u32));
            }
        }
    }
}
