//! The blob file: the constants that the text form summarises as `#hash`, in one binary file,
//! each found by that hash (as MLIR keeps large constants in resource blobs). Text + blob is a
//! complete graph: [`write_blob`] writes the blob of a graph, [`BlobStore::read`] reads it back
//! and is the [`ConstSource`] the parser takes.
//!
//! Format, version 1; every integer little-endian:
//!
//! ```text
//! magic    8 bytes  "SMELTBLB"
//! version  u32      1
//! count    u64      number of entries
//! entry × count, sorted by hash, no hash twice:
//!   hash     u64    Tensor::content_hash of the entry (the `#…` of the text)
//!   dtype    u32    ONNX TensorProto.DataType code (1 = f32, 7 = i64, 8 = string, …)
//!   rank     u32
//!   dims     u64 × rank
//!   length   u64    bytes of data that follow
//!   data            numeric: the dense little-endian elements (sub-byte types packed, low
//!                   bits first; bools one byte each), exactly as many bytes as dtype × dims
//!                   needs; string: for each element, a u64 byte length and the bytes
//! ```
//!
//! Nothing follows the last entry. The reader checks every length against the bytes that are
//! left before it allocates, recomputes each entry's hash, and turns anything malformed into a
//! [`BlobError`]: a corrupt file never panics and never yields a wrong tensor.

use super::parse::ConstSource;
use crate::attr::Attr;
use crate::{DType, Graph, Op, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

/// The first 8 bytes of a blob file.
pub const MAGIC: &[u8; 8] = b"SMELTBLB";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;

/// A blob file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    /// The file does not start with [`MAGIC`].
    #[error("not a smelt blob file (bad magic)")]
    BadMagic,
    /// A version this reader does not know.
    #[error("blob format version {0} is not supported (this reader knows version {VERSION})")]
    Version(u32),
    /// The file ends inside a field.
    #[error("blob truncated at byte {offset}: {what} needs {needed} more byte(s)")]
    Truncated {
        offset: usize,
        what: &'static str,
        needed: u64,
    },
    /// An unknown dtype code.
    #[error("blob entry at byte {offset}: unknown dtype code {code}")]
    BadDType { offset: usize, code: u32 },
    /// The dims do not fit the platform or have too many elements.
    #[error("blob entry at byte {offset}: shape {dims:?} is too large")]
    BadShape { offset: usize, dims: Vec<u64> },
    /// The data length does not match dtype and dims.
    #[error("blob entry at byte {offset}: data is {got} bytes, dtype and dims need {expected}")]
    BadLength {
        offset: usize,
        expected: u64,
        got: u64,
    },
    /// The stored hash is not the hash of the stored tensor.
    #[error("blob entry at byte {offset}: stored hash #{stored:016x} but the data hashes to #{actual:016x}")]
    HashMismatch {
        offset: usize,
        stored: u64,
        actual: u64,
    },
    /// Two entries with one hash.
    #[error("blob holds #{0:016x} twice")]
    Duplicate(u64),
    /// Bytes after the last entry.
    #[error("blob has {0} unexpected byte(s) after its last entry")]
    TrailingBytes(usize),
}

/// Constants by content hash: read from a blob file, or collected from graphs.
#[derive(Clone, Debug, Default)]
pub struct BlobStore {
    tensors: HashMap<u64, Tensor>,
}

impl ConstSource for BlobStore {
    fn get(&self, hash: u64) -> Option<Tensor> {
        self.tensors.get(&hash).cloned()
    }
}

fn collect_graph(g: &Graph, out: &mut BlobStore) {
    for id in g.node_ids() {
        let op = &g.node(id).op;
        if let Op::Const(t) = op {
            out.insert_if_hashed(t);
        }
        for (_, a) in op.attrs() {
            collect_attr(&a, out);
        }
    }
}

fn collect_attr(a: &Attr, out: &mut BlobStore) {
    match a {
        Attr::Tensor(t) => out.insert_if_hashed(t),
        Attr::Tensors(ts) => ts.iter().for_each(|t| out.insert_if_hashed(t)),
        Attr::Graph(g) => collect_graph(g, out),
        Attr::Graphs(gs) => gs.iter().for_each(|g| collect_graph(g, out)),
        Attr::Int(_)
        | Attr::Float(_)
        | Attr::Str(_)
        | Attr::Type(_)
        | Attr::Ints(_)
        | Attr::Floats(_)
        | Attr::Strs(_)
        | Attr::Types(_)
        | Attr::DType(_) => {}
    }
}

impl BlobStore {
    /// An empty store.
    pub fn new() -> BlobStore {
        BlobStore::default()
    }

    /// Every constant of `g` (and of its subgraphs, and in tensor attributes) that the text
    /// form prints as `#hash` rather than inline.
    pub fn from_graph(g: &Graph) -> BlobStore {
        let mut s = BlobStore::new();
        collect_graph(g, &mut s);
        s
    }

    /// Adds a tensor; returns its hash.
    pub fn insert(&mut self, t: Tensor) -> u64 {
        let h = t.content_hash();
        self.tensors.insert(h, t);
        h
    }

