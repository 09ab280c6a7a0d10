//! Tensor files: ONNX TensorProto (`.pb`, the test-data layout's `input_0.pb`) and numpy `.npy`.

use smelt_ir::{DType, Tensor};
use std::path::Path;

/// Why a tensor file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A TensorProto file is invalid.
    #[error(transparent)]
    Pb(#[from] smelt_onnx::ImportError),
    /// The file could not be read.
    #[error("cannot read {path}: {err}", path = .0.display(), err = .1)]
    Io(std::path::PathBuf, std::io::Error),
    /// A `.npy` file is invalid or of an unsupported kind.
    #[error("{path}: {msg}", path = .0.display(), msg = .1)]
    Npy(std::path::PathBuf, String),
}

/// Reads a tensor file: `.npy` by extension, otherwise a TensorProto.
pub fn read_tensor(path: &Path) -> Result<Tensor, DataError> {
    if path.extension().is_some_and(|e| e == "npy") {
        read_npy(path)
    } else {
        Ok(smelt_onnx::read_tensor_file(path)?.1)
    }
}

/// Reads a little-endian `.npy` file (format 1.0-3.0, C order).
pub fn read_npy(path: &Path) -> Result<Tensor, DataError> {
    let b = std::fs::read(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    let bad = |m: &str| DataError::Npy(path.to_path_buf(), m.to_string());
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10usize),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        _ => return Err(bad("unknown .npy version")),
    };
    let header = b
        .get(start..start.saturating_add(hlen))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-order arrays are not supported"));
    }
    let descr = header
        .split("'descr':")
        .nth(1)
        .and_then(|s| s.split('\'').nth(1))
        .ok_or_else(|| bad("no descr in the header"))?;
    let dtype = match descr {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<f2" => DType::F16,
        "|i1" => DType::I8,
        "|u1" => DType::U8,
        "<i2" => DType::I16,
        "<u2" => DType::U16,
        "<i4" => DType::I32,
        "<u4" => DType::U32,
        "<i8" => DType::I64,
        "<u8" => DType::U64,
        "|b1" => DType::Bool,
        other => return Err(bad(&format!("unsupported dtype {other}"))),
    };
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in the header"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_, _>>()?;
    let data = b[start + hlen..].to_vec();
    Tensor::from_bytes(dtype, dims, data).map_err(|e| bad(&e.to_string()))
}
