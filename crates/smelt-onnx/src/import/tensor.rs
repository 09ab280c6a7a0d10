//! TensorProto → [`Tensor`]: raw_data, the typed fields, external data, sparse tensors.

use crate::error::ImportError;
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{SparseTensorProto, TensorProto};
use smelt_ir::{DType, Tensor};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

fn err(name: &str, msg: impl Into<String>) -> ImportError {
    ImportError::Tensor {
        name: name.to_string(),
        msg: msg.into(),
    }
}

/// Checked dims of a tensor proto.
pub fn dims_of(name: &str, dims: &[i64]) -> Result<Vec<usize>, ImportError> {
    dims.iter()
        .map(|d| {
            usize::try_from(*d).map_err(|_| err(name, format!("negative dim {d} in {dims:?}")))
        })
        .collect()
}

/// Where external data files may be read from: the model's folder.
#[derive(Clone, Debug, Default)]
pub struct DataDir(pub Option<PathBuf>);

fn read_external(t: &TensorProto, dir: &DataDir, expected: usize) -> Result<Vec<u8>, ImportError> {
    let name = &t.name;
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        match kv.key.as_str() {
            "location" => location = Some(kv.value.clone()),
            "offset" => {
                offset = kv
                    .value
                    .parse()
                    .map_err(|_| err(name, format!("bad external offset `{}`", kv.value)))?
            }
            "length" => {
                length = Some(
                    kv.value
                        .parse::<u64>()
                        .map_err(|_| err(name, format!("bad external length `{}`", kv.value)))?,
                )
            }
            _ => {}
        }
    }
    let location = location.ok_or_else(|| err(name, "external data without a location"))?;
    let Some(base) = &dir.0 else {
        return Err(err(
            name,
            "external data, but the model was not read from a file (no folder to resolve it in)",
        ));
    };
    let rel = Path::new(&location);
    if rel.is_absolute()
        || rel.components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::Prefix(_)
            )
        })
    {
        return Err(err(
            name,
            format!("external data location `{location}` leaves the model's folder"),
        ));
    }
    let path = base.join(rel);
    let canon_base = base
        .canonicalize()
        .map_err(|e| err(name, format!("{}: {e}", base.display())))?;
    let canon = path
        .canonicalize()
        .map_err(|e| err(name, format!("external data `{}`: {e}", path.display())))?;
    if !canon.starts_with(&canon_base) {
        return Err(err(
            name,
            format!("external data location `{location}` leaves the model's folder"),
        ));
    }
    let mut f = std::fs::File::open(&canon)
        .map_err(|e| err(name, format!("external data `{}`: {e}", path.display())))?;
    let size = f.metadata().map_err(|e| err(name, e.to_string()))?.len();
    let len = length.unwrap_or(expected as u64);
    if len != expected as u64 {
        return Err(err(
            name,
            format!("external data length {len} but the tensor needs {expected} bytes"),
        ));
    }
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(err(
            name,
            format!(
                "external data [{offset}, +{len}) is beyond the end of `{location}` ({size} bytes)"
            ),
        ));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| err(name, e.to_string()))?;
    let mut buf = vec![0u8; expected];
    f.read_exact(&mut buf)
        .map_err(|e| err(name, e.to_string()))?;
    Ok(buf)
}

