//! The Avro object container file framing, read by hand so that damage is located to the byte
//! and survived.
//!
//! # Layout (Avro specification, "Object Container Files")
//!
//! ```text
//! header: "Obj\x01"  metadata: map<bytes> (avro.schema, avro.codec, ...)  sync: 16 bytes
//! block:  count: long  size: long  data: size bytes  sync: 16 bytes
//! block:  ...
//! ```
//!
//! Longs are zig-zag varints. `data` holds `count` datums, compressed as a whole by the codec
//! (`null`: as is; `deflate`: raw deflate, RFC 1951, no zlib header or checksum).
//!
//! # Damage
//!
//! [`Container::next_block`] checks every block before handing out its data: a plausible count
//! (at most [`MAX_BLOCK_RECORDS`]) and size (at most [`MAX_BLOCK_BYTES`], so a corrupt size never
//! causes a huge allocation), the file's sync marker right after the data, data that inflates
//! (to at most [`MAX_BLOCK_BYTES`]). A block that fails is reported as a [`BlockError`] with its
//! byte offset, and reading **resynchronizes**: it goes on after the next occurrence of the
//! file's sync marker (every block ends with it), so one damaged block costs that block only.
//! A block cut by the end of the file ends the file. Time is linear in the input size whatever
//! the damage: every step either hands out a block or moves forward.
//!
//! The input is read through a window (a buffer with its absolute offset), so any [`Read`]
//! works, a FIFO included, and memory stays bounded by the largest block.

use std::fmt;
use std::io::{self, Read};

/// The first four bytes of every Avro object container file.
pub const MAGIC: [u8; 4] = *b"Obj\x01";

/// Largest block accepted, compressed or inflated (64 MiB). Real SysFlow blocks are tens of
/// KiB; a larger size is taken as corruption.
pub const MAX_BLOCK_BYTES: u64 = 64 << 20;

/// Largest record count accepted in a block header.
pub const MAX_BLOCK_RECORDS: u64 = 10_000_000;

/// Largest key or value in the header's metadata map (16 MiB; a SysFlow schema is ~10 KiB).
pub const MAX_METADATA_BYTES: u64 = 16 << 20;

/// Most entries accepted in the header's metadata map.
pub const MAX_METADATA_ENTRIES: usize = 1024;

/// Length of the sync marker.
pub const SYNC_LEN: usize = 16;

/// The longest zig-zag varint encoding of a long.
const MAX_VARINT: usize = 10;

/// How much the window reads at a time, and scans at a time when resynchronizing.
const CHUNK: usize = 64 << 10;

/// The codec of a container's blocks, from `avro.codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `null` (or no `avro.codec`): data stored as is.
    Null,
    /// `deflate`: raw deflate (RFC 1951).
    Deflate,
}

impl Codec {
    /// The name in `avro.codec`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Null => "null",
            Codec::Deflate => "deflate",
        }
    }
}

/// One entry of the header's metadata map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataEntry {
    /// The key, e.g. `avro.schema`.
    pub key: String,
    /// The value bytes.
    pub value: Vec<u8>,
    /// Byte offset of the value in the file (after its length prefix).
    pub offset: u64,
}

/// A container's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The metadata map, in file order.
    pub metadata: Vec<MetadataEntry>,
    /// The codec of the blocks.
    pub codec: Codec,
    /// The sync marker that ends the header and every block.
    pub sync: [u8; SYNC_LEN],
    /// Length of the header in bytes: the first block starts there.
    pub len: u64,
}

impl Header {
    /// The metadata entry `key`, if present (the last one if repeated).
    pub fn get(&self, key: &str) -> Option<&MetadataEntry> {
        self.metadata.iter().rev().find(|e| e.key == key)
    }
}

