//! Shape folding during binding: once the input shapes are bound, `Shape` (and `Size`) give
//! constants, and the small integer subgraphs that exporters build from them (Gather, Concat,
//! Unsqueeze, arithmetic, Cast, …) fold into constants too, so that the `Reshape`, `Expand` or
//! `ConstantOfShape` they feed gets a static output shape.
//!
//! Only nodes whose inputs are all constant (or, for `Shape`/`Size`, static) and whose output
//! is small (at most [`MAX_ELEMS`] elements) are evaluated; anything else stays for the
//! lowering. This is not the `fold` pass (smelt-passes), which folds much more: it is the part
//! of binding the native backend cannot do without.

use smelt_ir::tensor::element_count;
use smelt_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};

/// The largest result the folder computes.
pub const MAX_ELEMS: usize = 4096;

/// The largest `ConstantOfShape` the folder materialises (elements).
pub const MAX_FILL: usize = 1 << 28;

/// Values of a small constant: integers or floats, with static dims.
#[derive(Clone, Debug)]
struct Val {
    dims: Vec<usize>,
    ints: Option<Vec<i64>>,
    floats: Vec<f64>,
}

impl Val {
    fn of(t: &Tensor) -> Option<Val> {
        if t.len() > MAX_ELEMS {
            return None;
        }
        let floats = t.to_f64_vec()?;
        let ints = if t.dtype().is_float() {
            None
        } else {
            t.to_i64_vec()
        };
        Some(Val {
            dims: t.dims().to_vec(),
            ints,
            floats,
        })
    }
    fn int(&self, i: usize) -> f64 {
        match &self.ints {
            Some(v) => v.get(i).copied().unwrap_or(0) as f64,
            None => self.floats.get(i).copied().unwrap_or(0.0),
        }
    }
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Index into `v` (dims `vd`) for output multi-index `idx` under numpy broadcasting.
fn bcast_index(idx: &[usize], vd: &[usize]) -> usize {
    let pad = idx.len() - vd.len().min(idx.len());
    let st = strides(vd);
    vd.iter()
        .enumerate()
        .map(|(k, d)| if *d == 1 { 0 } else { idx[pad + k] * st[k] })
        .sum()
}

fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for k in (0..dims.len()).rev() {
        let d = dims[k].max(1);
        idx[k] = i % d;
        i /= d;
    }
    idx
}

fn norm_axis(a: i64, r: usize) -> Option<usize> {
    let x = if a < 0 { a + r as i64 } else { a };
    (0..r as i64).contains(&x).then_some(x as usize)
}