    fn insert_if_hashed(&mut self, t: &Tensor) {
        if !super::prints_inline(t) {
            self.insert(t.clone());
        }
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The hashes held, ascending.
    pub fn hashes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.tensors.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Writes the store in the blob format (entries sorted by hash: same store, same bytes).
    pub fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        let sorted: BTreeMap<u64, &Tensor> = self.tensors.iter().map(|(h, t)| (*h, t)).collect();
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        w.write_all(&(sorted.len() as u64).to_le_bytes())?;
        for (h, t) in sorted {
            w.write_all(&h.to_le_bytes())?;
            w.write_all(&(t.dtype().code() as u32).to_le_bytes())?;
            w.write_all(&(t.dims().len() as u32).to_le_bytes())?;
            for d in t.dims() {
                w.write_all(&(*d as u64).to_le_bytes())?;
            }
            match (t.bytes(), t.strings()) {
                (Some(b), _) => {
                    w.write_all(&(b.len() as u64).to_le_bytes())?;
                    w.write_all(b)?;
                }
                (None, Some(ss)) => {
                    let len: usize = ss.iter().map(|s| 8 + s.len()).sum();
                    w.write_all(&(len as u64).to_le_bytes())?;
                    for s in ss {
                        w.write_all(&(s.len() as u64).to_le_bytes())?;
                        w.write_all(s)?;
                    }
                }
                (None, None) => w.write_all(&0u64.to_le_bytes())?,
            }
        }
        Ok(())
    }

    /// Reads a blob file, checking every field (see the module doc).
    pub fn read(bytes: &[u8]) -> Result<BlobStore, BlobError> {
        let mut r = Reader { b: bytes, off: 0 };
        if r.take(8, "magic").ok() != Some(&MAGIC[..]) {
            return Err(BlobError::BadMagic);
        }
        let version = r.u32("version")?;
        if version != VERSION {
            return Err(BlobError::Version(version));
        }
        let count = r.u64("entry count")?;
        let mut store = BlobStore::new();
        for _ in 0..count {
            let start = r.off;
            let stored = r.u64("hash")?;
            let code = r.u32("dtype")?;
            let dtype =
                i32::try_from(code)
                    .ok()
                    .and_then(DType::from_code)
                    .ok_or(BlobError::BadDType {
                        offset: start,
                        code,
                    })?;
            let rank = r.u32("rank")?;
            r.need(u64::from(rank).saturating_mul(8), "dims")?;
            let raw_dims: Vec<u64> = (0..rank).map(|_| r.u64("dims")).collect::<Result<_, _>>()?;
            let bad_shape = || BlobError::BadShape {
                offset: start,
                dims: raw_dims.clone(),
            };
            let dims: Vec<usize> = raw_dims
                .iter()
                .map(|d| usize::try_from(*d).map_err(|_| bad_shape()))
                .collect::<Result<_, _>>()?;
            let n = crate::tensor::element_count(&dims).ok_or_else(bad_shape)?;
            let len = r.u64("data length")?;
            let data = r.take(len, "data")?;
            let tensor = if dtype == DType::String {
                let ss = read_strings(data, n).ok_or(BlobError::BadLength {
                    offset: start,
                    expected: 8u64.saturating_mul(n as u64),
                    got: len,
                })?;
                Tensor::from_strings(dims, ss)
            } else {
                let expected = dtype.bytes_for(n).ok_or_else(bad_shape)?;
                if expected as u64 != len {
                    return Err(BlobError::BadLength {
                        offset: start,
                        expected: expected as u64,
                        got: len,
                    });
                }
                Tensor::from_bytes(dtype, dims, data.to_vec())
            }
            .map_err(|_| bad_shape())?;
            let actual = tensor.content_hash();
            if actual != stored {
                return Err(BlobError::HashMismatch {
                    offset: start,
                    stored,
                    actual,
                });
            }
            if store.tensors.insert(stored, tensor).is_some() {
                return Err(BlobError::Duplicate(stored));
            }
        }
        if r.off != bytes.len() {
            return Err(BlobError::TrailingBytes(bytes.len() - r.off));
        }
        Ok(store)
    }
}

/// `n` strings, each a u64 length and its bytes, filling `data` exactly; `None` if they do not.
fn read_strings(data: &[u8], n: usize) -> Option<Vec<Vec<u8>>> {
    // Every string takes at least its 8-byte length: check before allocating for n of them.
    if (n as u64).checked_mul(8)? > data.len() as u64 {
        return None;
    }
    let mut r = Reader { b: data, off: 0 };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.u64("string length").ok()?;
        out.push(r.take(len, "string").ok()?.to_vec());
    }
    (r.off == data.len()).then_some(out)
}

struct Reader<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    fn need(&self, n: u64, what: &'static str) -> Result<usize, BlobError> {
        let left = (self.b.len() - self.off) as u64;
        if n > left {
            return Err(BlobError::Truncated {
                offset: self.off,
                what,
                needed: n - left,
            });
        }
        Ok(n as usize)
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], BlobError> {
        let n = self.need(n, what)?;
        let s = &self.b[self.off..self.off + n];
        self.off += n;
        Ok(s)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, BlobError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, BlobError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
}

/// Writes the blob file of `g`: every constant its text prints as `#hash`, subgraphs included
/// (for a model, pass `&model.graph`).
pub fn write_blob(g: &Graph, w: &mut impl Write) -> std::io::Result<()> {
    BlobStore::from_graph(g).write(w)
}
