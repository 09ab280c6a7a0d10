//! Resize with `nearest` (every `nearest_mode`) and `linear` (multilinear over the resized
//! axes) for the coordinate transformation modes half_pixel, pytorch_half_pixel,
//! align_corners, asymmetric and tf_half_pixel_for_nearest.
//!
//! Every axis gets a table built at compile time: for each output index, the byte offsets of
//! the two input neighbours and the weight of the second. The generated code walks the output,
//! adds up offsets level by level and blends the 2^k corners of the k interpolated axes.

use super::{strides, Ctx, Lanes, NodeIo, R};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{Graph, NodeId, Op};

/// Why a Resize node cannot be lowered, if it cannot.
pub(crate) fn check(g: &Graph, id: NodeId) -> R<()> {
    let Op::Resize(o) = &g.node(id).op else {
        return Ok(());
    };
    if o.mode != "nearest" && o.mode != "linear" {
        return Err(format!("Resize mode `{}` is not supported", o.mode));
    }
    if o.antialias != 0 {
        return Err("Resize with antialias is not supported".into());
    }
    match o.coordinate_transformation_mode.as_str() {
        "half_pixel"
        | "pytorch_half_pixel"
        | "align_corners"
        | "asymmetric"
        | "tf_half_pixel_for_nearest" => {}
        m => return Err(format!("Resize coordinate mode `{m}` is not supported")),
    }
    let ins = g.node_inputs(id);
    for i in [2usize, 3] {
        if let Some(v) = ins.get(i).copied().flatten() {
            if g.const_value(v).is_none() {
                return Err("Resize's scales and sizes must be constant".into());
            }
        }
    }
    match ins
        .first()
        .copied()
        .flatten()
        .and_then(|v| g.value_type(v).dtype())
    {
        Some(smelt_ir::DType::F32) => Ok(()),
        _ => Err("Resize takes f32 data".into()),
    }
}

struct Axis {
    /// Byte offsets of the first neighbour, per output index.
    off0: Vec<i64>,
    /// Byte offsets of the second neighbour and its weight (linear axes only).
    lin: Option<(Vec<i64>, Vec<f32>)>,
}

/// Lowers Resize.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let Op::Resize(o) = io.op() else {
        return Err("not a Resize".into());
    };
    let x = io.input(0)?;
    let y = io.output(0)?;
    let r = x.dims.len();
    if y.dims.len() != r {
        return Err("Resize's output rank differs from the input".into());
    }
    let axes: Vec<usize> = match &o.axes {
        Some(a) => a.iter().map(|v| super::axis(*v, r)).collect::<R<_>>()?,
        None => (0..r).collect(),
    };
    // Scales per axis: given, or output / input.
    let given: Option<Vec<f64>> = io
        .konst(2)
        .and_then(|t| t.to_f64_vec())
        .filter(|v| !v.is_empty());
    let mut scale: Vec<f64> = (0..r)
        .map(|k| y.dims[k] as f64 / x.dims[k].max(1) as f64)
        .collect();
    // The output length the coordinate transform divides by: `scale * input length`, not
    // rounded, when a scale is given (ONNX's reference: 2 * 0.6 = 1.2 with align_corners).
    let mut out_len: Vec<f64> = y.dims.iter().map(|d| *d as f64).collect();
    if let Some(sc) = &given {
        for (a, s) in axes.iter().zip(sc) {
            scale[*a] = *s;
            out_len[*a] = *s * x.dims[*a] as f64;
        }
    }
    let xs = strides(&x.dims);
    let mode = o.coordinate_transformation_mode.as_str();
    let linear = o.mode == "linear";
    let mut tabs = vec![];
    for k in 0..r {
        let (n_in, n_out, s) = (x.dims[k], y.dims[k], scale[k]);
        let mut off0 = vec![];
        let mut off1 = vec![];
        let mut wts = vec![];
        let mut trivial = true;
        for i in 0..n_out {
            let xf = i as f64;
            let orig = match mode {
                "half_pixel" => (xf + 0.5) / s - 0.5,
                "pytorch_half_pixel" => {
                    if n_out > 1 {
                        (xf + 0.5) / s - 0.5
                    } else {
                        0.0
                    }
                }
                "align_corners" => {
                    if out_len[k] != 1.0 {
                        xf * (n_in as f64 - 1.0) / (out_len[k] - 1.0)
                    } else {
                        0.0
                    }
                }
                "tf_half_pixel_for_nearest" => (xf + 0.5) / s,
                _ => xf / s,
            };
            let last = n_in.saturating_sub(1) as f64;
            if linear {
                let c = orig.clamp(0.0, last);
                let i0 = c.floor();
                let i1 = (i0 + 1.0).min(last);
                let w = (c - i0) as f32;
                if w != 0.0 || i0 as usize != i {
                    trivial = false;
                }
                off0.push(i0 as i64 * xs[k] * 4);
                off1.push(i1 as i64 * xs[k] * 4);
                wts.push(w);
            } else {
                let v = match o.nearest_mode.as_str() {
                    "round_prefer_ceil" => (orig + 0.5).floor(),
                    "floor" => orig.floor(),
                    "ceil" => orig.ceil(),
                    _ => (orig - 0.5).ceil(),
                };
                let v = v.clamp(0.0, last);
                off0.push(v as i64 * xs[k] * 4);
            }
        }
        let lin = if linear && !trivial {
            Some((off1, wts))
        } else {
            None
        };
        tabs.push(Axis { off0, lin });
    }
    // Tables into the weights object.
    let mut addrs = vec![];
    for t in &tabs {
        let b0: Vec<u8> = t.off0.iter().flat_map(|v| v.to_le_bytes()).collect();
        let o0 = cx.add_weights(&b0);
        let lin = match &t.lin {
            Some((o1, w)) => {
                let b1: Vec<u8> = o1.iter().flat_map(|v| v.to_le_bytes()).collect();
                let bw: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
                Some((cx.add_weights(&b1), cx.add_weights(&bw)))
            }
            None => None,
        };
        addrs.push((o0, lin));
    }
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let ys: Vec<i64> = strides(&y.dims).iter().map(|s| s * 4).collect();
    let one = cx.fconst(Lanes::One, 1.0);
    walk(cx, &y.dims, &ys, &addrs, 0, vec![(xp, one)], yp)
}

