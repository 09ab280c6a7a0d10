//! Shape and dtype inference for every typed op.
//!
//! [`infer_graph`] walks the graph in topological order and sets every output type from the
//! types (and, where an input is a constant such as Reshape's shape, the values) of the inputs.
//! Where inference knows less than the model declared (a symbolic dim from ONNX value_info), the
//! declaration is kept; where the two disagree on a known extent, that is an error. Opaque ops
//! keep their declared types.

use crate::graph::{Graph, NodeId, ValueId};
use crate::ops::*;
use crate::types::{Dim, Shape, TensorType, Type};
use crate::DType;

/// A node whose output types cannot be inferred: its inputs do not fit the op.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("node `{node}` ({op}): {msg}")]
pub struct InferError {
    /// The node's name.
    pub node: String,
    /// Its op type.
    pub op: String,
    /// What is wrong.
    pub msg: String,
}

type R<T> = Result<T, String>;

struct Cx<'a> {
    g: &'a Graph,
    inputs: Vec<Option<ValueId>>,
    n_out: usize,
}

impl<'a> Cx<'a> {
    fn ty(&self, i: usize) -> Option<&'a Type> {
        let v = (*self.inputs.get(i)?)?;
        Some(self.g.value_type(v))
    }
    fn present(&self, i: usize) -> bool {
        matches!(self.inputs.get(i), Some(Some(_)))
    }
    /// The tensor type of input `i` (required).
    fn t(&self, i: usize) -> R<TensorType> {
        match self.ty(i) {
            Some(Type::Tensor(t)) => Ok(t.clone()),
            Some(Type::Unknown) => Ok(TensorType {
                dtype: None,
                shape: None,
            }),
            Some(other) => Err(format!("input {i} must be a tensor, found {other}")),
            None => Err(format!("input {i} is missing")),
        }
    }
    fn shape(&self, i: usize) -> R<Option<Shape>> {
        Ok(self.t(i)?.shape)
    }
    fn dtype(&self, i: usize) -> R<Option<DType>> {
        Ok(self.t(i)?.dtype)
    }
    fn rank(&self, i: usize) -> R<Option<usize>> {
        Ok(self.shape(i)?.map(|s| s.len()))
    }
    /// The integer values of input `i`, when it is a constant.
    fn ints(&self, i: usize) -> Option<Vec<i64>> {
        let v = (*self.inputs.get(i)?)?;
        self.g.const_value(v)?.to_i64_vec()
    }
    fn floats(&self, i: usize) -> Option<Vec<f64>> {
        let v = (*self.inputs.get(i)?)?;
        self.g.const_value(v)?.to_f64_vec()
    }
    fn same(&self, i: usize) -> R<Vec<Type>> {
        let t = self.t(i)?;
        Ok(self.pad(vec![Type::Tensor(t)]))
    }
    fn pad(&self, mut v: Vec<Type>) -> Vec<Type> {
        v.resize(self.n_out.max(v.len()), Type::Unknown);
        v.truncate(self.n_out);
        v
    }
}

fn tensor(dtype: Option<DType>, shape: Option<Shape>) -> Type {
    Type::Tensor(TensorType { dtype, shape })
}

/// Normalises a possibly negative axis against a rank.
pub fn norm_axis(axis: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(a as usize)
}

fn norm_axis_incl(axis: i64, rank: usize) -> R<usize> {
    // For ops whose axis may equal the rank (Flatten, Shape slicing uses clamping instead).
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// numpy broadcasting of two shapes.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> R<Shape> {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let x = if i + a.len() >= n {
            &a[i + a.len() - n]
        } else {
            &Dim::Known(1)
        };
        let y = if i + b.len() >= n {
            &b[i + b.len() - n]
        } else {
            &Dim::Known(1)
        };
        out.push(match (x, y) {
            (Dim::Known(1), d) | (d, Dim::Known(1)) => d.clone(),
            (Dim::Known(p), Dim::Known(q)) if p == q => Dim::Known(*p),
            (Dim::Known(p), Dim::Known(q)) => {
                return Err(format!(
                    "shapes {a:?} and {b:?} do not broadcast ({p} vs {q})"
                ))
            }
            (Dim::Known(p), _) | (_, Dim::Known(p)) => Dim::Known(*p),
            (Dim::Sym(s), Dim::Sym(t)) if s == t => Dim::Sym(s.clone()),
            _ => Dim::Unknown,
        });
    }
    Ok(out)
}

fn broadcast_inputs(cx: &Cx, idx: &[usize]) -> R<Option<Shape>> {
    let mut acc: Option<Shape> = Some(vec![]);
    for &i in idx {
        if !cx.present(i) {
            continue;
        }
        acc = match (acc, cx.shape(i)?) {
            (Some(a), Some(b)) => Some(broadcast(&a, &b)?),
            _ => None,
        };
    }
    Ok(acc)
}

fn dim_mul(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Dim::Known(x * y),
        (Dim::Known(1), d) | (d, Dim::Known(1)) => d.clone(),
        _ => Dim::Unknown,
    }
}

fn dims_i64(v: &[i64]) -> R<Shape> {
    v.iter()
        .map(|d| {
            if *d >= 0 {
                Ok(Dim::Known(*d as u64))
            } else {
                Err(format!("negative dim {d}"))
            }
        })
        .collect()
}

/// Spatial output extent of a pooling/conv window.
#[allow(clippy::too_many_arguments)]
fn window_out(
    input: &Dim,
    k: i64,
    stride: i64,
    dil: i64,
    pad_b: i64,
    pad_e: i64,
    auto_pad: &str,
    ceil: bool,
) -> R<Dim> {
    if stride <= 0 || dil <= 0 || k <= 0 {
        return Err(format!(
            "kernel {k}, stride {stride} and dilation {dil} must be positive"
        ));
    }
    let Dim::Known(d) = input else {
        return Ok(Dim::Unknown);
    };
    let d = *d as i64;
    let ek = dil * (k - 1) + 1;
    let out = match auto_pad {
        "SAME_UPPER" | "SAME_LOWER" => (d + stride - 1) / stride,
        "VALID" => {
            let n = d - ek;
            if n < 0 {
                return Err(format!("window {ek} larger than input {d}"));
            }
            n / stride + 1
        }
        _ => {
            let n = d + pad_b + pad_e - ek;
            if n < 0 {
                return Err(format!(
                    "window {ek} larger than padded input {}",
                    d + pad_b + pad_e
                ));
            }
            if ceil {
                let mut o = (n + stride - 1) / stride + 1;
                // The last window must start inside the input or left padding.
                if (o - 1) * stride >= d + pad_b {
                    o -= 1;
                }
                o
            } else {
                n / stride + 1
            }
        }
    };
    Ok(Dim::Known(out.max(0) as u64))
}

