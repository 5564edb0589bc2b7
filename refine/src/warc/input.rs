//! The bytes under the records: a file, gunzipped member by member, behind a bounded buffer.
//!
//! CommonCrawl ships `.warc.gz` as one gzip member per record (WARC 1.1, annex D). `GzDecoder`
//! stops after the first member and `MultiGzDecoder` hides where members start, so this reader
//! parses the gzip member header (RFC 1952) itself and inflates the raw deflate stream with
//! flate2's low-level [`Decompress`] (zlib-rs backend). Knowing where a member starts is what
//! lets a corrupt member be skipped: on an inflate, header or CRC error it scans the compressed
//! bytes for the next `1f 8b 08` and goes on from there. Memory is two fixed buffers.

use std::collections::VecDeque;
use std::io::Read;

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::header;

/// Compressed bytes read from the file at a time.
const IN_BUF: usize = 256 << 10;
/// Decompressed bytes buffered for the record parser; holds the largest WARC header.
const OUT_BUF: usize = 256 << 10;
/// gzip magic plus the only compression method (deflate).
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Damage found under the record being read. After it the input has moved on to where
/// reading can resume (the next gzip member, or the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Break {
    /// A gzip member that does not inflate, or fails its CRC / length check.
    CorruptGzip,
    /// The file ends inside a gzip member.
    Truncated,
    /// The operating system failed to read the file; reading stops.
    ReadError,
}

impl Break {
    /// The counted skip reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Break::CorruptGzip => "corrupt_gzip",
            Break::Truncated => "truncated",
            Break::ReadError => "read_error",
        }
    }
}

enum GzState {
    /// Expecting a member header (or the end of the file).
    Header,
    /// Inflating a member's deflate stream.
    Body,
    /// Expecting the 8-byte CRC32 + ISIZE trailer.
    Trailer,
    /// Looking for the next member after damage.
    Resync,
    /// Nothing more will be read.
    Done,
}

struct Gzip {
    inflate: Decompress,
    crc: Crc,
    state: GzState,
}

/// A file's decompressed bytes, with damage reported as [`Break`]s.
struct Source {
    file: Box<dyn Read + Send>,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    /// Bytes read from the file so far.
    file_bytes: u64,
    /// `None` for plain (uncompressed) WARC.
    gzip: Option<Gzip>,
    /// The last `read` began a new gzip member (its output starts one).
    member_started: bool,
}

