//! Opset differences: older ONNX opsets took as attributes what newer ones take as inputs, and
//! some had semantics the newest op does not express. The IR uses the newest form; this module
//! turns old attributes into constant inputs, and says when a node must stay opaque.

use smelt_ir::{Attr, DType, Tensor};

/// What the importer should do with a default-domain node at a given opset.
pub enum Normalized {
    /// Build the typed op from these attributes, adding these constant inputs at these ports.
    Typed {
        attrs: Vec<(String, Attr)>,
        extra: Vec<(usize, Tensor)>,
    },
    /// Keep the node verbatim.
    Opaque,
}

fn take(attrs: &mut Vec<(String, Attr)>, name: &str) -> Option<Attr> {
    let i = attrs.iter().position(|(n, _)| n == name)?;
    Some(attrs.remove(i).1)
}

fn ints(a: Attr) -> Option<Vec<i64>> {
    match a {
        Attr::Ints(v) => Some(v),
        Attr::Int(i) => Some(vec![i]),
        _ => None,
    }
}

fn i64_tensor(v: &[i64]) -> Option<Tensor> {
    Tensor::from_vec(vec![v.len()], v).ok()
}

fn f32_scalar_of(dtype: Option<DType>, v: f32) -> Option<Tensor> {
    Tensor::from_f64s(dtype.unwrap_or(DType::F32), vec![], &[v as f64]).ok()
}

/// Cast's `to` was a type name before opset 6.
fn dtype_from_name(s: &[u8]) -> Option<DType> {
    Some(match s {
        b"FLOAT" => DType::F32,
        b"UINT8" => DType::U8,
        b"INT8" => DType::I8,
        b"UINT16" => DType::U16,
        b"INT16" => DType::I16,
        b"INT32" => DType::I32,
        b"INT64" => DType::I64,
        b"STRING" => DType::String,
        b"BOOL" => DType::Bool,
        b"FLOAT16" => DType::F16,
        b"DOUBLE" => DType::F64,
        b"UINT32" => DType::U32,
        b"UINT64" => DType::U64,
        _ => return None,
    })
}