#[allow(clippy::too_many_arguments)]
fn spatial_out(
    x: &Shape,
    kernel: &[i64],
    strides: &Option<Vec<i64>>,
    dilations: &Option<Vec<i64>>,
    pads: &Option<Vec<i64>>,
    auto_pad: &str,
    ceil: bool,
) -> R<Shape> {
    let n = kernel.len();
    if x.len() != n + 2 {
        return Err(format!(
            "input rank {} does not fit a {n}-d kernel",
            x.len()
        ));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = strides
            .as_ref()
            .and_then(|v| v.get(i).copied())
            .unwrap_or(1);
        let d = dilations
            .as_ref()
            .and_then(|v| v.get(i).copied())
            .unwrap_or(1);
        let pb = pads.as_ref().and_then(|v| v.get(i).copied()).unwrap_or(0);
        let pe = pads
            .as_ref()
            .and_then(|v| v.get(i + n).copied())
            .unwrap_or(0);
        out.push(window_out(
            &x[i + 2],
            kernel[i],
            s,
            d,
            pb,
            pe,
            auto_pad,
            ceil,
        )?);
    }
    Ok(out)
}

fn reduce(cx: &Cx, keepdims: i64, noop: i64) -> R<Vec<Type>> {
    let t = cx.t(0)?;
    let axes = if cx.present(1) {
        match cx.ints(1) {
            Some(a) => Some(a),
            None => {
                let shape = if keepdims != 0 {
                    t.shape.map(|s| s.iter().map(|_| Dim::Unknown).collect())
                } else {
                    None
                };
                return Ok(cx.pad(vec![tensor(t.dtype, shape)]));
            }
        }
    } else {
        None
    };
    let Some(shape) = t.shape else {
        return Ok(cx.pad(vec![tensor(t.dtype, None)]));
    };
    let rank = shape.len();
    let axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|x| norm_axis(*x, rank)).collect::<R<_>>()?,
        _ if noop != 0 => return Ok(cx.pad(vec![tensor(t.dtype, Some(shape))])),
        _ => (0..rank).collect(),
    };
    let mut out = vec![];
    for (i, d) in shape.iter().enumerate() {
        if axes.contains(&i) {
            if keepdims != 0 {
                out.push(Dim::Known(1));
            }
        } else {
            out.push(d.clone());
        }
    }
    Ok(cx.pad(vec![tensor(t.dtype, Some(out))]))
}

fn arg_reduce(cx: &Cx, axis: i64, keepdims: i64) -> R<Vec<Type>> {
    let shape = match cx.shape(0)? {
        Some(s) => {
            let a = norm_axis(axis, s.len())?;
            let mut o: Shape = vec![];
            for (i, d) in s.iter().enumerate() {
                if i == a {
                    if keepdims != 0 {
                        o.push(Dim::Known(1));
                    }
                } else {
                    o.push(d.clone());
                }
            }
            Some(o)
        }
        None => None,
    };
    Ok(cx.pad(vec![tensor(Some(DType::I64), shape)]))
}

fn matmul_shape(a: &Shape, b: &Shape) -> R<Shape> {
    if a.is_empty() || b.is_empty() {
        return Err("MatMul inputs must have rank >= 1".into());
    }
    let mut a2 = a.clone();
    let mut b2 = b.clone();
    if a2.len() == 1 {
        a2.insert(0, Dim::Known(1));
    }
    if b2.len() == 1 {
        b2.push(Dim::Known(1));
    }
    let (m, k1) = (&a2[a2.len() - 2], &a2[a2.len() - 1]);
    let (k2, n) = (&b2[b2.len() - 2], &b2[b2.len() - 1]);
    if let (Dim::Known(x), Dim::Known(y)) = (k1, k2) {
        if x != y {
            return Err(format!("MatMul inner dims differ: {x} vs {y}"));
        }
    }
    let mut out = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() != 1 {
        out.push(m.clone());
    }
    if b.len() != 1 {
        out.push(n.clone());
    }
    Ok(out)
}

fn slice_dim(d: &Dim, start: i64, end: i64, step: i64) -> R<Dim> {
    if step == 0 {
        return Err("Slice step must not be 0".into());
    }
    let Dim::Known(n) = d else {
        return Ok(Dim::Unknown);
    };
    let n = *n as i64;
    let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
    let (s, e) = if step > 0 {
        let s = if start < 0 {
            start.saturating_add(n)
        } else {
            start
        };
        let e = if end < 0 { end.saturating_add(n) } else { end };
        (clamp(s, 0, n), clamp(e, 0, n))
    } else {
        let s = if start < 0 {
            start.saturating_add(n)
        } else {
            start
        };
        let e = if end < 0 { end.saturating_add(n) } else { end };
        (clamp(s, -1, n - 1), clamp(e, -1, n - 1))
    };
    let len = if step > 0 {
        if e > s {
            (e - s + step - 1) / step
        } else {
            0
        }
    } else if s > e {
        (s - e + (-step) - 1) / (-step)
    } else {
        0
    };
    Ok(Dim::Known(len as u64))
}