/// Evaluates one node whose inputs are `ins`, producing `out_dims` elements of `out_dtype`.
fn eval(op: &Op, ins: &[Option<Val>], out_dims: &[usize]) -> Option<Vec<f64>> {
    let n = element_count(out_dims)?;
    let x = |i: usize| ins.get(i).and_then(|v| v.as_ref());
    let elementwise = |f: &dyn Fn(&[f64]) -> f64| -> Option<Vec<f64>> {
        let vals: Vec<&Val> = ins.iter().flatten().collect();
        Some(
            (0..n)
                .map(|i| {
                    let idx = unravel(i, out_dims);
                    let args: Vec<f64> = vals
                        .iter()
                        .map(|v| v.int(bcast_index(&idx, &v.dims)))
                        .collect();
                    f(&args)
                })
                .collect(),
        )
    };
    let int_like = x(0).is_some_and(|v| v.ints.is_some());
    let arity = match op {
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) => 2,
        Op::Equal(_) | Op::Less(_) | Op::Greater(_) => 2,
        Op::Where(_) => 3,
        _ => 1,
    };
    if ins.iter().flatten().count() < arity {
        return None;
    }
    Some(match op {
        Op::Identity(_)
        | Op::Reshape(_)
        | Op::Flatten(_)
        | Op::Squeeze(_)
        | Op::Unsqueeze(_)
        | Op::Cast(_) => {
            let v = x(0)?;
            (0..n).map(|i| v.int(i)).collect()
        }
        Op::Expand(_) => elementwise(&|a| a[0])?,
        Op::Neg(_) => elementwise(&|a| -a[0])?,
        Op::Abs(_) => elementwise(&|a| a[0].abs())?,
        Op::Add(_) => elementwise(&|a| a[0] + a[1])?,
        Op::Sub(_) => elementwise(&|a| a[0] - a[1])?,
        Op::Mul(_) => elementwise(&|a| a[0] * a[1])?,
        Op::Div(_) => elementwise(&|a| {
            if int_like {
                if a[1] == 0.0 {
                    0.0
                } else {
                    (a[0] / a[1]).trunc()
                }
            } else {
                a[0] / a[1]
            }
        })?,
        Op::Min(_) => elementwise(&|a| a.iter().cloned().fold(f64::INFINITY, f64::min))?,
        Op::Max(_) => elementwise(&|a| a.iter().cloned().fold(f64::NEG_INFINITY, f64::max))?,
        Op::Equal(_) => elementwise(&|a| (a[0] == a[1]) as i64 as f64)?,
        Op::Less(_) => elementwise(&|a| (a[0] < a[1]) as i64 as f64)?,
        Op::Greater(_) => elementwise(&|a| (a[0] > a[1]) as i64 as f64)?,
        Op::Not(_) => elementwise(&|a| (a[0] == 0.0) as i64 as f64)?,
        Op::Where(_) => elementwise(&|a| if a[0] != 0.0 { a[1] } else { a[2] })?,
        Op::Concat(c) => {
            let vals: Vec<&Val> = ins.iter().flatten().collect();
            let a = norm_axis(c.axis, out_dims.len())?;
            let outer: usize = out_dims[..a].iter().product();
            let inner: usize = out_dims[a + 1..].iter().product();
            let mut out = Vec::with_capacity(n);
            for o in 0..outer {
                for v in &vals {
                    let d = *v.dims.get(a)?;
                    for k in 0..d * inner {
                        out.push(v.int(o * d * inner + k));
                    }
                }
            }
            out
        }
        Op::Gather(ga) => {
            let d = x(0)?;
            let idx = x(1)?;
            let a = norm_axis(ga.axis, d.dims.len())?;
            let outer: usize = d.dims[..a].iter().product();
            let na = d.dims[a];
            let inner: usize = d.dims[a + 1..].iter().product();
            let ni = element_count(&idx.dims)?;
            let mut out = Vec::with_capacity(n);
            for o in 0..outer {
                for j in 0..ni {
                    let mut k = idx.int(j) as i64;
                    if k < 0 {
                        k += na as i64;
                    }
                    if k < 0 || k >= na as i64 {
                        return None;
                    }
                    for e in 0..inner {
                        out.push(d.int((o * na + k as usize) * inner + e));
                    }
                }
            }
            out
        }
        Op::Slice(_) => {
            let d = x(0)?;
            let starts = x(1)?;
            let r = d.dims.len();
            let ns = element_count(&starts.dims)?;
            let mut first = vec![0i64; r];
            let mut step = vec![1i64; r];
            for i in 0..ns {
                let a = match x(3) {
                    Some(ax) => norm_axis(ax.int(i) as i64, r)?,
                    None => i,
                };
                let st = x(4).map(|s| s.int(i) as i64).unwrap_or(1);
                if st == 0 {
                    return None;
                }
                let dim = d.dims[a] as i64;
                let mut s0 = starts.int(i) as i64;
                if s0 < 0 {
                    s0 += dim;
                }
                first[a] = if st > 0 {
                    s0.clamp(0, dim)
                } else {
                    s0.clamp(0, (dim - 1).max(0))
                };
                step[a] = st;
            }
            let st = strides(&d.dims);
            (0..n)
                .map(|i| {
                    let idx = unravel(i, out_dims);
                    let off: i64 = (0..r)
                        .map(|k| (first[k] + idx[k] as i64 * step[k]) * st[k] as i64)
                        .sum();
                    d.int(off.max(0) as usize)
                })
                .collect()
        }
        Op::ConstantOfShape(c) => {
            let v = match &c.value {
                Some(t) => t.to_f64_vec()?.first().copied().unwrap_or(0.0),
                None => 0.0,
            };
            vec![v; n]
        }
        Op::Range(_) => {
            let s = x(0)?.int(0);
            let d = x(2)?.int(0);
            (0..n).map(|i| s + d * i as f64).collect()
        }
        _ => return None,
    })
}