impl Source {
    fn refill(&mut self) -> Result<(), Break> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while !self.eof && self.end < self.buf.len() {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.end += n;
                    self.file_bytes += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.eof = true;
                    return Err(Break::ReadError);
                }
            }
        }
        Ok(())
    }

    /// Makes at least `n` bytes available unless the file ends first.
    fn want(&mut self, n: usize) -> Result<(), Break> {
        while self.end - self.start < n && !self.eof {
            self.refill()?;
        }
        Ok(())
    }

    /// Reads decompressed bytes into `dst` (non-empty); `Ok(0)` is the clean end of the file.
    fn read(&mut self, dst: &mut [u8]) -> Result<usize, Break> {
        if self.gzip.is_none() {
            if self.start == self.end {
                self.refill()?;
            }
            let n = dst.len().min(self.end - self.start);
            dst[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            return Ok(n);
        }
        loop {
            let Some(gz) = self.gzip.as_mut() else {
                return Ok(0);
            };
            match gz.state {
                GzState::Done => return Ok(0),
                GzState::Header => {
                    self.want(64)?;
                    let avail = &self.buf[self.start..self.end];
                    if avail.is_empty() {
                        return Ok(0);
                    }
                    let header = member_header_len(avail);
                    let (full, eof) = (avail.len() == self.buf.len(), self.eof);
                    let zeros = eof && avail.iter().all(|&b| b == 0);
                    let gz = self.gzip.as_mut().expect("gzip source");
                    match header {
                        Some(Ok(len)) => {
                            self.start += len;
                            self.member_started = true;
                            gz.inflate.reset(false);
                            gz.crc.reset();
                            gz.state = GzState::Body;
                        }
                        // Zero padding after the last member is not damage.
                        _ if zeros => {
                            self.start = self.end;
                            return Ok(0);
                        }
                        // The file ends inside the header.
                        None if eof => {
                            gz.state = GzState::Done;
                            return Err(Break::Truncated);
                        }
                        // A long name or comment: read on (a header that fills the whole
                        // buffer is damage).
                        None if !full => self.refill()?,
                        _ => {
                            self.start += 1;
                            gz.state = GzState::Resync;
                            return Err(Break::CorruptGzip);
                        }
                    }
                }
                GzState::Body => {
                    if self.start == self.end {
                        self.refill()?;
                    }
                    let gz = self.gzip.as_mut().expect("gzip source");
                    let (in0, out0) = (gz.inflate.total_in(), gz.inflate.total_out());
                    let status = gz.inflate.decompress(
                        &self.buf[self.start..self.end],
                        dst,
                        FlushDecompress::None,
                    );
                    let used = (gz.inflate.total_in() - in0) as usize;
                    let made = (gz.inflate.total_out() - out0) as usize;
                    self.start += used;
                    gz.crc.update(&dst[..made]);
                    match status {
                        Err(_) => {
                            gz.state = GzState::Resync;
                            return Err(Break::CorruptGzip);
                        }
                        Ok(Status::StreamEnd) => gz.state = GzState::Trailer,
                        // No progress: the file ended inside the member, or (with input left)
                        // the stream is stuck, which only damage does.
                        Ok(_) if made == 0 && used == 0 => {
                            if self.start == self.end && self.eof {
                                gz.state = GzState::Done;
                                return Err(Break::Truncated);
                            }
                            gz.state = GzState::Resync;
                            return Err(Break::CorruptGzip);
                        }
                        Ok(_) => {}
                    }
                    if made > 0 {
                        return Ok(made);
                    }
                }
                GzState::Trailer => self.trailer()?,
                GzState::Resync => {
                    match memchr::memmem::find(&self.buf[self.start..self.end], &GZIP_MAGIC) {
                        Some(i) => {
                            self.start += i;
                            let gz = self.gzip.as_mut().expect("gzip source");
                            gz.state = GzState::Header;
                        }
                        None if self.eof => {
                            self.start = self.end;
                            let gz = self.gzip.as_mut().expect("gzip source");
                            gz.state = GzState::Done;
                            return Ok(0);
                        }
                        None => {
                            // Keep a possible magic prefix that straddles the buffer's end.
                            self.start = self
                                .start
                                .max(self.end.saturating_sub(GZIP_MAGIC.len() - 1));
                            self.refill()?;
                        }
                    }
                }
            }
        }
    }
}

impl Source {
    /// Checks a finished member's CRC32 and length (RFC 1952 section 2.3.1).
    fn trailer(&mut self) -> Result<(), Break> {
        self.want(8)?;
        let Some(gz) = self.gzip.as_mut() else {
            return Ok(());
        };
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 8 {
            gz.state = GzState::Done;
            return Err(Break::Truncated);
        }
        let crc = u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]);
        let isize = u32::from_le_bytes([avail[4], avail[5], avail[6], avail[7]]);
        self.start += 8;
        gz.state = GzState::Header;
        // ISIZE is the length mod 2^32; Crc::amount() wraps the same way.
        if crc != gz.crc.sum() || isize != gz.crc.amount() {
            return Err(Break::CorruptGzip);
        }
        Ok(())
    }

    /// Whether the output so far ends exactly at the end of a member not yet checked.
    fn at_member_end(&self) -> bool {
        self.gzip
            .as_ref()
            .is_some_and(|gz| matches!(gz.state, GzState::Trailer))
    }
}

/// Length of the gzip member header at the start of `b`: `Some(Err)` if it is not one,
/// `None` if `b` ends inside it.
fn member_header_len(b: &[u8]) -> Option<Result<usize, ()>> {
    if b.len() < 10 {
        return if GZIP_MAGIC.starts_with(b) || b.starts_with(&GZIP_MAGIC) {
            None
        } else {
            Some(Err(()))
        };
    }
    let flags = b[3];
    if b[..3] != GZIP_MAGIC || flags & 0xe0 != 0 {
        return Some(Err(()));
    }
    let mut pos = 10;
    if flags & 0x04 != 0 {
        // FEXTRA: two-byte length, then that many bytes.
        let xlen = u16::from_le_bytes([*b.get(pos)?, *b.get(pos + 1)?]) as usize;
        pos += 2 + xlen;
    }
    for flag in [0x08, 0x10] {
        // FNAME, FCOMMENT: zero-terminated.
        if flags & flag != 0 {
            pos += memchr::memchr(0, b.get(pos..)?)? + 1;
        }
    }
    if flags & 0x02 != 0 {
        pos += 2; // FHCRC
    }
    if pos > b.len() {
        return None;
    }
    Some(Ok(pos))
}

