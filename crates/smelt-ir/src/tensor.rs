//! Constant tensors: immutable, shared storage.
//!
//! A [`Tensor`]'s bytes sit behind an `Arc`, so cloning a constant (when a pass copies a node, or
//! the text form and the ONNX writer read it) never copies the data. The bytes are the dense
//! little-endian layout ONNX calls `raw_data`: sub-byte types are packed two (4-bit) or four
//! (2-bit) to a byte, low bits first; bools are one byte each. Strings are kept as a list.

use crate::DType;
use half::{bf16, f16};
use std::fmt;
use std::sync::Arc;

/// Errors from building a tensor out of parts that do not fit together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TensorError {
    /// The element count of the dims overflows `usize`.
    #[error("shape {dims:?} has too many elements")]
    TooLarge { dims: Vec<usize> },
    /// The data does not have the length the dtype and dims require.
    #[error("{dtype} tensor of shape {dims:?} needs {expected} bytes, got {got}")]
    BadLength {
        dtype: DType,
        dims: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// A string tensor needs a list of strings, other types need bytes.
    #[error("{dtype} tensor given data of the wrong kind")]
    WrongKind { dtype: DType },
}

#[derive(Clone, PartialEq)]
enum Data {
    Bytes(Arc<Vec<u8>>),
    Strings(Arc<Vec<Vec<u8>>>),
}

/// A constant tensor: dtype, static dims and shared immutable data.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    dtype: DType,
    dims: Vec<usize>,
    data: Data,
}

/// Number of elements of a shape, or `None` on overflow.
pub fn element_count(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d))
}

impl Tensor {
    /// Builds a tensor from dense little-endian bytes (ONNX `raw_data` layout).
    pub fn from_bytes(
        dtype: DType,
        dims: Vec<usize>,
        bytes: Vec<u8>,
    ) -> Result<Tensor, TensorError> {
        if dtype == DType::String {
            return Err(TensorError::WrongKind { dtype });
        }
        let n = element_count(&dims).ok_or_else(|| TensorError::TooLarge { dims: dims.clone() })?;
        let expected = dtype
            .bytes_for(n)
            .ok_or_else(|| TensorError::TooLarge { dims: dims.clone() })?;
        if bytes.len() != expected {
            return Err(TensorError::BadLength {
                dtype,
                dims,
                expected,
                got: bytes.len(),
            });
        }
        Ok(Tensor {
            dtype,
            dims,
            data: Data::Bytes(Arc::new(bytes)),
        })
    }

    /// Builds a string tensor.
    pub fn from_strings(dims: Vec<usize>, strings: Vec<Vec<u8>>) -> Result<Tensor, TensorError> {
        let n = element_count(&dims).ok_or_else(|| TensorError::TooLarge { dims: dims.clone() })?;
        if strings.len() != n {
            return Err(TensorError::BadLength {
                dtype: DType::String,
                dims,
                expected: n,
                got: strings.len(),
            });
        }
        Ok(Tensor {
            dtype: DType::String,
            dims,
            data: Data::Strings(Arc::new(strings)),
        })
    }