/// Level `k` of the output walk: `corners` are (input address, weight) pairs so far.
fn walk(
    cx: &mut Ctx,
    dims: &[usize],
    ys: &[i64],
    addrs: &[(u64, Option<(u64, u64)>)],
    k: usize,
    corners: Vec<(Value, Value)>,
    yp: Value,
) -> R<()> {
    if k == dims.len() {
        let mut acc: Option<Value> = None;
        for (a, w) in &corners {
            let v = cx.load(types::F32, *a, 0);
            acc = Some(match acc {
                None => cx.b.ins().fmul(v, *w),
                Some(s) => cx.fma(v, *w, s),
            });
        }
        let v = acc.ok_or("no corners")?;
        cx.store(v, yp, 0);
        return Ok(());
    }
    let (t0, lin) = addrs[k];
    cx.for_n(dims[k], |cx, i| {
        let tb = cx.weights_at(t0);
        let ta = cx.index(tb, i, 8);
        let o0 = cx.load(types::I64, ta, 0);
        let mut next = vec![];
        match lin {
            None => {
                for (a, w) in &corners {
                    next.push((cx.b.ins().iadd(*a, o0), *w));
                }
            }
            Some((t1, tw)) => {
                let tb1 = cx.weights_at(t1);
                let ta1 = cx.index(tb1, i, 8);
                let o1 = cx.load(types::I64, ta1, 0);
                let twb = cx.weights_at(tw);
                let wa = cx.index(twb, i, 4);
                let w1 = cx.load(types::F32, wa, 0);
                let one = cx.fconst(Lanes::One, 1.0);
                let w0 = cx.b.ins().fsub(one, w1);
                for (a, w) in &corners {
                    let a0 = cx.b.ins().iadd(*a, o0);
                    let ww0 = cx.b.ins().fmul(*w, w0);
                    next.push((a0, ww0));
                    let a1 = cx.b.ins().iadd(*a, o1);
                    let ww1 = cx.b.ins().fmul(*w, w1);
                    next.push((a1, ww1));
                }
            }
        }
        let yo = cx.index(yp, i, ys[k]);
        walk(cx, dims, ys, addrs, k + 1, next, yo)
    })
}