/// Decompressed WARC bytes behind a buffer the record parser looks into.
pub(crate) struct Input {
    src: Source,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Offset in the decompressed stream of `buf[pos]`.
    offset: u64,
    /// Stream offsets, at or after `offset`, where gzip members start in `buf`.
    member_starts: VecDeque<u64>,
    /// Damage found while reading ahead, reported once the bytes before it are used (or
    /// before the first byte: a gzip file with a garbage prefix).
    pending: Option<Break>,
}

impl Input {
    /// Wraps a file, telling gzip from plain WARC by its first bytes.
    pub(crate) fn new(file: Box<dyn Read + Send>) -> Input {
        let mut src = Source {
            file,
            buf: vec![0; IN_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            file_bytes: 0,
            gzip: None,
            member_started: false,
        };
        let mut pending = src.want(IN_BUF).err();
        let head = &src.buf[..src.end];
        // A garbage prefix hides the format: whichever of a gzip magic or a WARC version
        // line comes first decides.
        let magic = memchr::memmem::find(head, &GZIP_MAGIC);
        let warc = memchr::memmem::find(head, b"WARC/");
        let gzip_at = match (magic, warc) {
            (Some(m), Some(w)) if m < w => Some(m),
            (Some(m), None) => Some(m),
            _ => None,
        };
        if let Some(at) = gzip_at {
            src.gzip = Some(Gzip {
                inflate: Decompress::new(false),
                crc: Crc::new(),
                state: if at == 0 {
                    GzState::Header
                } else {
                    GzState::Resync
                },
            });
            if at > 0 {
                pending = pending.or(Some(Break::CorruptGzip));
            }
        }
        Input {
            src,
            buf: vec![0; OUT_BUF].into_boxed_slice(),
            pos: 0,
            len: 0,
            offset: 0,
            member_starts: VecDeque::new(),
            pending,
        }
    }

    /// Compressed bytes consumed from the file.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.src.file_bytes - (self.src.end - self.src.start) as u64
    }

    /// Whether the input is gzip-compressed.
    pub(crate) fn is_gzip(&self) -> bool {
        self.src.gzip.is_some()
    }

    /// Whether a gzip member starts `at` bytes into what [`Input::fill`] returned.
    pub(crate) fn member_starts_at(&self, at: usize) -> bool {
        self.member_starts.contains(&(self.offset + at as u64))
    }

    fn drop_buffered(&mut self, b: Break) -> Break {
        self.offset += (self.len - self.pos) as u64;
        self.pos = 0;
        self.len = 0;
        self.member_starts.clear();
        b
    }