/// Converts a TensorProto, taking its raw_data without copying when it has one.
pub fn tensor_from_proto(mut t: TensorProto, dir: &DataDir) -> Result<Tensor, ImportError> {
    let name = t.name.clone();
    let dtype = DType::from_code(t.data_type)
        .ok_or_else(|| err(&name, format!("unknown data type {}", t.data_type)))?;
    let dims = dims_of(&name, &t.dims)?;
    let n = smelt_ir::tensor::element_count(&dims)
        .ok_or_else(|| err(&name, format!("shape {dims:?} is too large")))?;
    if t.segment.is_some() {
        return Err(ImportError::Unsupported(format!(
            "tensor `{name}` is a segment of a larger tensor"
        )));
    }
    let bad = |e: smelt_ir::TensorError| err(&name, e.to_string());
    if t.data_location.enum_value() == Ok(DataLocation::EXTERNAL) {
        if dtype == DType::String {
            return Err(err(&name, "string tensors cannot be external"));
        }
        let expected = dtype.bytes_for(n).ok_or_else(|| err(&name, "too large"))?;
        let bytes = read_external(&t, dir, expected)?;
        return Tensor::from_bytes(dtype, dims, bytes).map_err(bad);
    }
    if dtype == DType::String {
        return Tensor::from_strings(dims, std::mem::take(&mut t.string_data)).map_err(bad);
    }
    if !t.raw_data.is_empty() || n == 0 {
        let raw = std::mem::take(&mut t.raw_data);
        if n == 0 && raw.is_empty() {
            return Tensor::from_bytes(dtype, dims, vec![]).map_err(bad);
        }
        return Tensor::from_bytes(dtype, dims, raw).map_err(bad);
    }
    use DType::*;
    let count_err = |got: usize, want: usize| {
        err(
            &name,
            format!("has {got} values, its shape {dims:?} needs {want}"),
        )
    };
    let mut bytes: Vec<u8> = Vec::new();
    match dtype {
        F32 => {
            if t.float_data.len() != n {
                return Err(count_err(t.float_data.len(), n));
            }
            bytes.reserve(n * 4);
            t.float_data
                .iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        }
        C64 => {
            if t.float_data.len() != 2 * n {
                return Err(count_err(t.float_data.len(), 2 * n));
            }
            t.float_data
                .iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        }
        F64 => {
            if t.double_data.len() != n {
                return Err(count_err(t.double_data.len(), n));
            }
            t.double_data
                .iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        }
        C128 => {
            if t.double_data.len() != 2 * n {
                return Err(count_err(t.double_data.len(), 2 * n));
            }
            t.double_data
                .iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        }
        I64 => {
            if t.int64_data.len() != n {
                return Err(count_err(t.int64_data.len(), n));
            }
            t.int64_data
                .iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        }
        U32 | U64 => {
            if t.uint64_data.len() != n {
                return Err(count_err(t.uint64_data.len(), n));
            }
            for v in &t.uint64_data {
                if dtype == U32 {
                    bytes.extend_from_slice(&(*v as u32).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        I32 | I16 | U16 | I8 | U8 | Bool | F16 | BF16 | F8E4M3FN | F8E4M3FNUZ | F8E5M2
        | F8E5M2FNUZ | F8E8M0 => {
            if t.int32_data.len() != n {
                return Err(count_err(t.int32_data.len(), n));
            }
            let w = dtype.bits() / 8;
            for v in &t.int32_data {
                bytes.extend_from_slice(&v.to_le_bytes()[..w]);
            }
        }
        U4 | I4 | F4E2M1 | U2 | I2 => {
            // Packed: each int32 holds one byte of packed values.
            let want = dtype.bytes_for(n).unwrap_or(0);
            if t.int32_data.len() != want {
                return Err(count_err(t.int32_data.len(), want));
            }
            t.int32_data.iter().for_each(|v| bytes.push(*v as u8));
        }
        String => return Err(err(&name, "string tensor without string_data")),
    }
    Tensor::from_bytes(dtype, dims, bytes).map_err(bad)
}

/// Densifies a sparse tensor (values at the given indices, zero elsewhere).
pub fn sparse_to_dense(s: SparseTensorProto, dir: &DataDir) -> Result<Tensor, ImportError> {
    let values = s
        .values
        .0
        .map(|b| *b)
        .ok_or_else(|| err("sparse", "sparse tensor without values"))?;
    let name = values.name.clone();
    let values = tensor_from_proto(values, dir)?;
    let indices = s
        .indices
        .0
        .map(|b| *b)
        .ok_or_else(|| err(&name, "sparse tensor without indices"))?;
    let indices = tensor_from_proto(indices, dir)?;
    let dims = dims_of(&name, &s.dims)?;
    let n = smelt_ir::tensor::element_count(&dims).ok_or_else(|| err(&name, "too large"))?;
    let nnz = values.len();
    let idx = indices
        .to_i64_vec()
        .ok_or_else(|| err(&name, "sparse indices must be integers"))?;
    let linear: Vec<usize> = if indices.dims().len() == 1 {
        idx.iter()
            .map(|i| usize::try_from(*i).ok().filter(|i| *i < n))
            .collect::<Option<_>>()
            .ok_or_else(|| err(&name, "sparse index out of range"))?
    } else if indices.dims().len() == 2 && indices.dims()[1] == dims.len() {
        let r = dims.len();
        (0..nnz)
            .map(|k| {
                let mut lin = 0usize;
                for (a, d) in dims.iter().enumerate() {
                    let i = usize::try_from(*idx.get(k * r + a)?)
                        .ok()
                        .filter(|i| i < d)?;
                    lin = lin * d + i;
                }
                Some(lin)
            })
            .collect::<Option<_>>()
            .ok_or_else(|| err(&name, "sparse index out of range"))?
    } else {
        return Err(err(&name, "sparse indices have an unexpected shape"));
    };
    if linear.len() != nnz {
        return Err(err(&name, "sparse indices and values differ in count"));
    }
    let w = values.dtype().bits() / 8;
    let (Some(vb), true) = (values.bytes(), w > 0 && values.dtype().bits() % 8 == 0) else {
        return Err(ImportError::Unsupported(format!(
            "sparse tensor `{name}` of {}",
            values.dtype()
        )));
    };
    let mut out = vec![
        0u8;
        values
            .dtype()
            .bytes_for(n)
            .ok_or_else(|| err(&name, "too large"))?
    ];
    for (k, lin) in linear.iter().enumerate() {
        out[lin * w..(lin + 1) * w].copy_from_slice(&vb[k * w..(k + 1) * w]);
    }
    Tensor::from_bytes(values.dtype(), dims, out).map_err(|e| err(&name, e.to_string()))
}

/// Reads one TensorProto file (the ONNX test-data layout's `input_0.pb`): name and tensor.
pub fn read_tensor_file(path: &Path) -> Result<(String, Tensor), ImportError> {
    let bytes = std::fs::read(path).map_err(|err| ImportError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    read_tensor_bytes(&bytes, path.parent())
}

/// Parses TensorProto bytes: name and tensor.
pub fn read_tensor_bytes(
    bytes: &[u8],
    dir: Option<&Path>,
) -> Result<(String, Tensor), ImportError> {
    use protobuf::Message;
    let t = TensorProto::parse_from_bytes(bytes).map_err(|e| ImportError::Protobuf {
        what: "tensor",
        msg: e.to_string(),
    })?;
    let name = t.name.clone();
    let tensor = tensor_from_proto(t, &DataDir(dir.map(|d| d.to_path_buf())))?;
    Ok((name, tensor))
}