/// Normalises a default-domain node's attributes to the newest form of its op.
/// `n_inputs` is the node's input count and `in0` the dtype/rank of its first input if known.
#[allow(clippy::collapsible_match)]
pub fn normalize(
    op_type: &str,
    opset: i64,
    mut attrs: Vec<(String, Attr)>,
    n_inputs: usize,
    in0_dtype: Option<DType>,
    in0_rank: Option<usize>,
) -> Normalized {
    let mut extra = vec![];
    let a = &mut attrs;
    // Attributes that old opsets had and that never change the result.
    if opset < 7 {
        take(a, "consumed_inputs");
        take(a, "is_test");
    }
    macro_rules! opaque_if {
        ($c:expr) => {
            if $c {
                return Normalized::Opaque;
            }
        };
    }
    match op_type {
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Equal" | "Less" | "Greater" | "And" | "Or"
        | "Xor" | "PRelu"
            if opset < 7 =>
        {
            // Old broadcasting with an explicit axis is not numpy broadcasting.
            opaque_if!(a.iter().any(|(n, _)| n == "axis" || n == "broadcast"));
        }
        "Gemm" if opset < 7 => {
            take(a, "broadcast");
        }
        "Reshape" if opset < 5 => {
            let Some(s) = take(a, "shape").and_then(ints) else {
                return Normalized::Opaque;
            };
            let Some(t) = i64_tensor(&s) else {
                return Normalized::Opaque;
            };
            extra.push((1, t));
        }
        "Squeeze" | "Unsqueeze" if opset < 13 => {
            if let Some(ax) = take(a, "axes").and_then(ints) {
                let Some(t) = i64_tensor(&ax) else {
                    return Normalized::Opaque;
                };
                extra.push((1, t));
            } else {
                opaque_if!(op_type == "Unsqueeze");
            }
        }
        "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2" | "ReduceL1"
        | "ReduceSumSquare" | "ReduceLogSumExp"
            if opset < 18 =>
        {
            if let Some(ax) = take(a, "axes").and_then(ints) {
                let Some(t) = i64_tensor(&ax) else {
                    return Normalized::Opaque;
                };
                extra.push((1, t));
            }
        }
        "ReduceSum" if opset < 13 => {
            if let Some(ax) = take(a, "axes").and_then(ints) {
                let Some(t) = i64_tensor(&ax) else {
                    return Normalized::Opaque;
                };
                extra.push((1, t));
            }
        }
        "Split" if opset < 13 => {
            if let Some(s) = take(a, "split").and_then(ints) {
                let Some(t) = i64_tensor(&s) else {
                    return Normalized::Opaque;
                };
                extra.push((1, t));
            }
            opaque_if!(n_inputs > 1 && opset < 2);
        }
        "Slice" if opset < 10 => {
            let starts = take(a, "starts").and_then(ints);
            let ends = take(a, "ends").and_then(ints);
            let axes = take(a, "axes").and_then(ints);
            let (Some(s), Some(e)) = (starts, ends) else {
                return Normalized::Opaque;
            };
            let (Some(s), Some(e)) = (i64_tensor(&s), i64_tensor(&e)) else {
                return Normalized::Opaque;
            };
            extra.push((1, s));
            extra.push((2, e));
            if let Some(ax) = axes {
                let Some(t) = i64_tensor(&ax) else {
                    return Normalized::Opaque;
                };
                extra.push((3, t));
            }
        }
        "Pad" if opset < 11 => {
            let Some(p) = take(a, "pads")
                .or_else(|| take(a, "paddings"))
                .and_then(ints)
            else {
                return Normalized::Opaque;
            };
            let Some(t) = i64_tensor(&p) else {
                return Normalized::Opaque;
            };
            extra.push((1, t));
            let v = match take(a, "value") {
                Some(Attr::Float(f)) => f,
                Some(_) => return Normalized::Opaque,
                None => 0.0,
            };
            if v != 0.0 {
                let Some(t) = f32_scalar_of(in0_dtype, v) else {
                    return Normalized::Opaque;
                };
                extra.push((2, t));
            }
        }
        "Clip" if opset < 11 => {
            let min = take(a, "min");
            let max = take(a, "max");
            let dt = in0_dtype.filter(|d| d.is_float()).or(Some(DType::F32));
            for (port, v) in [(1, min), (2, max)] {
                match v {
                    Some(Attr::Float(f)) => {
                        let Some(t) = f32_scalar_of(dt, f) else {
                            return Normalized::Opaque;
                        };
                        extra.push((port, t));
                    }
                    Some(_) => return Normalized::Opaque,
                    None => {}
                }
            }
        }
        "TopK" if opset < 10 => {
            let Some(k) = take(a, "k").and_then(ints) else {
                return Normalized::Opaque;
            };
            let Some(t) = i64_tensor(&k) else {
                return Normalized::Opaque;
            };
            extra.push((1, t));
        }
        "Dropout" if opset < 12 => {
            if let Some(Attr::Float(r)) = take(a, "ratio") {
                let _ = r; // inference: ratio does not matter; keep the default input
            }
        }
        "BatchNormalization" if opset < 9 => {
            if let Some(Attr::Int(s)) = take(a, "spatial") {
                opaque_if!(s == 0);
            }
        }
        "Softmax" | "LogSoftmax" if opset < 13 => {
            // Before 13 the input was flattened to 2-D at `axis` (default 1): the same as a
            // one-axis softmax only when that axis is the last one.
            let axis = match take(a, "axis") {
                Some(Attr::Int(x)) => x,
                None => 1,
                Some(_) => return Normalized::Opaque,
            };
            let Some(r) = in0_rank else {
                return Normalized::Opaque;
            };
            let norm = if axis < 0 { axis + r as i64 } else { axis };
            opaque_if!(norm != r as i64 - 1);
            a.push(("axis".into(), Attr::Int(-1)));
        }
        "Concat" if opset < 4 => {
            if !a.iter().any(|(n, _)| n == "axis") {
                a.push(("axis".into(), Attr::Int(1)));
            }
        }
        "Cast" if opset < 6 => {
            if let Some(Attr::Str(s)) = take(a, "to") {
                let Some(d) = dtype_from_name(&s) else {
                    return Normalized::Opaque;
                };
                a.push(("to".into(), Attr::DType(d)));
            }
        }
        "Resize" | "Upsample" if opset < 11 => return Normalized::Opaque,
        "Tile" if opset < 6 => return Normalized::Opaque,
        "Flatten" | "ArgMax" | "ArgMin" | "MaxPool" | "AveragePool" | "Conv" => {}
        _ => {}
    }
    Normalized::Typed { attrs, extra }
}