/// Why a header could not be read.
#[derive(Debug)]
pub enum HeaderError {
    /// The input has no byte at all.
    Empty,
    /// The input does not start with [`MAGIC`].
    BadMagic {
        /// The first bytes found (up to four).
        found: Vec<u8>,
    },
    /// The input ends inside the header.
    Truncated {
        /// Length of the input.
        end: u64,
    },
    /// The header's metadata map is not valid Avro.
    Malformed {
        /// Byte offset of the problem.
        at: u64,
        /// What is wrong.
        reason: String,
    },
    /// `avro.codec` names a codec this reader does not decode.
    UnsupportedCodec {
        /// The codec name.
        codec: String,
        /// Byte offset of the `avro.codec` value.
        at: u64,
    },
    /// Reading the input failed.
    Io {
        /// Bytes read before the failure.
        at: u64,
        /// The system error.
        source: io::Error,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Empty => f.write_str("empty file"),
            HeaderError::BadMagic { found } => write!(
                f,
                "wrong magic at byte 0: found \"{}\", expected \"Obj\\x01\"",
                found.escape_ascii()
            ),
            HeaderError::Truncated { end } => {
                write!(f, "the file ends at byte {end}, inside the Avro header")
            }
            HeaderError::Malformed { at, reason } => write!(f, "at byte {at}: {reason}"),
            HeaderError::UnsupportedCodec { codec, at } => write!(
                f,
                "unsupported codec \"{}\" (avro.codec at byte {at}); supported: null, deflate",
                codec.escape_debug()
            ),
            HeaderError::Io { at, source } => write!(f, "read error at byte {at}: {source}"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// What is wrong with a block.
#[derive(Debug)]
pub enum BlockProblem {
    /// The input ends inside the block.
    Truncated {
        /// Length of the input.
        end: u64,
    },
    /// The count or size is not a valid Avro long.
    BadVarint,
    /// The record count is negative or over [`MAX_BLOCK_RECORDS`].
    BadCount(i64),
    /// The size is negative or over [`MAX_BLOCK_BYTES`].
    BadSize(i64),
    /// The size runs past the end of the input, yet a sync marker follows the block start:
    /// the size is corrupt.
    SizePastEnd {
        /// The size read.
        size: u64,
        /// Length of the input.
        end: u64,
    },
    /// The bytes after the data are not the file's sync marker.
    WrongSync {
        /// Byte offset where the marker should be.
        at: u64,
    },
    /// The deflate data does not inflate.
    Deflate(String),
    /// The data inflates to more than [`MAX_BLOCK_BYTES`].
    TooLarge,
    /// The count is more than the data can hold (every SysFlow datum takes at least a byte).
    CountOverSize {
        /// The count.
        count: u64,
        /// Bytes of (inflated) data.
        bytes: u64,
    },
    /// Reading the input failed.
    Io(io::Error),
}

impl fmt::Display for BlockProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockProblem::Truncated { end } => {
                write!(
                    f,
                    "truncated: the file ends at byte {end}, inside the block"
                )
            }
            BlockProblem::BadVarint => f.write_str("its header is not a valid count and size"),
            BlockProblem::BadCount(n) => write!(
                f,
                "record count {n} is out of range (0 to {MAX_BLOCK_RECORDS})"
            ),
            BlockProblem::BadSize(n) => {
                write!(f, "size {n} bytes is out of range (0 to 64 MiB)")
            }
            BlockProblem::SizePastEnd { size, end } => write!(
                f,
                "size {size} bytes runs past the end of the file (byte {end})"
            ),
            BlockProblem::WrongSync { at } => write!(f, "wrong sync marker at byte {at}"),
            BlockProblem::Deflate(e) => write!(f, "corrupt deflate data: {e}"),
            BlockProblem::TooLarge => f.write_str("its data inflates to more than 64 MiB"),
            BlockProblem::CountOverSize { count, bytes } => write!(
                f,
                "record count {count} is more than its {bytes} bytes of data can hold"
            ),
            BlockProblem::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// What reading did after a damaged block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The block was skipped; reading goes on with the block at byte `at`.
    Resumed {
        /// Records of the skipped block, when its count could be read.
        records: Option<u64>,
        /// Byte offset of the next block.
        at: u64,
    },
    /// The block was the end of the input.
    EndOfFile {
        /// Records of the lost block, when its count could be read.
        records: Option<u64>,
    },
    /// No sync marker follows the damage: the rest of the input is skipped.
    RestSkipped {
        /// Records of the damaged block, when its count could be read.
        records: Option<u64>,
        /// Length of the input.
        end: u64,
    },
}

impl Recovery {
    /// Records of the damaged block, when known.
    pub fn records(self) -> Option<u64> {
        match self {
            Recovery::Resumed { records, .. }
            | Recovery::EndOfFile { records }
            | Recovery::RestSkipped { records, .. } => records,
        }
    }

    /// Whether nothing is read after this block.
    pub fn ends_input(self) -> bool {
        !matches!(self, Recovery::Resumed { .. })
    }
}

fn records_phrase(records: Option<u64>, verb: &str) -> String {
    match records {
        Some(1) => format!("its 1 record is {verb}"),
        Some(n) => format!("its {n} records are {verb}"),
        None => format!("its records are {verb}"),
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Recovery::Resumed { records, at } => write!(
                f,
                "{}, reading resumes at byte {at}",
                records_phrase(records, "skipped")
            ),
            Recovery::EndOfFile { records } => {
                write!(f, "{}; end of the file", records_phrase(records, "lost"))
            }
            Recovery::RestSkipped { records, end } => write!(
                f,
                "{}; no sync marker follows, the rest of the file (to byte {end}) is skipped",
                records_phrase(records, "skipped")
            ),
        }
    }
}

/// A damaged block: where, what, and how reading went on.
#[derive(Debug)]
pub struct BlockError {
    /// Byte offset of the block (its count).
    pub offset: u64,
    /// What is wrong.
    pub problem: BlockProblem,
    /// What reading did.
    pub recovery: Recovery,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "block at byte {}: {}; {}",
            self.offset, self.problem, self.recovery
        )
    }
}