    /// Builds a tensor from typed elements.
    pub fn from_vec<T: Element>(dims: Vec<usize>, values: &[T]) -> Result<Tensor, TensorError> {
        let mut bytes = Vec::with_capacity(values.len() * T::DTYPE.bits() / 8);
        for v in values {
            v.write_le(&mut bytes);
        }
        Tensor::from_bytes(T::DTYPE, dims, bytes)
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar<T: Element>(value: T) -> Tensor {
        let mut bytes = Vec::new();
        value.write_le(&mut bytes);
        Tensor {
            dtype: T::DTYPE,
            dims: vec![],
            data: Data::Bytes(Arc::new(bytes)),
        }
    }

    /// A tensor of `dims` with every element zero (empty string for strings).
    pub fn zeros(dtype: DType, dims: Vec<usize>) -> Result<Tensor, TensorError> {
        let n = element_count(&dims).ok_or_else(|| TensorError::TooLarge { dims: dims.clone() })?;
        if dtype == DType::String {
            return Tensor::from_strings(dims, vec![Vec::new(); n]);
        }
        let len = dtype
            .bytes_for(n)
            .ok_or_else(|| TensorError::TooLarge { dims: dims.clone() })?;
        Tensor::from_bytes(dtype, dims, vec![0; len])
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// The dims.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        element_count(&self.dims).unwrap_or(0)
    }
    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The raw little-endian bytes (`None` for strings).
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Bytes(b) => Some(b),
            Data::Strings(_) => None,
        }
    }
    /// The strings of a string tensor.
    pub fn strings(&self) -> Option<&[Vec<u8>]> {
        match &self.data {
            Data::Strings(s) => Some(s),
            Data::Bytes(_) => None,
        }
    }
    /// The size of the data in bytes (for strings, the sum of their lengths).
    pub fn byte_len(&self) -> usize {
        match &self.data {
            Data::Bytes(b) => b.len(),
            Data::Strings(s) => s.iter().map(|x| x.len()).sum(),
        }
    }
    /// The same data with other dims of the same element count.
    pub fn reshaped(&self, dims: Vec<usize>) -> Result<Tensor, TensorError> {
        if element_count(&dims) != Some(self.len()) {
            return Err(TensorError::BadLength {
                dtype: self.dtype,
                dims,
                expected: self.len(),
                got: self.len(),
            });
        }
        Ok(Tensor {
            dtype: self.dtype,
            dims,
            data: self.data.clone(),
        })
    }

    /// A 64-bit content hash of dtype, dims and data (xxh3): the `#…` the text form prints.
    /// Stable across platforms and releases: blob files are keyed by it.
    pub fn content_hash(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&self.dtype.code().to_le_bytes());
        h.update(&(self.dims.len() as u64).to_le_bytes());
        for d in &self.dims {
            h.update(&(*d as u64).to_le_bytes());
        }
        match &self.data {
            Data::Bytes(b) => h.update(b),
            Data::Strings(s) => {
                for x in s.iter() {
                    h.update(&(x.len() as u64).to_le_bytes());
                    h.update(x);
                }
            }
        }
        h.digest()
    }

    /// Elements as `f64`, for any numeric dtype that has a lossless-enough widening
    /// (ints, bool, f8 (not e8m0), f16, bf16, f32, f64). `None` for strings, complex and packed types.
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        let b = self.bytes()?;
        use DType::*;
        Some(match self.dtype {
            F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            F16 => b
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            BF16 => b
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ => b
                .iter()
                .map(|c| self.dtype.f8_value(*c).unwrap_or(f64::NAN))
                .collect(),
            _ => self.to_i64_vec()?.into_iter().map(|v| v as f64).collect(),
        })
    }

    /// Elements as `f32` (see [`Tensor::to_f64_vec`] for the dtypes accepted).
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        if self.dtype == DType::F32 {
            let b = self.bytes()?;
            return Some(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            );
        }
        Some(self.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
    }

    /// Elements as `i64` for integer and bool dtypes (u64 wraps), including packed 4-bit ints.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        let b = self.bytes()?;
        use DType::*;
        Some(match self.dtype {
            I8 => b.iter().map(|v| *v as i8 as i64).collect(),
            U8 | Bool => b.iter().map(|v| *v as i64).collect(),
            I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            U16 => b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            U32 => b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            U64 => b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as i64)
                .collect(),
            U4 | I4 => {
                let n = self.len();
                (0..n)
                    .map(|i| {
                        let byte = b.get(i / 2).copied().unwrap_or(0);
                        let nib = if i % 2 == 0 { byte & 0x0f } else { byte >> 4 };
                        if self.dtype == I4 && nib & 0x8 != 0 {
                            nib as i64 - 16
                        } else {
                            nib as i64
                        }
                    })
                    .collect()
            }
            _ => return None,
        })
    }

    /// Builds a tensor of `dtype` from `f64` values, converting as ONNX `Cast` does for
    /// in-range values (float → int truncates toward zero; out-of-range saturates).
    pub fn from_f64s(
        dtype: DType,
        dims: Vec<usize>,
        values: &[f64],
    ) -> Result<Tensor, TensorError> {
        use DType::*;
        let mut bytes = Vec::with_capacity(dtype.bytes_for(values.len()).unwrap_or(0));
        match dtype {
            F32 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as f32).to_le_bytes())),
            F64 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
            F16 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&f16::from_f64(*v).to_le_bytes())),
            BF16 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&bf16::from_f64(*v).to_le_bytes())),
            Bool => values.iter().for_each(|v| bytes.push((*v != 0.0) as u8)),
            I8 => values.iter().for_each(|v| bytes.push(*v as i8 as u8)),
            U8 => values.iter().for_each(|v| bytes.push(*v as u8)),
            I16 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as i16).to_le_bytes())),
            U16 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as u16).to_le_bytes())),
            I32 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as i32).to_le_bytes())),
            U32 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as u32).to_le_bytes())),
            I64 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as i64).to_le_bytes())),
            U64 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as u64).to_le_bytes())),
            _ => return Err(TensorError::WrongKind { dtype }),
        }
        Tensor::from_bytes(dtype, dims, bytes)
    }

    /// Builds an integer or bool tensor of `dtype` from `i64` values (wrapping like a C cast).
    pub fn from_i64s(
        dtype: DType,
        dims: Vec<usize>,
        values: &[i64],
    ) -> Result<Tensor, TensorError> {
        use DType::*;
        let mut bytes = Vec::with_capacity(dtype.bytes_for(values.len()).unwrap_or(0));
        match dtype {
            Bool => values.iter().for_each(|v| bytes.push((*v != 0) as u8)),
            I8 | U8 => values.iter().for_each(|v| bytes.push(*v as u8)),
            I16 | U16 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as i16).to_le_bytes())),
            I32 | U32 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&(*v as i32).to_le_bytes())),
            I64 | U64 => values
                .iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
            I4 | U4 => {
                for pair in values.chunks(2) {
                    let lo = (pair[0] as u8) & 0x0f;
                    let hi = pair.get(1).map(|v| (*v as u8) & 0x0f).unwrap_or(0);
                    bytes.push(lo | (hi << 4));
                }
            }
            _ => {
                let f: Vec<f64> = values.iter().map(|v| *v as f64).collect();
                return Tensor::from_f64s(dtype, dims, &f);
            }
        }
        Tensor::from_bytes(dtype, dims, bytes)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({} {:?} #{:016x})",
            self.dtype,
            self.dims,
            self.content_hash()
        )
    }
}

