//! A minimal Avro object container reader for the fast decoder: header (magic, metadata,
//! sync marker), then blocks (`count`, `size`, data, sync marker), with the `null` and
//! `deflate` codecs.
//!
//! Damage to the framing (truncated file, bad sync marker, a block that does not inflate)
//! ends the file after the records before it, as in `avro.rs`; finding the next block after
//! damage is the container layer's job (`container.rs`, to be unified with this one).

use std::fs::File as FsFile;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use flate2::{Decompress, FlushDecompress, Status};
use sf_processor::model::Record;

use super::{DatumError, SysFlowDecoder};

/// Largest header (metadata map) accepted, in bytes.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Largest data block accepted, compressed or not, in bytes (collector blocks are ~80 KB).
pub const MAX_BLOCK_BYTES: usize = 256 << 20;

/// An error reading a SysFlow trace with the fast decoder. Every variant names the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FastError {
    /// The file cannot be opened.
    #[error("{file}: cannot open: {source}")]
    Open {
        /// The path.
        file: String,
        /// The system error.
        source: io::Error,
    },
    /// Reading failed.
    #[error("{file}: read error at byte {offset}: {source}")]
    Io {
        /// The input's name.
        file: Arc<str>,
        /// Bytes read before the error.
        offset: u64,
        /// The system error.
        source: io::Error,
    },
    /// The input is empty.
    #[error("{file}: empty file (not an Avro object container file)")]
    Empty {
        /// The input's name.
        file: String,
    },
    /// The input does not start with the Avro magic `Obj\x01`.
    #[error("{file}: not an Avro object container file (wrong magic, expected \"Obj\\x01\")")]
    BadMagic {
        /// The input's name.
        file: String,
    },
    /// The Avro header is truncated or malformed.
    #[error("{file}: bad Avro header at byte {offset}: {reason}")]
    Header {
        /// The input's name.
        file: String,
        /// Where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A valid Avro file whose writer schema is not `sysflow.SysFlow` with a `rec` union.
    #[error("{file}: not a SysFlow trace: {reason}")]
    NotSysFlow {
        /// The input's name.
        file: String,
        /// What is wrong with the schema.
        reason: String,
    },
    /// A codec this reader does not implement.
    #[error("{file}: unsupported Avro codec {codec:?} (the fast reader reads null and deflate)")]
    Codec {
        /// The input's name.
        file: String,
        /// The header's `avro.codec`.
        codec: String,
    },
    /// The block framing is damaged (truncated, bad sync marker, bad count or size, data that
    /// does not inflate). Ends the input.
    #[error("{file}: block {block} at byte {offset}: {reason}")]
    Block {
        /// The input's name.
        file: Arc<str>,
        /// 0-based index of the block.
        block: u64,
        /// Byte offset of the block in the input.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A datum that cannot be decoded; see [`DatumError::ends_block`] for whether the input
    /// goes on.
    #[error("{file}: record {record} (block at byte {block_offset}): {error}")]
    Datum {
        /// The input's name.
        file: Arc<str>,
        /// 0-based index of the datum in the input.
        record: u64,
        /// Byte offset of the datum's block in the input.
        block_offset: u64,
        /// What, where in the block.
        error: Box<DatumError>,
    },
}

impl FastError {
    /// Whether the input cannot be read any further after this error. Only a datum with a
    /// field problem (or of an unknown branch) is skipped with the iteration going on.
    pub fn ends_stream(&self) -> bool {
        match self {
            FastError::Datum { error, .. } => error.ends_block(),
            _ => true,
        }
    }
}

/// Opens `path`, reads its Avro header and builds the decoder for its writer schema.
///
/// # Errors
/// A [`FastError`] naming the path: cannot open, empty, not Avro, bad header, not SysFlow,
/// unsupported codec.
pub fn open(path: &Path) -> Result<FastReader<BufReader<FsFile>>, FastError> {
    let name = path.display().to_string();
    let file = FsFile::open(path).map_err(|source| FastError::Open {
        file: name.clone(),
        source,
    })?;
    FastReader::new(BufReader::with_capacity(256 << 10, file), name)
}

/// The codec of the data blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockCodec {
    Null,
    Deflate,
}