fn infer_op(cx: &Cx, op: &Op, g: &Graph, id: NodeId) -> R<Vec<Type>> {
    match op {
        Op::Input | Op::Opaque(_) => Ok(g.node(id).outputs.iter().map(|v| v.ty.clone()).collect()),
        Op::Const(t) => Ok(vec![Type::tensor(t.dtype(), t.dims())]),
        Op::Relu(_)
        | Op::Sigmoid(_)
        | Op::Tanh(_)
        | Op::Erf(_)
        | Op::Exp(_)
        | Op::Log(_)
        | Op::Sqrt(_)
        | Op::Reciprocal(_)
        | Op::Neg(_)
        | Op::Abs(_)
        | Op::Softplus(_)
        | Op::Softsign(_)
        | Op::Floor(_)
        | Op::Ceil(_)
        | Op::Round(_)
        | Op::Sign(_)
        | Op::Sin(_)
        | Op::Cos(_)
        | Op::LeakyRelu(_)
        | Op::Elu(_)
        | Op::HardSigmoid(_)
        | Op::HardSwish(_)
        | Op::Gelu(_)
        | Op::Clip(_)
        | Op::Softmax(_)
        | Op::LogSoftmax(_)
        | Op::InstanceNormalization(_)
        | Op::LRN(_) => cx.same(0),
        // Identity passes any value through: sequences and optionals too.
        Op::Identity(_) => Ok(cx.pad(vec![cx.ty(0).cloned().ok_or("input 0 is missing")?])),
        Op::Not(_) | Op::IsNaN(_) => Ok(cx.pad(vec![tensor(Some(DType::Bool), cx.shape(0)?)])),
        Op::Cast(c) => Ok(cx.pad(vec![tensor(Some(c.to), cx.shape(0)?)])),
        Op::Dropout(_) => {
            let s = cx.shape(0)?;
            Ok(cx.pad(vec![
                tensor(cx.dtype(0)?, s.clone()),
                tensor(Some(DType::Bool), s),
            ]))
        }
        Op::Add(_)
        | Op::Sub(_)
        | Op::Mul(_)
        | Op::Div(_)
        | Op::Pow(_)
        | Op::Mod(_)
        | Op::PRelu(_) => Ok(cx.pad(vec![tensor(cx.dtype(0)?, broadcast_inputs(cx, &[0, 1])?)])),
        Op::Equal(_)
        | Op::Less(_)
        | Op::Greater(_)
        | Op::LessOrEqual(_)
        | Op::GreaterOrEqual(_)
        | Op::And(_)
        | Op::Or(_)
        | Op::Xor(_) => Ok(cx.pad(vec![tensor(
            Some(DType::Bool),
            broadcast_inputs(cx, &[0, 1])?,
        )])),
        Op::Where(_) => Ok(cx.pad(vec![tensor(
            cx.dtype(1)?,
            broadcast_inputs(cx, &[0, 1, 2])?,
        )])),
        Op::Min(_) | Op::Max(_) | Op::Sum(_) | Op::Mean(_) => {
            let idx: Vec<usize> = (0..cx.inputs.len()).collect();
            if idx.is_empty() {
                return Err("needs at least one input".into());
            }
            Ok(cx.pad(vec![tensor(cx.dtype(0)?, broadcast_inputs(cx, &idx)?)]))
        }
        Op::Gemm(o) => {
            let (a, b) = (cx.shape(0)?, cx.shape(1)?);
            let shape = match (a, b) {
                (Some(a), Some(b)) => {
                    if a.len() != 2 || b.len() != 2 {
                        return Err(format!(
                            "Gemm needs 2-D inputs, got ranks {} and {}",
                            a.len(),
                            b.len()
                        ));
                    }
                    let (m, k1) = if o.trans_a {
                        (&a[1], &a[0])
                    } else {
                        (&a[0], &a[1])
                    };
                    let (k2, n) = if o.trans_b {
                        (&b[1], &b[0])
                    } else {
                        (&b[0], &b[1])
                    };
                    if let (Dim::Known(x), Dim::Known(y)) = (k1, k2) {
                        if x != y {
                            return Err(format!("Gemm inner dims differ: {x} vs {y}"));
                        }
                    }
                    let out = vec![m.clone(), n.clone()];
                    if let Some(c) = cx.shape(2).ok().flatten().filter(|_| cx.present(2)) {
                        // C must broadcast to [M, N] (unidirectionally).
                        let bc = broadcast(&out, &c)?;
                        if bc.len() != 2 {
                            return Err("Gemm C has rank > 2".into());
                        }
                    }
                    Some(out)
                }
                _ => Some(vec![Dim::Unknown, Dim::Unknown]),
            };
            Ok(cx.pad(vec![tensor(cx.dtype(0)?, shape)]))
        }
        Op::MatMul(_) => {
            let shape = match (cx.shape(0)?, cx.shape(1)?) {
                (Some(a), Some(b)) => Some(matmul_shape(&a, &b)?),
                _ => None,
            };
            Ok(cx.pad(vec![tensor(cx.dtype(0)?, shape)]))
        }
        Op::Conv(o) => {
            let (x, w) = (cx.shape(0)?, cx.shape(1)?);
            let shape = match (x, w) {
                (Some(x), Some(w)) => {
                    if w.len() < 3 || x.len() != w.len() {
                        return Err(format!(
                            "Conv input rank {} and weight rank {} do not fit",
                            x.len(),
                            w.len()
                        ));
                    }
                    let kernel: Vec<i64> = match &o.kernel_shape {
                        Some(k) => k.clone(),
                        None => match crate::types::static_shape(&w[2..]) {
                            Some(k) => k.iter().map(|d| *d as i64).collect(),
                            None => return Ok(cx.pad(vec![tensor(cx.dtype(0)?, None)])),
                        },
                    };
                    if o.group <= 0 {
                        return Err(format!("group {} must be positive", o.group));
                    }
                    if let (Dim::Known(c), Dim::Known(wc)) = (&x[1], &w[1]) {
                        if *c != wc * o.group as u64 {
                            return Err(format!(
                                "input has {c} channels but weight expects {} x group {}",
                                wc, o.group
                            ));
                        }
                    }
                    let mut out = vec![x[0].clone(), w[0].clone()];
                    out.extend(spatial_out(
                        &x,
                        &kernel,
                        &o.strides,
                        &o.dilations,
                        &o.pads,
                        &o.auto_pad,
                        false,
                    )?);
                    Some(out)
                }
                _ => None,
            };
            Ok(cx.pad(vec![tensor(cx.dtype(0)?, shape)]))
        }
        Op::ConvTranspose(o) => {
            let (x, w) = (cx.shape(0)?, cx.shape(1)?);
            let shape = match (x, w) {
                (Some(x), Some(w)) => {
                    if w.len() < 3 || x.len() != w.len() {
                        return Err("ConvTranspose input and weight ranks do not fit".into());
                    }
                    let n = x.len() - 2;
                    let m = dim_mul(&w[1], &Dim::Known(o.group.max(1) as u64));
                    let mut out = vec![x[0].clone(), m];
                    let kernel: Option<Vec<i64>> = o.kernel_shape.clone().or_else(|| {
                        crate::types::static_shape(&w[2..])
                            .map(|k| k.iter().map(|d| *d as i64).collect())
                    });
                    for i in 0..n {
                        if let Some(os) = &o.output_shape {
                            let v = os.get(os.len().saturating_sub(n) + i).copied().unwrap_or(0);
                            out.push(Dim::Known(v.max(0) as u64));
                            continue;
                        }
                        let (Dim::Known(d), Some(k)) =
                            (&x[i + 2], kernel.as_ref().and_then(|k| k.get(i)))
                        else {
                            out.push(Dim::Unknown);
                            continue;
                        };
                        let d = *d as i64;
                        let s = o
                            .strides
                            .as_ref()
                            .and_then(|v| v.get(i).copied())
                            .unwrap_or(1);
                        let dil = o
                            .dilations
                            .as_ref()
                            .and_then(|v| v.get(i).copied())
                            .unwrap_or(1);
                        let op_ = o
                            .output_padding
                            .as_ref()
                            .and_then(|v| v.get(i).copied())
                            .unwrap_or(0);
                        let v = match o.auto_pad.as_str() {
                            "SAME_UPPER" | "SAME_LOWER" => d * s,
                            _ => {
                                let pb =
                                    o.pads.as_ref().and_then(|v| v.get(i).copied()).unwrap_or(0);
                                let pe = o
                                    .pads
                                    .as_ref()
                                    .and_then(|v| v.get(i + n).copied())
                                    .unwrap_or(0);
                                s * (d - 1) + op_ + (k - 1) * dil + 1 - pb - pe
                            }
                        };
                        if v < 0 {
                            return Err(format!("negative output extent {v}"));
                        }
                        out.push(Dim::Known(v as u64));
                    }
                    Some(out)
                }
                _ => None,
            };
            Ok(cx.pad(vec![tensor(cx.dtype(0)?, shape)]))
        }
        Op::BatchNormalization(_) => {
            let t = cx.t(0)?;
            let c = t
                .shape
                .as_ref()
                .and_then(|s| s.get(1).cloned())
                .unwrap_or(Dim::Unknown);
            let stat = tensor(t.dtype, Some(vec![c]));
            Ok(cx.pad(vec![Type::Tensor(t), stat.clone(), stat]))
        }
        Op::LayerNormalization(o) => {
            let t = cx.t(0)?;
            let stat_shape = match &t.shape {
                Some(s) => {
                    let a = norm_axis(o.axis, s.len())?;
                    Some(
                        s.iter()
                            .enumerate()
                            .map(|(i, d)| if i < a { d.clone() } else { Dim::Known(1) })
                            .collect(),
                    )
                }
                None => None,
            };
            let sd = if o.stash_type == 1 {
                Some(DType::F32)
            } else {
                t.dtype
            };
            Ok(cx.pad(vec![
                Type::Tensor(t),
                tensor(sd, stat_shape.clone()),
                tensor(sd, stat_shape),
            ]))
        }
        Op::MaxPool(o) => {
            let shape = match cx.shape(0)? {
                Some(x) => {
                    let mut out = vec![
                        x.first().cloned().unwrap_or(Dim::Unknown),
                        x.get(1).cloned().unwrap_or(Dim::Unknown),
                    ];
                    out.extend(spatial_out(
                        &x,
                        &o.kernel_shape,
                        &o.strides,
                        &o.dilations,
                        &o.pads,
                        &o.auto_pad,
                        o.ceil_mode != 0,
                    )?);
                    Some(out)
                }
                None => None,
            };
            Ok(cx.pad(vec![
                tensor(cx.dtype(0)?, shape.clone()),
                tensor(Some(DType::I64), shape),
            ]))
        }
        Op::AveragePool(o) => {
            let shape = match cx.shape(0)? {
                Some(x) => {
                    let mut out = vec![
                        x.first().cloned().unwrap_or(Dim::Unknown),
                        x.get(1).cloned().unwrap_or(Dim::Unknown),
                    ];
                    out.extend(spatial_out(
                        &x,
                        &o.kernel_shape,
                        &o.strides,
                        &o.dilations,
                        &o.pads,
                        &o.auto_pad,
                        o.ceil_mode != 0,
                    )?);
                    Some(out)
                }
                None => None,
            };
            Ok(cx.pad(vec![tensor(cx.dtype(0)?, shape)]))
        }
        Op::GlobalAveragePool(_) | Op::GlobalMaxPool(_) => {
            let shape = cx.shape(0)?.map(|x| {
                x.iter()
                    .enumerate()
                    .map(|(i, d)| if i < 2 { d.clone() } else { Dim::Known(1) })
                    .collect()
            });
            Ok(cx.pad(vec![tensor(cx.dtype(0)?, shape)]))
        }
        Op::ReduceMean(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceSum(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceMax(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceMin(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceProd(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceL2(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceL1(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceSumSquare(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceLogSumExp(o) => reduce(cx, o.keepdims, o.noop_with_empty_axes),
        Op::ArgMax(o) => arg_reduce(cx, o.axis, o.keepdims),
        Op::ArgMin(o) => arg_reduce(cx, o.axis, o.keepdims),
        Op::TopK(o) => {
            let shape = match cx.shape(0)? {
                Some(mut s) => {
                    let a = norm_axis(o.axis, s.len())?;
                    s[a] = match cx.ints(1).as_deref() {
                        Some([k]) if *k >= 0 => {
                            if let Dim::Known(n) = s[a] {
                                if *k as u64 > n {
                                    return Err(format!("k = {k} exceeds axis extent {n}"));
                                }
                            }
                            Dim::Known(*k as u64)
                        }
                        Some(_) => return Err("K must be one non-negative value".into()),
                        None => Dim::Unknown,
                    };
                    Some(s)
                }
                None => None,
            };
            Ok(cx.pad(vec![
                tensor(cx.dtype(0)?, shape.clone()),
                tensor(Some(DType::I64), shape),
            ]))
        }
        Op::Flatten(o) => {
            let shape = match cx.shape(0)? {
                Some(s) => {
                    let a = norm_axis_incl(o.axis, s.len())?;
                    let p = |d: &[Dim]| d.iter().fold(Dim::Known(1), |acc, x| dim_mul(&acc, x));
                    Some(vec![p(&s[..a]), p(&s[a..])])
                }
                None => Some(vec![Dim::Unknown, Dim::Unknown]),
            };
            Ok(cx.pad(vec![tensor(cx.dtype(0)?, shape)]))
        }
        Op::Reshape(o) => {
            let dt = cx.dtype(0)?;
            let Some(target) = cx.ints(1) else {
                let rank = cx.shape(1)?.and_then(|s| s.first().and_then(|d| d.known()));
                return Ok(cx.pad(vec![tensor(
                    dt,
                    rank.map(|r| vec![Dim::Unknown; r as usize]),
                )]));
            };
            let input = cx.shape(0)?;
            let mut out: Shape = Vec::with_capacity(target.len());
            let mut infer_at = None;
            for (i, d) in target.iter().enumerate() {
                match *d {
                    -1 => {
                        if infer_at.replace(i).is_some() {
                            return Err("Reshape shape has more than one -1".into());
                        }
                        out.push(Dim::Unknown);
                    }
                    0 if o.allowzero == 0 => out.push(match &input {
                        Some(s) => s
                            .get(i)
                            .cloned()
                            .ok_or("Reshape copies a dim the input lacks")?,
                        None => Dim::Unknown,
                    }),
                    d if d >= 0 => out.push(Dim::Known(d as u64)),
                    d => return Err(format!("Reshape shape has invalid dim {d}")),
                }
            }
            if let Some(total) = input
                .as_deref()
                .and_then(crate::types::static_shape)
                .map(|s| s.iter().product::<usize>() as u64)
            {
                let known: Option<u64> = out
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != infer_at)
                    .map(|(_, d)| d.known())
                    .product();
                match (infer_at, known) {
                    (Some(i), Some(k)) => {
                        if k == 0 || total % k != 0 {
                            return Err(format!("cannot reshape {total} elements into {target:?}"));
                        }
                        out[i] = Dim::Known(total / k);
                    }
                    (None, Some(k)) if k != total => {
                        return Err(format!("cannot reshape {total} elements into {target:?}"));
                    }
                    _ => {}
                }
            }
            Ok(cx.pad(vec![tensor(dt, Some(out))]))
        }
        Op::Squeeze(_) => {
            let dt = cx.dtype(0)?;
            let Some(s) = cx.shape(0)? else {
                return Ok(cx.pad(vec![tensor(dt, None)]));
            };
            let axes: Vec<usize> = if cx.present(1) {
                match cx.ints(1) {
                    Some(a) => a.iter().map(|x| norm_axis(*x, s.len())).collect::<R<_>>()?,
                    None => return Ok(cx.pad(vec![tensor(dt, None)])),
                }
            } else {
                if s.iter().any(|d| d.known().is_none()) {
                    return Ok(cx.pad(vec![tensor(dt, None)]));
                }
                s.iter()
                    .enumerate()
                    .filter(|(_, d)| d.known() == Some(1))
                    .map(|(i, _)| i)
                    .collect()
            };
            for a in &axes {
                if let Dim::Known(n) = s[*a] {
                    if n != 1 {
                        return Err(format!("cannot squeeze axis {a} of extent {n}"));
                    }
                }
            }
            let out = s
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, d)| d.clone())
                .collect();
            Ok(cx.pad(vec![tensor(dt, Some(out))]))
        }
        Op::Unsqueeze(_) => {
            let dt = cx.dtype(0)?;
            let (Some(s), Some(axes)) = (cx.shape(0)?, cx.ints(1)) else {
                return Ok(cx.pad(vec![tensor(dt, None)]));
            };
            let r = s.len() + axes.len();
            let mut axes: Vec<usize> = axes.iter().map(|a| norm_axis(*a, r)).collect::<R<_>>()?;
            axes.sort();
            if axes.windows(2).any(|w| w[0] == w[1]) {
                return Err("Unsqueeze axes repeat".into());
            }
            let mut it = s.into_iter();
            let out = (0..r)
                .map(|i| {
                    if axes.contains(&i) {
                        Dim::Known(1)
                    } else {
                        it.next().unwrap_or(Dim::Unknown)
                    }
                })
                .collect();
            Ok(cx.pad(vec![tensor(dt, Some(out))]))
        }
        Op::Transpose(o) => {
            let dt = cx.dtype(0)?;
            let Some(s) = cx.shape(0)? else {
                return Ok(cx.pad(vec![tensor(dt, None)]));
            };
            let perm: Vec<i64> = o
                .perm
                .clone()
                .unwrap_or_else(|| (0..s.len() as i64).rev().collect());
            if perm.len() != s.len() {
                return Err(format!("perm {perm:?} does not fit rank {}", s.len()));
            }
            let mut seen = vec![false; s.len()];
            let mut out = vec![];
            for p in &perm {
                let a = norm_axis(*p, s.len())?;
                if std::mem::replace(&mut seen[a], true) {
                    return Err(format!("perm {perm:?} repeats an axis"));
                }
                out.push(s[a].clone());
            }
            Ok(cx.pad(vec![tensor(dt, Some(out))]))
        }
        Op::Concat(o) => {
            let mut dt = None;
            let mut acc: Option<Shape> = None;
            let mut unknown = false;
            for i in 0..cx.inputs.len() {
                if !cx.present(i) {
                    continue;
                }
                dt = dt.or(cx.dtype(i)?);
                match cx.shape(i)? {
                    None => unknown = true,
                    Some(s) => {
                        acc = Some(match acc {
                            None => s,
                            Some(mut a) => {
                                if a.len() != s.len() {
                                    return Err(format!(
                                        "Concat inputs have ranks {} and {}",
                                        a.len(),
                                        s.len()
                                    ));
                                }
                                let ax = norm_axis(o.axis, a.len())?;
                                for (j, d) in s.iter().enumerate() {
                                    if j == ax {
                                        a[j] = match (&a[j], d) {
                                            (Dim::Known(x), Dim::Known(y)) => Dim::Known(x + y),
                                            _ => Dim::Unknown,
                                        };
                                    } else if let (Dim::Known(x), Dim::Known(y)) = (&a[j], d) {
                                        if x != y {
                                            return Err(format!(
                                                "Concat inputs differ on axis {j}: {x} vs {y}"
                                            ));
                                        }
                                    }
                                }
                                a
                            }
                        })
                    }
                }
            }
            if let Some(a) = &acc {
                norm_axis(o.axis, a.len())?;
            }
            let shape = if unknown {
                acc.map(|a| {
                    let ax = norm_axis(o.axis, a.len()).unwrap_or(0);
                    a.into_iter()
                        .enumerate()
                        .map(|(j, d)| if j == ax { Dim::Unknown } else { d })
                        .collect()
                })
            } else {
                acc
            };
            Ok(cx.pad(vec![tensor(dt, shape)]))
        }
        Op::Split(o) => {
            let dt = cx.dtype(0)?;
            let n = cx.n_out;
            let Some(s) = cx.shape(0)? else {
                return Ok(vec![tensor(dt, None); n]);
            };
            let a = norm_axis(o.axis, s.len())?;
            let sizes: Option<Vec<i64>> = if cx.present(1) {
                cx.ints(1)
            } else if let Dim::Known(total) = s[a] {
                let parts = o.num_outputs.unwrap_or(n as i64).max(1) as u64;
                let chunk = total.div_ceil(parts);
                Some(
                    (0..n as u64)
                        .map(|i| chunk.min(total.saturating_sub(i * chunk)) as i64)
                        .collect(),
                )
            } else {
                None
            };
            if let Some(sz) = &sizes {
                if sz.len() != n {
                    return Err(format!("{} split sizes for {n} outputs", sz.len()));
                }
                if let Dim::Known(total) = s[a] {
                    if sz.iter().sum::<i64>() != total as i64 {
                        return Err(format!("split sizes {sz:?} do not add up to {total}"));
                    }
                }
            }
            Ok((0..n)
                .map(|i| {
                    let mut o = s.clone();
                    o[a] = sizes
                        .as_ref()
                        .map(|z| Dim::Known(z[i].max(0) as u64))
                        .unwrap_or(Dim::Unknown);
                    tensor(dt, Some(o))
                })
                .collect())
        }
        Op::Slice(_) => {
            let dt = cx.dtype(0)?;
            let Some(s) = cx.shape(0)? else {
                return Ok(cx.pad(vec![tensor(dt, None)]));
            };
            let (Some(starts), Some(ends)) = (cx.ints(1), cx.ints(2)) else {
                return Ok(cx.pad(vec![tensor(dt, Some(vec![Dim::Unknown; s.len()]))]));
            };
            let axes = if cx.present(3) {
                cx.ints(3)
            } else {
                Some((0..starts.len() as i64).collect())
            };
            let steps = if cx.present(4) {
                cx.ints(4)
            } else {
                Some(vec![1; starts.len()])
            };
            let (Some(axes), Some(steps)) = (axes, steps) else {
                return Ok(cx.pad(vec![tensor(dt, Some(vec![Dim::Unknown; s.len()]))]));
            };
            if ends.len() != starts.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
            {
                return Err("Slice starts, ends, axes and steps differ in length".into());
            }
            let mut out = s.clone();
            for i in 0..starts.len() {
                let a = norm_axis(axes[i], s.len())?;
                out[a] = slice_dim(&s[a], starts[i], ends[i], steps[i])?;
            }
            Ok(cx.pad(vec![tensor(dt, Some(out))]))
        }
        Op::Gather(o) => {
            let dt = cx.dtype(0)?;
            let shape = match (cx.shape(0)?, cx.shape(1)?) {
                (Some(d), Some(i)) => {
                    let a = norm_axis(o.axis, d.len())?;
                    let mut out = d[..a].to_vec();
                    out.extend(i);
                    out.extend_from_slice(&d[a + 1..]);
                    Some(out)
                }
                _ => None,
            };
            Ok(cx.pad(vec![tensor(dt, shape)]))
        }
        Op::GatherElements(_) => Ok(cx.pad(vec![tensor(cx.dtype(0)?, cx.shape(1)?)])),
        Op::Expand(_) => {
            let dt = cx.dtype(0)?;
            let shape = match (cx.shape(0)?, cx.ints(1)) {
                (Some(s), Some(t)) => Some(broadcast(&s, &dims_i64(&t)?)?),
                _ => None,
            };
            Ok(cx.pad(vec![tensor(dt, shape)]))
        }
        Op::Pad(_) => {
            let dt = cx.dtype(0)?;
            let Some(s) = cx.shape(0)? else {
                return Ok(cx.pad(vec![tensor(dt, None)]));
            };
            let Some(pads) = cx.ints(1) else {
                return Ok(cx.pad(vec![tensor(dt, Some(vec![Dim::Unknown; s.len()]))]));
            };
            let axes: Vec<usize> = if cx.present(3) {
                match cx.ints(3) {
                    Some(a) => a.iter().map(|x| norm_axis(*x, s.len())).collect::<R<_>>()?,
                    None => return Ok(cx.pad(vec![tensor(dt, Some(vec![Dim::Unknown; s.len()]))])),
                }
            } else {
                (0..s.len()).collect()
            };
            if pads.len() != 2 * axes.len() {
                return Err(format!("{} pads for {} axes", pads.len(), axes.len()));
            }
            let mut out = s.clone();
            for (i, a) in axes.iter().enumerate() {
                if let Dim::Known(n) = s[*a] {
                    let v = n as i64 + pads[i] + pads[i + axes.len()];
                    if v < 0 {
                        return Err(format!("pads make axis {a} negative"));
                    }
                    out[*a] = Dim::Known(v as u64);
                }
            }
            Ok(cx.pad(vec![tensor(dt, Some(out))]))
        }
        Op::Tile(_) => {
            let dt = cx.dtype(0)?;
            let shape = match (cx.shape(0)?, cx.ints(1)) {
                (Some(s), Some(r)) => {
                    if r.len() != s.len() {
                        return Err("Tile repeats do not fit the rank".into());
                    }
                    Some(
                        s.iter()
                            .zip(&r)
                            .map(|(d, k)| {
                                if *k >= 0 {
                                    dim_mul(d, &Dim::Known(*k as u64))
                                } else {
                                    Dim::Unknown
                                }
                            })
                            .collect(),
                    )
                }
                (Some(s), None) => Some(vec![Dim::Unknown; s.len()]),
                _ => None,
            };
            Ok(cx.pad(vec![tensor(dt, shape)]))
        }
        Op::Shape(o) => {
            let n = match cx.rank(0)? {
                Some(r) => {
                    let r = r as i64;
                    let cl = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
                    let (s, e) = (cl(o.start), cl(o.end.unwrap_or(r)));
                    Dim::Known((e - s).max(0) as u64)
                }
                None => Dim::Unknown,
            };
            Ok(cx.pad(vec![tensor(Some(DType::I64), Some(vec![n]))]))
        }
        Op::Size(_) => Ok(cx.pad(vec![tensor(Some(DType::I64), Some(vec![]))])),
        Op::ConstantOfShape(o) => {
            let dt = o.value.as_ref().map(|t| t.dtype()).unwrap_or(DType::F32);
            let shape = match cx.ints(0) {
                Some(v) => Some(dims_i64(&v)?),
                None => cx
                    .shape(0)?
                    .and_then(|s| s.first().and_then(|d| d.known()))
                    .map(|r| vec![Dim::Unknown; r as usize]),
            };
            Ok(cx.pad(vec![tensor(Some(dt), shape)]))
        }
        Op::Trilu(_) => {
            let ty = cx.ty(0).cloned().ok_or("input 0 is missing")?;
            if let Some(s) = cx.shape(0)? {
                if s.len() < 2 {
                    return Err(format!("Trilu needs rank 2 or more, got {}", s.len()));
                }
            }
            Ok(cx.pad(vec![ty]))
        }
        Op::Range(_) => {
            let dt = cx.dtype(0)?;
            let n = match (cx.floats(0), cx.floats(1), cx.floats(2)) {
                (Some(s), Some(l), Some(d)) if s.len() == 1 && l.len() == 1 && d.len() == 1 => {
                    if d[0] == 0.0 {
                        return Err("Range delta is 0".into());
                    }
                    let n = ((l[0] - s[0]) / d[0]).ceil().max(0.0);
                    if !n.is_finite() || n > 1e12 {
                        return Err(format!("Range of {n} elements"));
                    }
                    Dim::Known(n as u64)
                }
                _ => Dim::Unknown,
            };
            Ok(cx.pad(vec![tensor(dt, Some(vec![n]))]))
        }
        Op::Resize(o) => {
            let dt = cx.dtype(0)?;
            let Some(s) = cx.shape(0)? else {
                return Ok(cx.pad(vec![tensor(dt, None)]));
            };
            let axes: Vec<usize> = match &o.axes {
                Some(a) => a.iter().map(|x| norm_axis(*x, s.len())).collect::<R<_>>()?,
                None => (0..s.len()).collect(),
            };
            let mut out = s.clone();
            if cx.present(3) {
                match cx.ints(3) {
                    Some(sz) if sz.len() == axes.len() => {
                        if o.keep_aspect_ratio_policy != "stretch" {
                            return Ok(cx.pad(vec![tensor(dt, Some(vec![Dim::Unknown; s.len()]))]));
                        }
                        for (a, v) in axes.iter().zip(sz) {
                            out[*a] = Dim::Known(v.max(0) as u64);
                        }
                    }
                    Some(_) => return Err("Resize sizes do not fit the axes".into()),
                    None => out = vec![Dim::Unknown; s.len()],
                }
            } else if cx.present(2) {
                match cx.floats(2) {
                    Some(sc) if sc.len() == axes.len() => {
                        for (a, f) in axes.iter().zip(sc) {
                            if let Dim::Known(n) = s[*a] {
                                out[*a] = Dim::Known((n as f64 * f).floor().max(0.0) as u64);
                            } else {
                                out[*a] = Dim::Unknown;
                            }
                        }
                    }
                    Some(sc) if sc.is_empty() => return Err("Resize needs scales or sizes".into()),
                    Some(_) => return Err("Resize scales do not fit the axes".into()),
                    None => out = vec![Dim::Unknown; s.len()],
                }
            } else {
                return Err("Resize needs scales or sizes".into());
            }
            Ok(cx.pad(vec![tensor(dt, Some(out))]))
        }
        Op::QuantizeLinear(o) => {
            let dt = if o.output_dtype != 0 {
                i32::try_from(o.output_dtype)
                    .ok()
                    .and_then(DType::from_code)
            } else if cx.present(2) {
                cx.dtype(2)?
            } else {
                Some(DType::U8)
            };
            Ok(cx.pad(vec![tensor(dt, cx.shape(0)?)]))
        }
        Op::DequantizeLinear(o) => {
            let dt = if o.output_dtype != 0 {
                i32::try_from(o.output_dtype)
                    .ok()
                    .and_then(DType::from_code)
            } else {
                cx.dtype(1)?
            };
            Ok(cx.pad(vec![tensor(dt, cx.shape(0)?)]))
        }
        Op::If(o) => {
            let then_t: Vec<Type> = o
                .then_branch
                .outputs()
                .iter()
                .map(|v| o.then_branch.value_type(*v).clone())
                .collect();
            let else_t: Vec<Type> = o
                .else_branch
                .outputs()
                .iter()
                .map(|v| o.else_branch.value_type(*v).clone())
                .collect();
            if then_t.len() != else_t.len() {
                return Err(format!(
                    "then branch has {} outputs, else branch {}",
                    then_t.len(),
                    else_t.len()
                ));
            }
            Ok(cx.pad(
                then_t
                    .iter()
                    .zip(&else_t)
                    .map(|(a, b)| merge_branch_types(a, b))
                    .collect(),
            ))
        }
        Op::Loop(o) => {
            let outs: Vec<Type> = o
                .body
                .outputs()
                .iter()
                .map(|v| o.body.value_type(*v).clone())
                .collect();
            let explicit = cx.inputs.len().saturating_sub(o.body.captures().len());
            let n_carried = explicit.saturating_sub(2).min(outs.len().saturating_sub(1));
            // A carried value has the type the body gives it (an optional initial value may
            // become a sequence); the initial value's type only fills in what the body leaves open.
            let mut res: Vec<Type> = (0..n_carried)
                .map(|i| match outs.get(1 + i) {
                    Some(Type::Unknown) | None => cx.ty(2 + i).cloned().unwrap_or(Type::Unknown),
                    Some(t) => t.clone(),
                })
                .collect();
            let trip = cx.ints(0).and_then(|v| v.first().copied());
            let cond_const = cx.ints(1).and_then(|v| v.first().copied());
            for t in outs.iter().skip(1 + n_carried) {
                let first = match (trip, cond_const, cx.present(1)) {
                    (Some(m), Some(c), _) if c != 0 && m >= 0 => Dim::Known(m as u64),
                    (Some(m), _, false) if m >= 0 => Dim::Known(m as u64),
                    _ => Dim::Unknown,
                };
                res.push(match t {
                    Type::Tensor(tt) => tensor(
                        tt.dtype,
                        tt.shape.clone().map(|mut s| {
                            s.insert(0, first);
                            s
                        }),
                    ),
                    _ => Type::Unknown,
                });
            }
            Ok(cx.pad(res))
        }
        Op::LSTM(o) => rnn(cx, &o.direction, o.hidden_size, o.layout, 4, true),
        Op::GRU(o) => rnn(cx, &o.direction, o.hidden_size, o.layout, 3, false),
    }
}

fn rnn(
    cx: &Cx,
    direction: &str,
    hidden: Option<i64>,
    layout: i64,
    gates: u64,
    lstm: bool,
) -> R<Vec<Type>> {
    let dt = cx.dtype(0)?;
    let nd = match direction {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        d => return Err(format!("unknown direction `{d}`")),
    };
    let x = cx.shape(0)?;
    let w = cx.shape(1)?;
    let h = match hidden {
        Some(h) => Dim::Known(h.max(0) as u64),
        None => match w.as_ref().and_then(|w| w.get(1)).and_then(|d| d.known()) {
            Some(n) => Dim::Known(n / gates),
            None => Dim::Unknown,
        },
    };
    let (seq, batch) = match &x {
        Some(x) if x.len() == 3 => {
            if layout == 0 {
                (x[0].clone(), x[1].clone())
            } else {
                (x[1].clone(), x[0].clone())
            }
        }
        Some(_) => return Err("X must be 3-D".into()),
        None => (Dim::Unknown, Dim::Unknown),
    };
    let ndim = Dim::Known(nd);
    let (y, yh) = if layout == 0 {
        (
            vec![seq, ndim.clone(), batch.clone(), h.clone()],
            vec![ndim, batch, h],
        )
    } else {
        (
            vec![batch.clone(), seq, ndim.clone(), h.clone()],
            vec![batch, ndim, h],
        )
    };
    let mut v = vec![tensor(dt, Some(y)), tensor(dt, Some(yh.clone()))];
    if lstm {
        v.push(tensor(dt, Some(yh)));
    }
    Ok(cx.pad(v))
}

fn merge_branch_types(a: &Type, b: &Type) -> Type {
    match (a, b) {
        (Type::Tensor(x), Type::Tensor(y)) => {
            let dtype = if x.dtype == y.dtype {
                x.dtype
            } else {
                x.dtype.or(y.dtype)
            };
            let shape = match (&x.shape, &y.shape) {
                (Some(p), Some(q)) if p.len() == q.len() => Some(
                    p.iter()
                        .zip(q)
                        .map(|(m, n)| if m == n { m.clone() } else { Dim::Unknown })
                        .collect(),
                ),
                _ => None,
            };
            tensor(dtype, shape)
        }
        _ if a == b => a.clone(),
        _ => Type::Unknown,
    }
}

/// Combines an inferred type with what the model declared: known facts from either side, an
/// error where both know an extent and disagree.
pub fn merge_declared(inferred: &Type, declared: &Type) -> R<Type> {
    match (inferred, declared) {
        (Type::Unknown, d) => Ok(d.clone()),
        (i, Type::Unknown) => Ok(i.clone()),
        (Type::Tensor(i), Type::Tensor(d)) => {
            let dtype = match (i.dtype, d.dtype) {
                (Some(x), Some(y)) if x != y => {
                    return Err(format!("inferred dtype {x}, declared {y}"))
                }
                (x, y) => x.or(y),
            };
            let shape = match (&i.shape, &d.shape) {
                (Some(p), Some(q)) => {
                    if p.len() != q.len() {
                        return Err(format!(
                            "inferred rank {}, declared rank {}",
                            p.len(),
                            q.len()
                        ));
                    }
                    let mut out = vec![];
                    for (m, n) in p.iter().zip(q) {
                        out.push(match (m, n) {
                            (Dim::Known(x), Dim::Known(y)) if x != y => {
                                return Err(format!("inferred extent {x}, declared {y}"))
                            }
                            (Dim::Known(x), _) => Dim::Known(*x),
                            (_, Dim::Known(y)) => Dim::Known(*y),
                            (Dim::Sym(s), _) => Dim::Sym(s.clone()),
                            (_, Dim::Sym(s)) => Dim::Sym(s.clone()),
                            _ => Dim::Unknown,
                        });
                    }
                    Some(out)
                }
                (p, q) => p.clone().or(q.clone()),
            };
            Ok(tensor(dtype, shape))
        }
        (i, _) => Ok(i.clone()),
    }
}

/// Infers the output types of one node from its inputs.
pub fn infer_node(g: &Graph, id: NodeId) -> Result<Vec<Type>, InferError> {
    let node = g.node(id);
    let cx = Cx {
        g,
        inputs: g.node_inputs(id),
        n_out: node.outputs.len(),
    };
    infer_op(&cx, &node.op, g, id).map_err(|msg| InferError {
        node: g.display_node_name(id),
        op: node.op.op_type().to_string(),
        msg,
    })
}

/// Infers every value type of the graph (and its subgraphs) in topological order, merging with
/// the types already declared. Collects every error rather than stopping at the first.
pub fn infer_graph(g: &mut Graph) -> Result<(), Vec<InferError>> {
    let order = match g.topo_order() {
        Ok(o) => o,
        Err(e) => {
            return Err(vec![InferError {
                node: String::new(),
                op: String::new(),
                msg: e.to_string(),
            }])
        }
    };
    let mut errors = vec![];
    for id in order {
        // Subgraphs first: their captures take the types of the values the node passes in.
        let n_sub = g.node(id).op.subgraphs().len();
        if n_sub > 0 {
            let inputs = g.node_inputs(id);
            let in_types: Vec<Type> = inputs
                .iter()
                .map(|v| v.map(|v| g.value_type(v).clone()).unwrap_or(Type::Unknown))
                .collect();
            let is_loop = matches!(g.node(id).op, Op::Loop(_));
            let mut op = g.node(id).op.clone();
            for sub in op.subgraphs_mut() {
                let caps = sub.captures();
                let first_cap = in_types.len().saturating_sub(caps.len());
                for (i, c) in caps.iter().enumerate() {
                    if let Some(t) = in_types.get(first_cap + i) {
                        if *t != Type::Unknown {
                            sub.set_value_type(*c, t.clone());
                        }
                    }
                }
                if is_loop {
                    // Loop body inputs: iteration number, condition, then the carried values.
                    let ins = sub.inputs();
                    for (k, v) in ins.iter().enumerate().skip(2) {
                        if let Some(t) = in_types.get(k).filter(|t| **t != Type::Unknown) {
                            if let Ok(m) = merge_declared(t, sub.value_type(*v)) {
                                sub.set_value_type(*v, m);
                            }
                        }
                    }
                }
                if let Err(mut e) = infer_graph(sub) {
                    errors.append(&mut e);
                }
            }
            g.node_mut(id).op = op;
        }
        match infer_node(g, id) {
            Ok(types) => {
                for (port, t) in types.into_iter().enumerate() {
                    let v = ValueId::new(id, port as u32);
                    if !g.contains_value(v) {
                        continue;
                    }
                    match merge_declared(&t, g.value_type(v)) {
                        Ok(m) => g.set_value_type(v, m),
                        Err(msg) => errors.push(InferError {
                            node: g.display_node_name(id),
                            op: g.node(id).op.op_type().to_string(),
                            msg: format!("output `{}`: {msg}", g.value(v).name),
                        }),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: &[u64]) -> Shape {
        v.iter().map(|x| Dim::Known(*x)).collect()
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast(&d(&[2, 1, 3]), &d(&[4, 1])).unwrap(),
            d(&[2, 4, 3])
        );
        assert!(broadcast(&d(&[2, 3]), &d(&[4, 3])).is_err());
        assert_eq!(
            broadcast(&[Dim::Sym("n".into())], &d(&[1])).unwrap(),
            vec![Dim::Sym("n".into())]
        );
    }

    #[test]
    fn pooling_extent_with_ceil_mode() {
        // 5 wide, kernel 2, stride 2: floor gives 2, ceil gives 3.
        assert_eq!(
            window_out(&Dim::Known(5), 2, 2, 1, 0, 0, "NOTSET", false).unwrap(),
            Dim::Known(2)
        );
        assert_eq!(
            window_out(&Dim::Known(5), 2, 2, 1, 0, 0, "NOTSET", true).unwrap(),
            Dim::Known(3)
        );
        assert_eq!(
            window_out(&Dim::Known(5), 3, 2, 1, 0, 0, "SAME_UPPER", false).unwrap(),
            Dim::Known(3)
        );
    }

    #[test]
    fn slice_extents_clamp_like_onnx() {
        assert_eq!(
            slice_dim(&Dim::Known(10), 0, i64::MAX, 1).unwrap(),
            Dim::Known(10)
        );
        assert_eq!(
            slice_dim(&Dim::Known(10), -1, i64::MIN, -1).unwrap(),
            Dim::Known(10)
        );
        assert_eq!(slice_dim(&Dim::Known(10), 2, 8, 3).unwrap(), Dim::Known(2));
        assert_eq!(
            slice_dim(&Dim::Known(10), 20, 30, 1).unwrap(),
            Dim::Known(0)
        );
    }

    #[test]
    fn matmul_broadcasts_batches_and_handles_vectors() {
        assert_eq!(
            matmul_shape(&d(&[2, 1, 3, 4]), &d(&[5, 4, 6])).unwrap(),
            d(&[2, 5, 3, 6])
        );
        assert_eq!(matmul_shape(&d(&[4]), &d(&[4, 6])).unwrap(), d(&[6]));
        assert!(matmul_shape(&d(&[3, 4]), &d(&[5, 6])).is_err());
    }
}