/// A Rust type that is the element type of a tensor.
pub trait Element: Copy {
    /// The matching dtype.
    const DTYPE: DType;
    /// Appends the little-endian bytes of `self`.
    fn write_le(&self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn write_le(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f32, F32);
element!(f64, F64);
element!(i8, I8);
element!(u8, U8);
element!(i16, I16);
element!(u16, U16);
element!(i32, I32);
element!(u32, U32);
element!(i64, I64);
element!(u64, U64);
element!(f16, F16);
element!(bf16, BF16);
impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn write_le(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_checked() {
        let e = Tensor::from_bytes(DType::F32, vec![2, 3], vec![0; 20]).unwrap_err();
        assert_eq!(
            e,
            TensorError::BadLength {
                dtype: DType::F32,
                dims: vec![2, 3],
                expected: 24,
                got: 20
            }
        );
        assert!(Tensor::from_bytes(DType::F32, vec![usize::MAX, 2], vec![]).is_err());
        // Packed 4-bit: 3 elements need 2 bytes.
        assert!(Tensor::from_bytes(DType::I4, vec![3], vec![0, 0]).is_ok());
    }

    #[test]
    fn int4_unpacks_low_nibble_first_with_sign() {
        let t = Tensor::from_bytes(DType::I4, vec![3], vec![0xF1, 0x07]).unwrap();
        assert_eq!(t.to_i64_vec().unwrap(), vec![1, -1, 7]);
        let u = Tensor::from_i64s(DType::I4, vec![3], &[1, -1, 7]).unwrap();
        assert_eq!(u.bytes().unwrap(), &[0xF1, 0x07]);
    }

    #[test]
    fn hash_depends_on_dtype_dims_and_bytes() {
        let a = Tensor::from_vec(vec![2], &[1.0f32, 2.0]).unwrap();
        let b = a.reshaped(vec![2, 1]).unwrap();
        let c = Tensor::from_vec(vec![2], &[1.0f32, 3.0]).unwrap();
        assert_ne!(a.content_hash(), b.content_hash());
        assert_ne!(a.content_hash(), c.content_hash());
        assert_eq!(a.content_hash(), a.clone().content_hash());
    }
}