impl std::error::Error for BlockError {}

/// A block that passed every check; its inflated data was written to the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Byte offset of the block (its count).
    pub offset: u64,
    /// Number of datums in the block.
    pub count: u64,
    /// Byte offset just after the block's sync marker: the next block.
    pub end: u64,
}

// ---------------------------------------------------------------------------------------------
// The input window
// ---------------------------------------------------------------------------------------------

/// A read buffer that knows the absolute offset of its bytes and can look ahead.
#[derive(Debug)]
struct Window<R> {
    inner: R,
    /// `buf[pos..end]` are the bytes read and not consumed; the rest of `buf` is initialized
    /// scratch space, kept so that reads land in it without zeroing it again.
    buf: Vec<u8>,
    /// Index in `buf` of the next unconsumed byte.
    pos: usize,
    /// End of the bytes read in `buf`.
    end: usize,
    /// Absolute offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl<R: Read> Window<R> {
    fn new(inner: R) -> Self {
        Window {
            inner,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
        }
    }

    /// Absolute offset of the next unconsumed byte.
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or_default()
    }

    /// Makes at least `n` unconsumed bytes available, unless the input ends first, and returns
    /// the unconsumed bytes (fewer than `n` only at the end of the input).
    fn fill(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.end - self.pos < n && !self.eof {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.base += self.pos as u64;
                self.end -= self.pos;
                self.pos = 0;
            }
            // Grow by one chunk per read at most: a corrupt size that asks for 64 MiB of a
            // short input must not cost 64 MiB of zeroed memory.
            if self.buf.len() < self.end + CHUNK {
                self.buf.resize(self.end + CHUNK, 0);
            }
            let space = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.inner.read(space) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.available())
    }

    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.end);
    }

    /// Consumes everything to the end of the input; returns its length.
    fn consume_all(&mut self) -> io::Result<u64> {
        loop {
            let len = self.fill(CHUNK)?.len();
            self.consume(len);
            if len < CHUNK {
                return Ok(self.offset());
            }
        }
    }

    /// Consumes up to and including the next occurrence of `marker` at or after the current
    /// offset; `Some(offset after it)`, or `None` (everything consumed) when there is none.
    fn skip_past(&mut self, marker: &[u8; SYNC_LEN]) -> io::Result<Option<u64>> {
        loop {
            let avail = self.fill(CHUNK)?;
            let at_end = avail.len() < CHUNK;
            if let Some(i) = find(avail, marker) {
                self.consume(i + SYNC_LEN);
                return Ok(Some(self.offset()));
            }
            if at_end {
                let len = avail.len();
                self.consume(len);
                return Ok(None);
            }
            let keep = SYNC_LEN - 1;
            let len = avail.len();
            self.consume(len - keep);
        }
    }
}

fn find(hay: &[u8], marker: &[u8; SYNC_LEN]) -> Option<usize> {
    hay.windows(SYNC_LEN).position(|w| w == marker)
}

/// A zig-zag varint at the start of `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Varint {
    /// The value and its length in bytes.
    Value(i64, usize),
    /// `bytes` ends before the varint does.
    Truncated,
    /// Longer than ten bytes or overflowing.
    Invalid,
}