fn foldable(op: &Op) -> bool {
    matches!(
        op,
        Op::Identity(_)
            | Op::Reshape(_)
            | Op::Flatten(_)
            | Op::Squeeze(_)
            | Op::Unsqueeze(_)
            | Op::Cast(_)
            | Op::Expand(_)
            | Op::Neg(_)
            | Op::Abs(_)
            | Op::Add(_)
            | Op::Sub(_)
            | Op::Mul(_)
            | Op::Div(_)
            | Op::Min(_)
            | Op::Max(_)
            | Op::Equal(_)
            | Op::Less(_)
            | Op::Greater(_)
            | Op::Not(_)
            | Op::Where(_)
            | Op::Concat(_)
            | Op::Gather(_)
            | Op::Slice(_)
            | Op::ConstantOfShape(_)
            | Op::Range(_)
    )
}

/// True when the folder computes `op`'s output value from its inputs' values once they are
/// constants (so a value needed at compile time may come through it); `Shape` and `Size` read
/// only shapes.
pub(crate) fn follows_values(op: &Op) -> bool {
    foldable(op) || matches!(op, Op::Dropout(_))
}

/// Folds what it can (see the module doc); returns how many nodes became constants.
pub fn fold_shapes(g: &mut Graph) -> usize {
    let Ok(order) = g.topo_order() else {
        return 0;
    };
    let mut folded = 0;
    for id in order {
        if let Some(t) = try_fold(g, id) {
            if g.set_node_inputs(id, &[]).is_ok() {
                g.node_mut(id).op = Op::Const(t);
                folded += 1;
            }
        }
    }
    folded
}

fn try_fold(g: &Graph, id: NodeId) -> Option<Tensor> {
    let node = g.node(id);
    if node.outputs.len() != 1 {
        return None;
    }
    let out = ValueId::new(id, 0);
    let ins = g.node_inputs(id);
    let in0 = ins.first().copied().flatten();
    match &node.op {
        Op::Shape(s) => {
            let dims = g.value_type(in0?).static_dims()?;
            let r = dims.len() as i64;
            let norm = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let a = norm(s.start);
            let b = norm(s.end.unwrap_or(r)).max(a);
            let v: Vec<i64> = dims[a..b].iter().map(|d| *d as i64).collect();
            Tensor::from_vec(vec![v.len()], &v).ok()
        }
        Op::Size(_) => {
            let dims = g.value_type(in0?).static_dims()?;
            Some(Tensor::scalar(element_count(&dims)? as i64))
        }
        Op::Identity(_)
        | Op::Reshape(_)
        | Op::Flatten(_)
        | Op::Squeeze(_)
        | Op::Unsqueeze(_)
        | Op::Dropout(_)
            if in0.and_then(|v| g.const_value(v)).is_some() =>
        {
            // A reshaped constant shares the constant's bytes: free at any size.
            let dims = g.value_type(out).static_dims()?;
            g.const_value(in0?)?.reshaped(dims).ok()
        }
        Op::ConstantOfShape(c) => {
            // Models that build their weights at run time (ONNX's light models) need these as
            // constants: a fill is cheap at any size.
            let ty = g.value_type(out);
            let dims = ty.static_dims()?;
            let n = element_count(&dims)?;
            if n > MAX_FILL || g.const_value(in0?).is_none() {
                return None;
            }
            match &c.value {
                Some(v) => {
                    let b = v.bytes()?;
                    if v.len() != 1 {
                        return None;
                    }
                    Tensor::from_bytes(v.dtype(), dims, b.repeat(n)).ok()
                }
                None => Tensor::zeros(DType::F32, dims).ok(),
            }
        }
        Op::DequantizeLinear(q) => dequantize_const(g, &ins, q),
        op if foldable(op) => {
            let ty = g.value_type(out);
            let dtype = ty.dtype()?;
            let dims = ty.static_dims()?;
            if element_count(&dims)? > MAX_ELEMS
                || !(dtype.is_int() || dtype == DType::Bool || dtype.is_float())
                || matches!(dtype, DType::F16 | DType::BF16)
            {
                return None;
            }
            // Only integer work (shapes, indices, masks): float subgraphs are left to the
            // lowering, which computes them at run time with the model's own rounding.
            let vals: Vec<Option<Val>> = ins
                .iter()
                .map(|v| match v {
                    None => Some(None),
                    Some(v) => g.const_value(*v).and_then(Val::of).map(Some),
                })
                .collect::<Option<_>>()?;
            let any_int = vals.iter().flatten().any(|v| v.ints.is_some());
            if !(dtype.is_int() || dtype == DType::Bool || any_int) {
                return None;
            }
            let r = eval(op, &vals, &dims)?;
            if dtype.is_float() {
                Tensor::from_f64s(dtype, dims, &r).ok()
            } else {
                let iv: Vec<i64> = r.iter().map(|v| *v as i64).collect();
                Tensor::from_i64s(dtype, dims, &iv).ok()
            }
        }
        _ => None,
    }
}

