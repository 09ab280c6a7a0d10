//! Resize with `nearest` (every `nearest_mode`), `linear` (multilinear over the resized axes)
//! and `cubic` (bicubic with `cubic_coeff_a` and `exclude_outside`), linear and cubic also
//! antialiased, for the coordinate transformation modes half_pixel, half_pixel_symmetric,
//! pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nearest and
//! tf_crop_and_resize (outputs mapped outside the input take `extrapolation_value`).
//!
//! Every axis gets tables built at compile time: for each output index, the byte offsets of its
//! input taps (one for nearest, two for linear, four for cubic, more when antialiasing
//! stretches the filter; edges repeat) and their weights. The generated code walks the output,
//! adds up offsets level by level and blends the product of the taps of every axis.

use super::{strides, Ctx, Lanes, NodeIo, R};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{Graph, NodeId, Op};

/// Why a Resize node cannot be lowered, if it cannot.
pub(crate) fn check(g: &Graph, id: NodeId) -> R<()> {
    let Op::Resize(o) = &g.node(id).op else {
        return Ok(());
    };
    if o.mode != "nearest" && o.mode != "linear" && o.mode != "cubic" {
        return Err(format!("Resize mode `{}` is not supported", o.mode));
    }
    match o.coordinate_transformation_mode.as_str() {
        "half_pixel"
        | "half_pixel_symmetric"
        | "pytorch_half_pixel"
        | "align_corners"
        | "asymmetric"
        | "tf_crop_and_resize"
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
    if o.coordinate_transformation_mode == "tf_crop_and_resize" {
        match ins.get(1).copied().flatten() {
            Some(v) if g.const_value(v).is_some() => {}
            _ => return Err("Resize's roi must be constant".into()),
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

/// Divides every coefficient by their sum (a zero sum leaves them).
fn normalised(c: Vec<f64>) -> Vec<f64> {
    let sum: f64 = c.iter().sum();
    if sum == 0.0 {
        return c;
    }
    c.into_iter().map(|v| v / sum).collect()
}

/// ONNX's antialiased cubic coefficients: the cubic kernel stretched by `1 / scale` (scale at
/// most one), normalised.
fn cubic_coeffs_antialias(ratio: f64, scale: f64, a: f64) -> Vec<f64> {
    let coeff = |x: f64| {
        let x = x.abs();
        let (x2, x3) = (x * x, x * x * x);
        if x <= 1.0 {
            (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
        } else if x < 2.0 {
            a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
        } else {
            0.0
        }
    };
    let start = (-2.0 / scale).floor() as i64 + 1;
    normalised(
        (start..2 - start)
            .map(|i| coeff(scale * (i as f64 - ratio)))
            .collect(),
    )
}

/// ONNX's antialiased linear coefficients: the triangle stretched by `1 / scale`, normalised.
fn linear_coeffs_antialias(ratio: f64, scale: f64) -> Vec<f64> {
    let start = (-1.0 / scale).floor() as i64 + 1;
    normalised(
        (start..2 - start)
            .map(|i| (1.0 - ((i as f64 - ratio) * scale).abs()).clamp(0.0, 1.0))
            .collect(),
    )
}

/// The taps of one axis: per tap, the byte offsets of the input element for each output index
/// and, unless the axis has one tap, their weights.
struct Axis {
    taps: Vec<(Vec<i64>, Option<Vec<f32>>)>,
    /// For tf_crop_and_resize: 1 where the output index maps outside the input (the output is
    /// then the extrapolation value); absent when none does.
    outside: Option<Vec<u8>>,
}

/// ONNX's cubic convolution coefficients for the four taps around a point at `ratio` (in
/// `(0, 1]`) past the second tap.
fn cubic_coeffs(ratio: f64, a: f64) -> [f64; 4] {
    let r = ratio;
    let q = 1.0 - ratio;
    [
        ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
        ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
        ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
        ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a,
    ]
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
    let cubic = o.mode == "cubic";
    let antialias = o.antialias != 0 && (linear || cubic);
    // tf_crop_and_resize: the region of interest per axis, (start, end) in [0, 1] units.
    let mut roi = vec![(0.0f64, 1.0f64); r];
    if mode == "tf_crop_and_resize" {
        let v = io
            .konst(1)
            .and_then(|t| t.to_f64_vec())
            .ok_or("Resize's roi must be constant")?;
        let n = axes.len();
        if v.len() != 2 * n {
            return Err(format!(
                "Resize's roi has {} values, not {}",
                v.len(),
                2 * n
            ));
        }
        for (j, a) in axes.iter().enumerate() {
            roi[*a] = (v[j], v[n + j]);
        }
    }
    let mut tabs = vec![];
    for k in 0..r {
        let (n_in, n_out, s) = (x.dims[k], y.dims[k], scale[k]);
        // Antialiasing widens the filter by 1 / scale when downsampling.
        let sa = s.min(1.0);
        if antialias && !(sa > 0.0 && sa.is_finite()) {
            return Err(format!("Resize scale {s} cannot be antialiased"));
        }
        let ntaps = if antialias {
            let half = if cubic { 2.0 } else { 1.0 };
            let w = 2.0 - 2.0 * ((-half / sa).floor() + 1.0);
            if w > 1024.0 {
                return Err(format!(
                    "Resize scale {s} makes the antialiasing filter too wide"
                ));
            }
            w as usize
        } else if cubic {
            4
        } else if linear {
            2
        } else {
            1
        };
        let mut offs = vec![vec![]; ntaps];
        let mut wts = vec![vec![]; ntaps];
        let mut trivial = true;
        let mut outside = Vec::with_capacity(n_out);
        for i in 0..n_out {
            let xf = i as f64;
            let mut orig = match mode {
                "half_pixel" => (xf + 0.5) / s - 0.5,
                "half_pixel_symmetric" => {
                    let adjustment = n_out as f64 / out_len[k];
                    let center = n_in as f64 / 2.0;
                    center * (1.0 - adjustment) + (xf + 0.5) / s - 0.5
                }
                "pytorch_half_pixel" => {
                    if out_len[k] != 1.0 {
                        (xf + 0.5) / s - 0.5
                    } else {
                        -0.5
                    }
                }
                "tf_crop_and_resize" => {
                    let (a, b) = roi[k];
                    let span = (n_in as f64 - 1.0) * (b - a);
                    let o = if out_len[k] == 1.0 {
                        span / 2.0
                    } else {
                        xf * span / (out_len[k] - 1.0)
                    };
                    o + a * (n_in as f64 - 1.0)
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
            let at = |j: f64| j.clamp(0.0, last) as i64 * xs[k] * 4;
            let extrapolated = mode == "tf_crop_and_resize" && !(0.0..=last).contains(&orig);
            outside.push(extrapolated as u8);
            if extrapolated {
                // Any taps do: the value is replaced.
                orig = 0.0;
                trivial = false;
            }
            if cubic || antialias {
                // The `ntaps` inputs nearest to `orig` (the left one on a tie) in the input
                // padded by `ntaps / 2` repeated edge elements, as ONNX's reference picks them;
                // `exclude_outside` drops the taps outside the input and renormalises.
                let n = ntaps as f64;
                let pad = (n / 2.0).ceil();
                let first = (orig.ceil() - n / 2.0)
                    .max(-pad)
                    .min(last + pad - (n - 1.0));
                let ratio = if orig.fract() == 0.0 {
                    1.0
                } else {
                    orig - orig.floor()
                };
                let a = o.cubic_coeff_a as f64;
                let mut c = match (antialias, cubic) {
                    (false, _) => cubic_coeffs(ratio, a).to_vec(),
                    (true, true) => cubic_coeffs_antialias(ratio, sa, a),
                    (true, false) => linear_coeffs_antialias(ratio, sa),
                };
                if c.len() != ntaps {
                    return Err("Resize's filter has an unexpected width".into());
                }
                if o.exclude_outside != 0 {
                    for (t, ct) in c.iter_mut().enumerate() {
                        let j = first + t as f64;
                        if j < 0.0 || j > last {
                            *ct = 0.0;
                        }
                    }
                    let sum: f64 = c.iter().sum();
                    if sum != 0.0 {
                        for ct in c.iter_mut() {
                            *ct /= sum;
                        }
                    }
                }
                for t in 0..ntaps {
                    offs[t].push(at(first + t as f64));
                    wts[t].push(c[t] as f32);
                }
                trivial = false;
            } else if linear {
                let c = orig.clamp(0.0, last);
                let i0 = c.floor();
                let i1 = (i0 + 1.0).min(last);
                let w = (c - i0) as f32;
                if w != 0.0 || i0 as usize != i {
                    trivial = false;
                }
                offs[0].push(at(i0));
                offs[1].push(at(i1));
                wts[0].push(1.0 - w);
                wts[1].push(w);
            } else {
                let v = match o.nearest_mode.as_str() {
                    "round_prefer_ceil" => (orig + 0.5).floor(),
                    "floor" => orig.floor(),
                    "ceil" => orig.ceil(),
                    _ => (orig - 0.5).ceil(),
                };
                offs[0].push(at(v));
            }
        }
        let taps = if ntaps == 1 || trivial {
            // One tap of weight one.
            vec![(offs.swap_remove(0), None)]
        } else {
            offs.into_iter()
                .zip(wts)
                .map(|(o, w)| (o, Some(w)))
                .collect()
        };
        tabs.push(Axis {
            taps,
            outside: outside.contains(&1).then_some(outside),
        });
    }
    // Tables into the weights object.
    let mut addrs: Vec<Level> = vec![];
    for t in &tabs {
        let mut level = vec![];
        for (o, w) in &t.taps {
            let bo: Vec<u8> = o.iter().flat_map(|v| v.to_le_bytes()).collect();
            let oa = cx.add_weights(&bo);
            let wa = w.as_ref().map(|w| {
                let bw: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
                cx.add_weights(&bw)
            });
            level.push((oa, wa));
        }
        let out = t.outside.as_ref().map(|v| cx.add_weights(v));
        addrs.push((level, out));
    }
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let ys: Vec<i64> = strides(&y.dims).iter().map(|s| s * 4).collect();
    let one = cx.fconst(Lanes::One, 1.0);
    let w = Walk {
        dims: &y.dims,
        ys: &ys,
        addrs: &addrs,
        extrapolation: o.extrapolation_value,
    };
    walk(cx, &w, 0, vec![(xp, one)], None, yp)
}

/// Per axis: the (offset table, weight table) of each tap, and the outside-flags table.
type Level = (Vec<(u64, Option<u64>)>, Option<u64>);

/// What every level of the output walk shares.
struct Walk<'a> {
    dims: &'a [usize],
    ys: &'a [i64],
    addrs: &'a [Level],
    extrapolation: f32,
}

/// Level `k` of the output walk: `corners` are (input address, weight) pairs so far.
/// `outside` is a nonzero i8 when some axis so far maps outside the input.
fn walk(
    cx: &mut Ctx,
    w: &Walk,
    k: usize,
    corners: Vec<(Value, Value)>,
    outside: Option<Value>,
    yp: Value,
) -> R<()> {
    if k == w.dims.len() {
        let mut acc: Option<Value> = None;
        for (a, w) in &corners {
            let v = cx.load(types::F32, *a, 0);
            acc = Some(match acc {
                None => cx.b.ins().fmul(v, *w),
                Some(s) => cx.fma(v, *w, s),
            });
        }
        let mut v = acc.ok_or("no corners")?;
        if let Some(f) = outside {
            let e = cx.fconst(Lanes::One, w.extrapolation);
            v = cx.b.ins().select(f, e, v);
        }
        cx.store(v, yp, 0);
        return Ok(());
    }
    let (level, flags) = &w.addrs[k];
    cx.for_n(w.dims[k], |cx, i| {
        let outside = match flags {
            Some(t) => {
                let tb = cx.weights_at(*t);
                let ta = cx.index(tb, i, 1);
                let f = cx.load(types::I8, ta, 0);
                Some(match outside {
                    Some(o) => cx.b.ins().bor(o, f),
                    None => f,
                })
            }
            None => outside,
        };
        let mut taps = vec![];
        for (to, tw) in level {
            let tb = cx.weights_at(*to);
            let ta = cx.index(tb, i, 8);
            let off = cx.load(types::I64, ta, 0);
            let wt = match tw {
                Some(tw) => {
                    let wb = cx.weights_at(*tw);
                    let wa = cx.index(wb, i, 4);
                    Some(cx.load(types::F32, wa, 0))
                }
                None => None,
            };
            taps.push((off, wt));
        }
        let mut next = vec![];
        for (a, w) in &corners {
            for (off, wt) in &taps {
                let at = cx.b.ins().iadd(*a, *off);
                let ww = match wt {
                    Some(t) => cx.b.ins().fmul(*w, *t),
                    None => *w,
                };
                next.push((at, ww));
            }
        }
        let yo = cx.index(yp, i, w.ys[k]);
        walk(cx, w, k + 1, next, outside, yo)
    })
}