fn varint(bytes: &[u8]) -> Varint {
    let mut raw: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(MAX_VARINT) {
        if i == MAX_VARINT - 1 && b > 1 {
            return Varint::Invalid;
        }
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Varint::Value(value, i + 1);
        }
    }
    if bytes.len() >= MAX_VARINT {
        Varint::Invalid
    } else {
        Varint::Truncated
    }
}

// ---------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------

fn fill_header<R: Read>(w: &mut Window<R>, n: usize) -> Result<&[u8], HeaderError> {
    let at = w.offset();
    w.fill(n).map_err(|source| HeaderError::Io { at, source })
}

fn header_long<R: Read>(w: &mut Window<R>) -> Result<i64, HeaderError> {
    let at = w.offset();
    let avail = fill_header(w, MAX_VARINT)?;
    match varint(avail) {
        Varint::Value(v, len) => {
            w.consume(len);
            Ok(v)
        }
        Varint::Truncated => Err(HeaderError::Truncated {
            end: at + avail.len() as u64,
        }),
        Varint::Invalid => Err(HeaderError::Malformed {
            at,
            reason: "invalid varint in the metadata map".to_owned(),
        }),
    }
}

/// A length-prefixed byte string of the metadata map, and the offset of its bytes.
fn header_bytes<R: Read>(w: &mut Window<R>, what: &str) -> Result<(Vec<u8>, u64), HeaderError> {
    let at = w.offset();
    let len = header_long(w)?;
    let len = u64::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_METADATA_BYTES)
        .ok_or_else(|| HeaderError::Malformed {
            at,
            reason: format!("metadata {what} length {len} is out of range (0 to 16 MiB)"),
        })?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let start = w.offset();
    let avail = fill_header(w, len)?;
    let Some(bytes) = avail.get(..len) else {
        return Err(HeaderError::Truncated {
            end: start + avail.len() as u64,
        });
    };
    let bytes = bytes.to_vec();
    w.consume(len);
    Ok((bytes, start))
}

fn read_header<R: Read>(w: &mut Window<R>) -> Result<Header, HeaderError> {
    let magic = fill_header(w, MAGIC.len())?;
    if magic.is_empty() {
        return Err(HeaderError::Empty);
    }
    if magic.len() < MAGIC.len() && MAGIC.starts_with(magic) {
        return Err(HeaderError::Truncated {
            end: magic.len() as u64,
        });
    }
    if magic.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(HeaderError::BadMagic {
            found: magic.iter().take(MAGIC.len()).copied().collect(),
        });
    }
    w.consume(MAGIC.len());
    let mut metadata: Vec<MetadataEntry> = Vec::new();
    loop {
        let at = w.offset();
        let count = header_long(w)?;
        if count == 0 {
            break;
        }
        if count < 0 {
            header_long(w)?; // the block's byte size, not needed
        }
        let count = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        if count > MAX_METADATA_ENTRIES - metadata.len() {
            return Err(HeaderError::Malformed {
                at,
                reason: format!("the metadata map has more than {MAX_METADATA_ENTRIES} entries"),
            });
        }
        for _ in 0..count {
            let key_at = w.offset();
            let (key, _) = header_bytes(w, "key")?;
            let key = String::from_utf8(key).map_err(|_| HeaderError::Malformed {
                at: key_at,
                reason: "a metadata key is not UTF-8".to_owned(),
            })?;
            let (value, offset) = header_bytes(w, "value")?;
            metadata.push(MetadataEntry { key, value, offset });
        }
    }
    let at = w.offset();
    let avail = fill_header(w, SYNC_LEN)?;
    let Some(sync) = avail
        .get(..SYNC_LEN)
        .and_then(|s| <[u8; SYNC_LEN]>::try_from(s).ok())
    else {
        return Err(HeaderError::Truncated {
            end: at + avail.len() as u64,
        });
    };
    w.consume(SYNC_LEN);
    let mut header = Header {
        metadata,
        codec: Codec::Null,
        sync,
        len: w.offset(),
    };
    if let Some(entry) = header.get("avro.codec") {
        header.codec = match entry.value.as_slice() {
            b"null" => Codec::Null,
            b"deflate" => Codec::Deflate,
            other => {
                return Err(HeaderError::UnsupportedCodec {
                    codec: String::from_utf8_lossy(other).into_owned(),
                    at: entry.offset,
                });
            }
        };
    }
    Ok(header)
}

// ---------------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------------