    /// Makes at least `min` (at most the buffer's size) bytes available unless the input
    /// ends first, and returns all that are. Damage found while reading ahead waits until the
    /// bytes before it are used: only a call that needs more than them gets the [`Break`], and
    /// the bytes still buffered (the damaged record's start) are dropped with it.
    pub(crate) fn fill(&mut self, min: usize) -> Result<&[u8], Break> {
        let min = min.min(OUT_BUF);
        while self.len - self.pos < min && self.pending.is_none() {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.len, 0);
                self.len -= self.pos;
                self.pos = 0;
            }
            match self.src.read(&mut self.buf[self.len..]) {
                Ok(0) => break,
                Ok(n) => {
                    if std::mem::take(&mut self.src.member_started) {
                        self.member_starts
                            .push_back(self.offset + (self.len - self.pos) as u64);
                    }
                    self.len += n;
                }
                Err(b) => self.pending = Some(b),
            }
        }
        if self.len - self.pos < min {
            if let Some(b) = self.pending.take() {
                return Err(self.drop_buffered(b));
            }
        }
        Ok(&self.buf[self.pos..self.len])
    }

    /// What [`Input::fill`] last made available, less what was consumed since.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.len]
    }

    /// Drops `n` available bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len - self.pos);
        self.pos += n;
        self.offset += n as u64;
        while self.member_starts.front().is_some_and(|&m| m < self.offset) {
            self.member_starts.pop_front();
        }
    }

    /// Appends the next `n` bytes to `out`, fewer if the input ends; returns how many, and
    /// whether a `bounded` read stopped early at a record's gzip member ([`Input::bounded_chunk`]).
    pub(crate) fn read_into(
        &mut self,
        n: usize,
        out: &mut Vec<u8>,
        bounded: bool,
    ) -> Result<(usize, bool), Break> {
        if bounded {
            let mut done = 0;
            while done < n {
                let take = self.bounded_chunk(n - done)?;
                if take == 0 {
                    return Ok((done, self.len > self.pos));
                }
                out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
                self.consume(take);
                done += take;
            }
            return Ok((done, false));
        }
        let from_buf = n.min(self.len - self.pos);
        out.extend_from_slice(&self.buf[self.pos..self.pos + from_buf]);
        self.consume(from_buf);
        let mut done = from_buf;
        if done < n {
            if let Some(b) = self.pending.take() {
                return Err(self.drop_buffered(b));
            }
            // Inflate straight into `out`: no second copy of large payloads.
            let base = out.len();
            out.resize(base + (n - done), 0);
            let mut at = base;
            while done < n {
                match self.src.read(&mut out[at..]) {
                    Ok(0) => break,
                    Ok(k) => {
                        // A member start inside the block is no record start to remember.
                        self.src.member_started = false;
                        at += k;
                        done += k;
                        self.offset += k as u64;
                    }
                    Err(b) => {
                        out.truncate(at);
                        return Err(self.drop_buffered(b));
                    }
                }
            }
            out.truncate(at);
        }
        Ok((done, false))
    }

    /// Skips the next `n` bytes without keeping them; returns how many were skipped, and
    /// whether a `bounded` skip stopped early at a record's gzip member.
    pub(crate) fn skip(&mut self, n: u64, bounded: bool) -> Result<(u64, bool), Break> {
        let mut done = 0u64;
        while done < n {
            let want = (n - done).min(OUT_BUF as u64) as usize;
            let avail = if bounded {
                self.bounded_chunk(want)?
            } else {
                self.fill(want)?.len().min(want)
            };
            if avail == 0 {
                return Ok((done, bounded && self.len > self.pos));
            }
            self.consume(avail);
            done += avail as u64;
        }
        Ok((done, false))
    }

    /// How many of the next `want` bytes a record's block may take now when records sit one
    /// per gzip member (CommonCrawl's layout): at most up to the next member start. `0` at
    /// the end of the input, or where a member starts with a WARC version line: there the
    /// block's `Content-Length` has run past its member into the next record, which a read of
    /// the rest would swallow (with every record after it, up to the end of the file).
    fn bounded_chunk(&mut self, want: usize) -> Result<usize, Break> {
        let avail = self.fill(want.min(OUT_BUF))?.len();
        if avail == 0 {
            return Ok(0);
        }
        let mut starts = self
            .member_starts
            .iter()
            .map(|&m| (m - self.offset) as usize);
        let limit = match starts.next() {
            Some(0) => {
                let next = starts.next();
                // Enough bytes to see a whole version line.
                let head = self.fill(16)?;
                if header::is_version_line(&head[..head.len().min(16)]) {
                    return Ok(0);
                }
                next
            }
            at => at,
        };
        let avail = self.len - self.pos;
        Ok(avail.min(want).min(limit.unwrap_or(usize::MAX)))
    }

    /// After a record's block: if the record ends its gzip member (CommonCrawl's layout),
    /// checks the member's CRC now, so a record whose bytes fail it is not passed on.
    pub(crate) fn check_record_end(&mut self) -> Result<(), Break> {
        // The record's closing CRLF CRLF, and with it the member's end.
        let rest = self.fill(4)?;
        let only_closing = rest.len() <= 4 && rest.iter().all(|c| matches!(c, b'\r' | b'\n'));
        if only_closing && self.src.at_member_end() {
            if let Err(b) = self.src.trailer() {
                return Err(self.drop_buffered(b));
            }
        }
        Ok(())
    }
}