/// Iterates over the records of one SysFlow Avro object container file, decoded by
/// [`SysFlowDecoder`].
///
/// Yields `Ok(record)` per datum in file order; a datum with a field problem yields an `Err`
/// and the iteration goes on; damaged data is yielded once and ends the iteration.
pub struct FastReader<R: Read> {
    name: Arc<str>,
    source: R,
    pub(super) decoder: SysFlowDecoder,
    codec: BlockCodec,
    codec_name: String,
    sync: [u8; 16],
    header_len: u64,
    /// Bytes consumed from the source.
    offset: u64,
    /// The current block's raw (possibly compressed) bytes.
    raw: Vec<u8>,
    /// The current block's datums are `block[..block_len]` (inflated; or the raw bytes,
    /// swapped in, for `null`). The rest of `block` is initialized scratch space, kept so that
    /// inflating the next block writes into it without zeroing it first.
    block: Vec<u8>,
    block_len: usize,
    inflate: Decompress,
    /// Bytes of datum data in the blocks loaded so far (after inflating).
    data_bytes: u64,
    pos: usize,
    left: u64,
    blocks: u64,
    block_offset: u64,
    next_record: u64,
    done: bool,
}

impl<R: Read> std::fmt::Debug for FastReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastReader")
            .field("name", &self.name)
            .field("codec", &self.codec_name)
            .field("offset", &self.offset)
            .field("next_record", &self.next_record)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` at end of input before the first byte.
fn read_full<R: Read>(source: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(buf.get_mut(filled..).unwrap_or_default()) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What went wrong reading a varint or a byte run from the source.
enum Short {
    /// End of input before the first byte.
    End,
    /// End of input in the middle.
    Truncated,
    Io(io::Error),
    Bad(String),
}

impl<R: Read> FastReader<R> {
    /// Reads the Avro header and writer schema from `source`; `name` (a path, a socket name)
    /// is what errors call this input.
    ///
    /// # Errors
    /// As [`open`], but for an already open source.
    pub fn new(mut source: R, name: String) -> Result<Self, FastError> {
        let mut offset = 0u64;
        let mut magic = [0u8; 4];
        match read_full(&mut source, &mut magic) {
            Ok(false) => return Err(FastError::Empty { file: name }),
            Ok(true) if &magic == b"Obj\x01" => {}
            Ok(true) => return Err(FastError::BadMagic { file: name }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(FastError::BadMagic { file: name });
            }
            Err(source) => {
                return Err(FastError::Io {
                    file: name.into(),
                    offset,
                    source,
                });
            }
        }
        offset += 4;
        let header_error = |offset: u64, reason: String| FastError::Header {
            file: name.clone(),
            offset,
            reason,
        };
        let short = |offset: u64, what: &str, s: Short| match s {
            Short::End | Short::Truncated => {
                header_error(offset, format!("truncated in the {what}"))
            }
            Short::Io(e) => header_error(offset, format!("read error in the {what}: {e}")),
            Short::Bad(reason) => header_error(offset, format!("{what}: {reason}")),
        };
        // Metadata: a map of bytes, in blocks.
        let mut schema = None;
        let mut codec = None;
        let mut budget = MAX_HEADER_BYTES;
        loop {
            let at = offset;
            let count = varint(&mut source, &mut offset).map_err(|s| short(at, "metadata", s))?;
            if count == 0 {
                break;
            }
            if count < 0 {
                varint(&mut source, &mut offset).map_err(|s| short(at, "metadata", s))?;
            }
            for _ in 0..count.unsigned_abs() {
                let at = offset;
                let key = bytes(&mut source, &mut offset, &mut budget)
                    .map_err(|s| short(at, "metadata key", s))?;
                let at = offset;
                let value = bytes(&mut source, &mut offset, &mut budget)
                    .map_err(|s| short(at, "metadata value", s))?;
                match key.as_slice() {
                    b"avro.schema" => schema = Some(value),
                    b"avro.codec" => codec = Some(value),
                    _ => {}
                }
            }
        }
        let mut sync = [0u8; 16];
        match read_full(&mut source, &mut sync) {
            Ok(true) => offset += 16,
            Ok(false) => return Err(header_error(offset, "no sync marker".to_owned())),
            Err(e) => return Err(header_error(offset, format!("sync marker: {e}"))),
        }
        let Some(schema) = schema else {
            return Err(header_error(
                offset,
                "no avro.schema in the metadata".to_owned(),
            ));
        };
        let Ok(schema) = std::str::from_utf8(&schema) else {
            return Err(header_error(offset, "avro.schema is not UTF-8".to_owned()));
        };
        let codec_name = codec.map_or_else(
            || "null".to_owned(),
            |c| String::from_utf8_lossy(&c).into_owned(),
        );
        let codec = match codec_name.as_str() {
            "null" => BlockCodec::Null,
            "deflate" => BlockCodec::Deflate,
            _ => {
                return Err(FastError::Codec {
                    file: name,
                    codec: codec_name,
                });
            }
        };
        let decoder =
            SysFlowDecoder::from_schema_json(schema).map_err(|reason| FastError::NotSysFlow {
                file: name.clone(),
                reason,
            })?;
        Ok(FastReader {
            name: name.into(),
            source,
            decoder,
            codec,
            codec_name,
            sync,
            header_len: offset,
            offset,
            raw: Vec::new(),
            block: Vec::new(),
            block_len: 0,
            inflate: Decompress::new(false),
            data_bytes: 0,
            pos: 0,
            left: 0,
            blocks: 0,
            block_offset: offset,
            next_record: 0,
            done: false,
        })
    }

    /// The input's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Avro codec of the data blocks (`"deflate"` or `"null"`).
    pub fn codec(&self) -> &str {
        &self.codec_name
    }

    /// Length of the Avro header in bytes.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// The decoder built from the writer schema.
    pub fn decoder(&self) -> &SysFlowDecoder {
        &self.decoder
    }

    /// Datums read so far (decoded or not): the index of the next one.
    pub fn records_read(&self) -> u64 {
        self.next_record
    }

    /// Bytes consumed from the source so far (header included).
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// Bytes of Avro datum data in the blocks loaded so far (inflated, for `deflate`).
    pub fn block_bytes_read(&self) -> u64 {
        self.data_bytes
    }

    fn block_error(&self, reason: String) -> FastError {
        FastError::Block {
            file: Arc::clone(&self.name),
            block: self.blocks,
            offset: self.block_offset,
            reason,
        }
    }

    /// Loads the next block; `Ok(false)` at the end of the input.
    fn load_block(&mut self) -> Result<bool, FastError> {
        self.block_offset = self.offset;
        let describe = |what: &str, s: Short| match s {
            Short::End | Short::Truncated => format!("truncated in the {what}"),
            Short::Io(e) => format!("read error in the {what}: {e}"),
            Short::Bad(reason) => format!("{what}: {reason}"),
        };
        let count = match varint(&mut self.source, &mut self.offset) {
            Ok(n) => n,
            Err(Short::End) => return Ok(false),
            Err(s) => return Err(self.block_error(describe("datum count", s))),
        };
        let size = varint(&mut self.source, &mut self.offset)
            .map_err(|s| self.block_error(describe("block size", s)))?;
        let (Ok(count), Ok(size)) = (u64::try_from(count), usize::try_from(size)) else {
            return Err(self.block_error(format!("negative datum count {count} or size {size}")));
        };
        if size > MAX_BLOCK_BYTES {
            return Err(self.block_error(format!(
                "block of {size} bytes, more than the {MAX_BLOCK_BYTES} accepted"
            )));
        }
        self.raw.clear();
        let got = (&mut self.source)
            .take(size as u64)
            .read_to_end(&mut self.raw)
            .map_err(|e| self.block_error(format!("read error in the block data: {e}")))?;
        self.offset += got as u64;
        if got < size {
            return Err(self.block_error(format!(
                "truncated: the block has {size} bytes, the input ends after {got}"
            )));
        }
        let mut sync = [0u8; 16];
        match read_full(&mut self.source, &mut sync) {
            Ok(true) if sync == self.sync => self.offset += 16,
            Ok(true) => {
                return Err(self.block_error(
                    "sync marker does not match the header's (corrupt block size or data)"
                        .to_owned(),
                ));
            }
            Ok(false) | Err(_) => {
                return Err(self.block_error(
                    "truncated: the input ends before the block's sync marker".to_owned(),
                ));
            }
        }
        match self.codec {
            BlockCodec::Null => {
                std::mem::swap(&mut self.raw, &mut self.block);
                self.block_len = self.block.len();
            }
            BlockCodec::Deflate => self.inflate_block()?,
        }
        if count > self.block_len as u64 {
            // Every datum takes at least one byte (its union index).
            return Err(self.block_error(format!(
                "{count} datums in {} bytes of data",
                self.block_len
            )));
        }
        self.pos = 0;
        self.left = count;
        self.blocks += 1;
        self.data_bytes += self.block_len as u64;
        Ok(true)
    }

    /// Inflates `raw` (raw deflate, RFC 1951) into `block[..block_len]`, at most
    /// [`MAX_BLOCK_BYTES`].
    fn inflate_block(&mut self) -> Result<(), FastError> {
        self.inflate.reset(false);
        self.block_len = 0;
        let first = (self.raw.len() * 4).clamp(64 << 10, MAX_BLOCK_BYTES);
        if self.block.len() < first {
            self.block.resize(first, 0);
        }
        let mut consumed = 0usize;
        loop {
            if self.block_len == self.block.len() {
                if self.block.len() >= MAX_BLOCK_BYTES {
                    return Err(self.block_error(format!(
                        "the block inflates to more than {MAX_BLOCK_BYTES} bytes"
                    )));
                }
                let grown = (self.block.len() * 2).min(MAX_BLOCK_BYTES);
                self.block.resize(grown, 0);
            }
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let input = self.raw.get(consumed..).unwrap_or_default();
            let output = self.block.get_mut(self.block_len..).unwrap_or_default();
            let status = self
                .inflate
                .decompress(input, output, FlushDecompress::None)
                .map_err(|e| self.block_error(format!("deflate data is corrupt: {e}")))?;
            consumed += (self.inflate.total_in() - in_before) as usize;
            self.block_len += (self.inflate.total_out() - out_before) as usize;
            match status {
                Status::StreamEnd => return Ok(()),
                Status::Ok | Status::BufError => {
                    let progress = self.inflate.total_in() != in_before
                        || self.inflate.total_out() != out_before;
                    if !progress && self.block_len < self.block.len() {
                        return Err(self.block_error(
                            "deflate data is truncated (no end of stream)".to_owned(),
                        ));
                    }
                }
            }
        }
    }
}

impl<R: Read> Iterator for FastReader<R> {
    type Item = Result<Record, FastError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while self.left == 0 {
            if self.pos < self.block_len {
                // Bytes after the block's last datum.
                let trailing = self.block_len - self.pos;
                self.pos = self.block_len;
                self.done = true;
                return Some(Err(self.datum_error(DatumError {
                    datum_offset: self.pos - trailing,
                    offset: self.pos - trailing,
                    record_type: None,
                    field: String::new(),
                    problem: super::DatumProblem::TrailingBytes(trailing as u64),
                })));
            }
            match self.load_block() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.left -= 1;
        let record = self.next_record;
        self.next_record += 1;
        let block = self.block.get(..self.block_len).unwrap_or_default();
        match self.decoder.decode_datum(block, &mut self.pos) {
            Ok(r) => Some(Ok(r)),
            Err(e) => {
                if e.ends_block() {
                    self.done = true;
                }
                Some(Err(FastError::Datum {
                    file: Arc::clone(&self.name),
                    record,
                    block_offset: self.block_offset,
                    error: Box::new(e),
                }))
            }
        }
    }
}

impl<R: Read> FastReader<R> {
    fn datum_error(&self, error: DatumError) -> FastError {
        FastError::Datum {
            file: Arc::clone(&self.name),
            record: self.next_record,
            block_offset: self.block_offset,
            error: Box::new(error),
        }
    }
}

/// A zigzag varint from the source.
fn varint<R: Read>(source: &mut R, offset: &mut u64) -> Result<i64, Short> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        match read_full(source, &mut byte) {
            Ok(true) => *offset += 1,
            Ok(false) if i == 0 => return Err(Short::End),
            Ok(false) => return Err(Short::Truncated),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(Short::Truncated),
            Err(e) => return Err(Short::Io(e)),
        }
        let [b] = byte;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(Short::Bad("varint longer than 10 bytes".to_owned()))
}

/// A length-prefixed byte string from the source, charged to `budget`.
fn bytes<R: Read>(source: &mut R, offset: &mut u64, budget: &mut u64) -> Result<Vec<u8>, Short> {
    let len = varint(source, offset).map_err(|s| match s {
        Short::End => Short::Truncated,
        other => other,
    })?;
    let Ok(len) = u64::try_from(len) else {
        return Err(Short::Bad(format!("negative length {len}")));
    };
    if len > *budget {
        return Err(Short::Bad(format!(
            "{len} bytes, more than the {MAX_HEADER_BYTES} accepted for the header"
        )));
    }
    *budget -= len;
    let mut out = Vec::new();
    let got = source.take(len).read_to_end(&mut out).map_err(Short::Io)?;
    *offset += got as u64;
    if (got as u64) < len {
        return Err(Short::Truncated);
    }
    Ok(out)
}