/// An Avro object container being read block by block.
#[derive(Debug)]
pub struct Container<R> {
    window: Window<R>,
    header: Header,
    done: bool,
    /// The inflater, reset for each block (its state and window allocated once).
    inflater: Inflater,
}

/// A block header as read, before any check of its values.
struct RawHead {
    count: i64,
    size: i64,
    len: usize,
}

impl<R: Read> Container<R> {
    /// Reads the header from `source`.
    ///
    /// # Errors
    /// [`HeaderError`] when `source` is empty, not an Avro container, has a truncated or
    /// malformed header, uses an unsupported codec, or cannot be read.
    pub fn open(source: R) -> Result<Self, HeaderError> {
        let mut window = Window::new(source);
        let header = read_header(&mut window)?;
        Ok(Container {
            window,
            header,
            done: false,
            inflater: Inflater(flate2::Decompress::new(false)),
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes of the input consumed so far: the header and every block read or skipped.
    pub fn offset(&self) -> u64 {
        self.window.offset()
    }

    /// Reads the next block and writes its inflated data into `data` (replacing its content).
    ///
    /// `None` at the end of the input (or after a damaged block that ended it). A damaged
    /// block yields `Some(Err(..))` and is skipped; the next call goes on after it
    /// ([`BlockError::recovery`] says where).
    pub fn next_block(&mut self, data: &mut Vec<u8>) -> Option<Result<BlockInfo, BlockError>> {
        if self.done {
            return None;
        }
        let result = self.read_block(data);
        match &result {
            Some(Err(e)) if e.recovery.ends_input() => self.done = true,
            None => self.done = true,
            _ => {}
        }
        result
    }

    fn read_block(&mut self, data: &mut Vec<u8>) -> Option<Result<BlockInfo, BlockError>> {
        let offset = self.window.offset();
        let avail = match self.window.fill(2 * MAX_VARINT) {
            Ok(a) => a,
            Err(e) => return Some(Err(self.io_error(offset, None, e))),
        };
        if avail.is_empty() {
            return None;
        }
        let head = match read_head(avail) {
            Ok(head) => head,
            Err((problem, count)) => {
                return Some(Err(match problem {
                    BlockProblem::Truncated { .. } => {
                        let len = avail.len();
                        let end = offset + len as u64;
                        self.window.consume(len);
                        BlockError {
                            offset,
                            problem: BlockProblem::Truncated { end },
                            recovery: Recovery::EndOfFile { records: count },
                        }
                    }
                    problem => self.resync(offset, problem, None),
                }));
            }
        };
        let count = match u64::try_from(head.count) {
            Ok(c) if c <= MAX_BLOCK_RECORDS => c,
            _ => {
                return Some(Err(self.resync(
                    offset,
                    BlockProblem::BadCount(head.count),
                    None,
                )));
            }
        };
        let size = match u64::try_from(head.size) {
            Ok(s) if s <= MAX_BLOCK_BYTES => s,
            _ => {
                let problem = BlockProblem::BadSize(head.size);
                return Some(Err(self.resync(offset, problem, Some(count))));
            }
        };
        // At most 64 MiB + 36: fits any usize this code runs on.
        let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
        let total = head.len + size_usize + SYNC_LEN;
        let avail = match self.window.fill(total) {
            Ok(a) => a,
            Err(e) => return Some(Err(self.io_error(offset, Some(count), e))),
        };
        if avail.len() < total {
            let end = offset + avail.len() as u64;
            // A sync marker after the block start means the size is wrong, not the file short.
            if let Some(i) = avail.get(1..).and_then(|a| find(a, &self.header.sync)) {
                self.window.consume(1 + i + SYNC_LEN);
                return Some(Err(BlockError {
                    offset,
                    problem: BlockProblem::SizePastEnd { size, end },
                    recovery: Recovery::Resumed {
                        records: Some(count),
                        at: self.window.offset(),
                    },
                }));
            }
            let len = avail.len();
            self.window.consume(len);
            return Some(Err(BlockError {
                offset,
                problem: BlockProblem::Truncated { end },
                recovery: Recovery::EndOfFile {
                    records: Some(count),
                },
            }));
        }
        let marker_at = head.len + size_usize;
        if avail.get(marker_at..total) != Some(&self.header.sync[..]) {
            return Some(Err(self.wrong_sync(offset, count, total)));
        }
        let compressed = avail.get(head.len..marker_at).unwrap_or_default();
        let inflated = self.inflater.inflate(self.header.codec, compressed, data);
        self.window.consume(total);
        let end = self.window.offset();
        let problem = match inflated {
            Ok(()) if count as usize > data.len() => BlockProblem::CountOverSize {
                count,
                bytes: data.len() as u64,
            },
            Ok(()) => return Some(Ok(BlockInfo { offset, count, end })),
            Err(problem) => problem,
        };
        data.clear();
        Some(Err(BlockError {
            offset,
            problem,
            recovery: Recovery::Resumed {
                records: Some(count),
                at: end,
            },
        }))
    }

    /// The block at `offset` ends with a wrong marker; `total` is its length by its header,
    /// all of it in the window.
    fn wrong_sync(&mut self, offset: u64, count: u64, total: usize) -> BlockError {
        let problem = BlockProblem::WrongSync {
            at: offset + (total - SYNC_LEN) as u64,
        };
        let avail = self.window.available();
        // A marker inside the block's extent: its size is wrong; the next block is there.
        if let Some(i) = avail.get(1..total).and_then(|a| find(a, &self.header.sync)) {
            self.window.consume(1 + i + SYNC_LEN);
            return BlockError {
                offset,
                problem,
                recovery: Recovery::Resumed {
                    records: Some(count),
                    at: self.window.offset(),
                },
            };
        }
        // Only the marker is damaged if a sound block (or the end of the input) follows.
        if self.sound_block_at(total) {
            self.window.consume(total);
            return BlockError {
                offset,
                problem,
                recovery: Recovery::Resumed {
                    records: Some(count),
                    at: self.window.offset(),
                },
            };
        }
        // The marker searched so far could straddle `total - SYNC_LEN`.
        self.window.consume(total - SYNC_LEN + 1);
        self.skip_to_sync(offset, problem, Some(count))
    }

    /// Whether a block with a plausible header and the right sync marker starts at `rel`
    /// bytes into the window, or the input ends exactly there.
    fn sound_block_at(&mut self, rel: usize) -> bool {
        let Ok(avail) = self.window.fill(rel + 2 * MAX_VARINT) else {
            return false;
        };
        let Some(rest) = avail.get(rel..) else {
            return false;
        };
        if rest.is_empty() {
            return true;
        }
        let Ok(head) = read_head(rest) else {
            return false;
        };
        let plausible = u64::try_from(head.count).is_ok_and(|c| c <= MAX_BLOCK_RECORDS)
            && u64::try_from(head.size).is_ok_and(|s| s <= MAX_BLOCK_BYTES);
        if !plausible {
            return false;
        }
        let marker_at = rel + head.len + usize::try_from(head.size).unwrap_or(usize::MAX);
        let Ok(avail) = self.window.fill(marker_at + SYNC_LEN) else {
            return false;
        };
        avail.get(marker_at..marker_at + SYNC_LEN) == Some(&self.header.sync[..])
    }

    /// Skips the damaged block at `offset` by scanning from the byte after it for the sync
    /// marker.
    fn resync(&mut self, offset: u64, problem: BlockProblem, records: Option<u64>) -> BlockError {
        self.window.consume(1);
        self.skip_to_sync(offset, problem, records)
    }

    /// Scans from the current offset for the sync marker and resumes after it.
    fn skip_to_sync(
        &mut self,
        offset: u64,
        problem: BlockProblem,
        records: Option<u64>,
    ) -> BlockError {
        let recovery = match self.window.skip_past(&self.header.sync) {
            Ok(Some(at)) => Recovery::Resumed { records, at },
            Ok(None) => Recovery::RestSkipped {
                records,
                end: self.window.offset(),
            },
            Err(e) => return self.io_error(offset, records, e),
        };
        BlockError {
            offset,
            problem,
            recovery,
        }
    }

    fn io_error(&mut self, offset: u64, records: Option<u64>, e: io::Error) -> BlockError {
        self.done = true;
        let _ = self.window.consume_all();
        BlockError {
            offset,
            problem: BlockProblem::Io(e),
            recovery: Recovery::EndOfFile { records },
        }
    }
}

/// Parses a block's count and size at the start of `bytes`. On error, the problem (with
/// `Truncated { end: 0 }` standing for "the bytes end first") and the count if it was read.
fn read_head(bytes: &[u8]) -> Result<RawHead, (BlockProblem, Option<u64>)> {
    let (count, n1) = match varint(bytes) {
        Varint::Value(v, n) => (v, n),
        Varint::Truncated => return Err((BlockProblem::Truncated { end: 0 }, None)),
        Varint::Invalid => return Err((BlockProblem::BadVarint, None)),
    };
    let rest = bytes.get(n1..).unwrap_or_default();
    match varint(rest) {
        Varint::Value(size, n2) => Ok(RawHead {
            count,
            size,
            len: n1 + n2,
        }),
        Varint::Truncated => Err((
            BlockProblem::Truncated { end: 0 },
            u64::try_from(count)
                .ok()
                .filter(|&c| c <= MAX_BLOCK_RECORDS),
        )),
        Varint::Invalid => Err((BlockProblem::BadVarint, None)),
    }
}

/// A raw-deflate (RFC 1951) inflater kept from block to block.
struct Inflater(flate2::Decompress);

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inflater")
    }
}

/// What an inflated block's buffer grows by, at least.
const INFLATE_STEP: usize = 64 << 10;

impl Inflater {
    /// Inflates `compressed` into `data` (replacing its content), at most
    /// [`MAX_BLOCK_BYTES`]. The output goes straight into `data`'s spare capacity (no zeroing,
    /// no copy), which is kept from block to block.
    fn inflate(
        &mut self,
        codec: Codec,
        compressed: &[u8],
        data: &mut Vec<u8>,
    ) -> Result<(), BlockProblem> {
        use flate2::{FlushDecompress, Status};
        data.clear();
        if codec == Codec::Null {
            data.extend_from_slice(compressed);
            return Ok(());
        }
        let d = &mut self.0;
        d.reset(false);
        let limit = usize::try_from(MAX_BLOCK_BYTES).unwrap_or(usize::MAX);
        // SysFlow blocks inflate about 4 to 6 times.
        let first = compressed
            .len()
            .saturating_mul(6)
            .clamp(INFLATE_STEP, limit);
        if data.capacity() < first {
            data.reserve(first);
        }
        loop {
            if data.len() == data.capacity() {
                if data.len() >= limit {
                    return Err(BlockProblem::TooLarge);
                }
                let more = data.capacity().clamp(INFLATE_STEP, limit - data.len());
                data.reserve(more);
            }
            let consumed = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
            let input = compressed.get(consumed..).unwrap_or_default();
            let (in_before, out_before) = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(input, data, FlushDecompress::None)
                .map_err(|_| BlockProblem::Deflate("corrupt deflate stream".to_owned()))?;
            if data.len() > limit {
                return Err(BlockProblem::TooLarge);
            }
            match status {
                Status::StreamEnd => return Ok(()),
                Status::Ok | Status::BufError => {
                    let progress = d.total_in() != in_before || d.total_out() != out_before;
                    if !progress && data.len() < data.capacity() {
                        return Err(BlockProblem::Deflate(
                            "truncated deflate stream (no end of stream)".to_owned(),
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_like_avro_longs() {
        assert_eq!(varint(&[0]), Varint::Value(0, 1));
        assert_eq!(varint(&[1]), Varint::Value(-1, 1));
        assert_eq!(varint(&[2]), Varint::Value(1, 1));
        assert_eq!(varint(&[0x80, 0x01]), Varint::Value(64, 2));
        assert_eq!(varint(&[0x80]), Varint::Truncated);
        assert_eq!(varint(&[]), Varint::Truncated);
        let max = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&max), Varint::Value(i64::MAX, 10));
        let min = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&min), Varint::Value(i64::MIN, 10));
        assert_eq!(varint(&[0xff; 10]), Varint::Invalid);
        assert_eq!(varint(&[0xff; 11]), Varint::Invalid);
        let mut over = max;
        over[9] = 0x02;
        assert_eq!(varint(&over), Varint::Invalid);
    }

    #[test]
    fn the_window_finds_a_marker_across_chunks() {
        let marker = [7u8; SYNC_LEN];
        let mut bytes = vec![0u8; CHUNK * 3];
        let at = CHUNK - 5;
        bytes[at..at + SYNC_LEN].copy_from_slice(&marker);
        let mut w = Window::new(&bytes[..]);
        assert_eq!(
            w.skip_past(&marker).ok(),
            Some(Some((at + SYNC_LEN) as u64))
        );
        assert_eq!(w.skip_past(&marker).ok(), Some(None));
        assert_eq!(w.offset(), bytes.len() as u64);
    }
}