/// `DequantizeLinear` of an integer constant (per tensor, per axis or blocked, packed int4
/// included) as an f32 constant, computed as the lowering and ONNX do: `(x - zp) * scale` in
/// f32. A weight so folded is then an ordinary constant for the kernels that need one (Conv).
fn dequantize_const(
    g: &Graph,
    ins: &[Option<ValueId>],
    q: &smelt_ir::ops::DequantizeLinear,
) -> Option<Tensor> {
    let c = |i: usize| ins.get(i).copied().flatten().and_then(|v| g.const_value(v));
    let x = c(0)?;
    let scale = c(1)?;
    let zp = match ins.get(2).copied().flatten() {
        Some(v) => Some(g.const_value(v)?),
        None => None,
    };
    let out_f32 =
        q.output_dtype == 0 || DType::from_code(q.output_dtype as i32) == Some(DType::F32);
    if !x.dtype().is_int() || scale.dtype() != DType::F32 || !out_f32 {
        return None;
    }
    let dims = x.dims().to_vec();
    let idx = scale_index(&dims, scale.dims(), q.axis, q.block_size)?;
    let xs = x.to_i64_vec()?;
    let ss = scale.to_f32_vec()?;
    let zs = match zp {
        Some(z) if z.dims() == scale.dims() || z.len() == ss.len() => z.to_i64_vec()?,
        Some(_) => return None,
        None => vec![0; ss.len()],
    };
    if zs.len() != ss.len() || idx.iter().any(|i| *i >= ss.len()) {
        return None;
    }
    let v: Vec<f32> = xs
        .iter()
        .zip(&idx)
        .map(|(xv, i)| (*xv as f32 - zs[*i] as f32) * ss[*i])
        .collect();
    Tensor::from_vec(dims, &v).ok()
}

/// For each element of a tensor of `dims`, the index of its scale: one scale, one per index
/// of `axis` (1-D scale), or one per block of `block` along `axis` (scale of `dims` with that
/// dim divided, rounded up).
fn scale_index(dims: &[usize], sdims: &[usize], axis: i64, block: i64) -> Option<Vec<usize>> {
    let n = element_count(dims)?;
    let sn: usize = sdims.iter().product();
    if block <= 0 && sn == 1 && sdims.len() <= 1 {
        return Some(vec![0; n]);
    }
    let a = norm_axis(axis, dims.len())?;
    let st = strides(dims);
    if block <= 0 {
        if sdims.len() != 1 || sdims[0] != dims[a] {
            return None;
        }
        return Some((0..n).map(|i| (i / st[a]) % dims[a]).collect());
    }
    let b = block as usize;
    let mut sd = dims.to_vec();
    sd[a] = dims[a].div_ceil(b);
    if sdims != sd.as_slice() {
        return None;
    }
    let sst = strides(&sd);
    Some(
        (0..n)
            .map(|i| {
                (0..dims.len())
                    .map(|k| {
                        let c = (i / st[k]) % dims[k];
                        (if k == a { c / b } else { c }) * sst[k]
                    })
                    .sum()
            })
            .collect(),
    )
}

#[cfg(test)]
mod dq_tests {
    //! The scale lookup of folded `DequantizeLinear`.
    use super::*;

    /// Blocks of 32 along axis 1 of a `[4, 64]` weight: two scales a row.
    #[test]
    fn blocked_scale_index() {
        let idx = scale_index(&[4, 64], &[4, 2], 1, 32).unwrap();
        assert_eq!(idx[0], 0);
        assert_eq!(idx[32], 1);
        assert_eq!(idx[64], 2);
        let x = Tensor::from_i64s(DType::I4, vec![4, 64], &vec![3; 256]).unwrap();
        assert_eq!(x.to_i64_vec().unwrap().len(), 256);
    }
}
