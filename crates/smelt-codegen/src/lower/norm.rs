//! Normalisations: BatchNormalization (inference: folded at compile time into one scale and
//! shift per channel; training mode: batch statistics per channel at run time, and the running
//! mean and variance outputs), LayerNormalization (over the trailing axes from `axis`, with the
//! optional Mean and InvStdDev outputs), InstanceNormalization (per image and channel) and
//! RMSNormalization (kept opaque by the IR; root mean square over the trailing axes).
//!
//! Statistics use two passes over contiguous rows (mean, then the mean of squared deviations),
//! four lanes at a time, then one pass applies `(x - mean) * rstd * scale + bias`.

use super::reduce::{fold_contig, Fold};
use super::{axis, Ctx, Lanes, NodeIo, Operand, R};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{DType, Op};

/// Mean and `1 / sqrt(var + eps)` of `n` contiguous floats at `p`.
fn stats(cx: &mut Ctx, p: Value, n: usize, eps: f32) -> R<(Value, Value)> {
    let s = fold_contig(cx, p, n, Fold::Sum, &|_, _, v| v)?;
    let k = cx.fconst(Lanes::One, n as f32);
    let mean = cx.b.ins().fdiv(s, k);
    let mv = cx.b.ins().splat(types::F32X4, mean);
    let ss = fold_contig(cx, p, n, Fold::SumSquare, &move |cx, l, v| {
        let m = if l == Lanes::Four { mv } else { mean };
        cx.b.ins().fsub(v, m)
    })?;
    let var = cx.b.ins().fdiv(ss, k);
    let e = cx.fconst(Lanes::One, eps);
    let ve = cx.b.ins().fadd(var, e);
    let sd = cx.b.ins().sqrt(ve);
    let one = cx.fconst(Lanes::One, 1.0);
    let rstd = cx.b.ins().fdiv(one, sd);
    Ok((mean, rstd))
}

fn splat_if(cx: &mut Ctx, l: Lanes, v: Value) -> Value {
    match l {
        Lanes::One => v,
        Lanes::Four => cx.b.ins().splat(types::F32X4, v),
    }
}

/// Loads lanes of an operand broadcast over a row of `n` (its own size `n` or 1).
fn row_operand(cx: &mut Ctx, p: Value, len: usize, l: Lanes, off: Value) -> Value {
    if len == 1 {
        let s = cx.load(types::F32, p, 0);
        splat_if(cx, l, s)
    } else {
        let a = cx.b.ins().iadd(p, off);
        cx.load(l.ty(types::F32), a, 0)
    }
}

/// BatchNormalization in training mode (ONNX's reference): per channel, the mean and (biased)
/// variance over the batch and spatial dims normalise `x`; the optional outputs 1 and 2 are
/// `input_mean * momentum + mean * (1 - momentum)` and the same for the variance.
fn batch_norm_training(cx: &mut Ctx, io: &NodeIo, o: &smelt_ir::ops::BatchNormalization) -> R<()> {
    let x = io.input(0)?;
    let y = io.output(0)?;
    let get = |i: usize| -> R<Vec<f32>> {
        io.konst(i)
            .and_then(|t| t.to_f32_vec())
            .ok_or_else(|| "BatchNormalization's parameters must be f32 constants".into())
    };
    let (scale, bias, rmean, rvar) = (get(1)?, get(2)?, get(3)?, get(4)?);
    let n = x.dims.first().copied().unwrap_or(1);
    let c = x.dims.get(1).copied().unwrap_or(1);
    let plane: usize = x.dims.iter().skip(2).product();
    if y.len() != x.len() || [&scale, &bias, &rmean, &rvar].iter().any(|v| v.len() != c) {
        return Err("BatchNormalization's parameters do not fit its input".into());
    }
    let outs: Vec<Option<Operand>> = (1..3).map(|i| io.output(i).ok().cloned()).collect();
    if outs.iter().flatten().any(|o| o.len() != c) {
        return Err("BatchNormalization's running statistics do not fit its input".into());
    }
    let (sp, bp) = (cx.add_f32s(&scale), cx.add_f32s(&bias));
    let (mp, vp) = (cx.add_f32s(&rmean), cx.add_f32s(&rvar));
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let out_ps: Vec<Option<Value>> = outs
        .iter()
        .map(|o| o.as_ref().map(|o| cx.addr(io.g, o)).transpose())
        .collect::<R<_>>()?;
    let row = (plane * 4) as i64;
    let count = cx.fconst(Lanes::One, (n * plane) as f32);
    let eps = cx.fconst(Lanes::One, o.epsilon);
    let mom = cx.fconst(Lanes::One, o.momentum);
    let one = cx.fconst(Lanes::One, 1.0);
    cx.for_n(c, |cx, ch| {
        let xc = cx.index(xp, ch, row);
        let yc = cx.index(yp, ch, row);
        // Mean over the batch, then the mean of squared deviations.
        let zero = cx.fconst(Lanes::One, 0.0);
        let sum = cx.var(types::F32, zero);
        cx.for_n(n, |cx, b| {
            let r = cx.index(xc, b, row * c as i64);
            let s = fold_contig(cx, r, plane, Fold::Sum, &|_, _, v| v)?;
            let acc = cx.b.use_var(sum);
            let acc = cx.b.ins().fadd(acc, s);
            cx.b.def_var(sum, acc);
            Ok(())
        })?;
        let s = cx.b.use_var(sum);
        let mean = cx.b.ins().fdiv(s, count);
        let mv = cx.b.ins().splat(types::F32X4, mean);
        let sq = cx.var(types::F32, zero);
        cx.for_n(n, |cx, b| {
            let r = cx.index(xc, b, row * c as i64);
            let s = fold_contig(cx, r, plane, Fold::SumSquare, &move |cx, l, v| {
                let m = if l == Lanes::Four { mv } else { mean };
                cx.b.ins().fsub(v, m)
            })?;
            let acc = cx.b.use_var(sq);
            let acc = cx.b.ins().fadd(acc, s);
            cx.b.def_var(sq, acc);
            Ok(())
        })?;
        let ss = cx.b.use_var(sq);
        let var = cx.b.ins().fdiv(ss, count);
        let ve = cx.b.ins().fadd(var, eps);
        let sd = cx.b.ins().sqrt(ve);
        let at = |cx: &mut Ctx, p: Value| {
            let a = cx.index(p, ch, 4);
            cx.load(types::F32, a, 0)
        };
        let (k_s, k_b) = (at(cx, sp), at(cx, bp));
        let ka = cx.b.ins().fdiv(k_s, sd);
        let mk = cx.b.ins().fmul(mean, ka);
        let kb = cx.b.ins().fsub(k_b, mk);
        let kav = cx.b.ins().splat(types::F32X4, ka);
        let kbv = cx.b.ins().splat(types::F32X4, kb);
        cx.for_n(n, |cx, b| {
            let xr = cx.index(xc, b, row * c as i64);
            let yr = cx.index(yc, b, row * c as i64);
            cx.vec_loop(plane, &mut |cx, l, off| {
                let xa = cx.b.ins().iadd(xr, off);
                let v = cx.load(l.ty(types::F32), xa, 0);
                let (a, bb) = if l == Lanes::Four {
                    (kav, kbv)
                } else {
                    (ka, kb)
                };
                let r = cx.fma(v, a, bb);
                let ya = cx.b.ins().iadd(yr, off);
                cx.store(r, ya, 0);
                Ok(())
            })
        })?;
        // Running statistics.
        let keep = cx.b.ins().fsub(one, mom);
        for (out, (stat, input)) in out_ps.iter().zip([(mean, mp), (var, vp)]) {
            let Some(op) = out else { continue };
            let prev = at(cx, input);
            let a = cx.b.ins().fmul(prev, mom);
            let bterm = cx.b.ins().fmul(stat, keep);
            let r = cx.b.ins().fadd(a, bterm);
            let dst = cx.index(*op, ch, 4);
            cx.store(r, dst, 0);
        }
        Ok(())
    })
}

/// ONNX `RMSNormalization` (kept opaque by the IR): `Some((axis, epsilon))` for such a node
/// with `stash_type` 1 (f32 statistics, the default).
pub(crate) fn rms_attrs(op: &Op) -> Option<(i64, f32)> {
    let Op::Opaque(o) = op else { return None };
    if o.op_type != "RMSNormalization" || !(o.domain.is_empty() || o.domain == "ai.onnx") {
        return None;
    }
    let (mut axis, mut eps) = (-1i64, 1e-5f32);
    for (n, v) in &o.attrs {
        match (n.as_str(), v) {
            ("axis", smelt_ir::Attr::Int(a)) => axis = *a,
            ("epsilon", smelt_ir::Attr::Float(e)) => eps = *e,
            ("stash_type", smelt_ir::Attr::Int(1)) => {}
            _ => return None,
        }
    }
    Some((axis, eps))
}

/// Why an RMSNormalization node cannot be lowered, if it cannot: f32 data, and a scale whose
/// dims are a suffix of the data's (so that element `j` of a normalised row takes scale
/// `j % len`).
pub(crate) fn check_rms(x: Option<(DType, Vec<usize>)>, w: Option<(DType, Vec<usize>)>) -> R<()> {
    match (x, w) {
        (Some((DType::F32, xd)), Some((DType::F32, wd))) => {
            if wd.len() <= xd.len() && xd[xd.len() - wd.len()..] == wd[..] {
                Ok(())
            } else {
                Err(format!(
                    "an RMSNormalization scale of dims {wd:?} for data of dims {xd:?} is not supported"
                ))
            }
        }
        (Some((DType::F32, _)), _) | (None, _) => Ok(()),
        (Some((d, _)), _) => Err(format!("{d} inputs are not supported (f32 only)")),
    }
}

/// Lowers RMSNormalization: per row of the trailing axes from `axis`, the mean of squares in
/// f32, then `x / sqrt(mean + epsilon) * scale`.
pub(crate) fn lower_rms(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let (ax, eps) = rms_attrs(io.op()).ok_or("not an RMSNormalization")?;
    let x = io.input(0)?;
    let w = io.input(1)?;
    let y = io.output(0)?;
    check_rms(
        Some((x.dtype, x.dims.clone())),
        Some((w.dtype, w.dims.clone())),
    )?;
    if y.dims != x.dims {
        return Err("the output does not fit the input".into());
    }
    let a = axis(ax, x.dims.len())?;
    let rows: usize = x.dims[..a].iter().product();
    let n: usize = x.dims[a..].iter().product();
    let wn = w.len().max(1);
    if !n.is_multiple_of(wn) {
        return Err("the scale does not divide the normalised row".into());
    }
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let wp = cx.addr(io.g, w)?;
    let row = (n * 4) as i64;
    let k = cx.fconst(Lanes::One, n as f32);
    let e = cx.fconst(Lanes::One, eps);
    cx.for_n(rows, |cx, ri| {
        let xr = cx.index(xp, ri, row);
        let yr = cx.index(yp, ri, row);
        let ss = fold_contig(cx, xr, n, Fold::SumSquare, &|_, _, v| v)?;
        let ms = cx.b.ins().fdiv(ss, k);
        let ve = cx.b.ins().fadd(ms, e);
        let sd = cx.b.ins().sqrt(ve);
        let one = cx.fconst(Lanes::One, 1.0);
        let rr = cx.b.ins().fdiv(one, sd);
        // The scale repeats every `wn` elements of the row.
        cx.for_n(n / wn, |cx, b| {
            let xb = cx.index(xr, b, (wn * 4) as i64);
            let yb = cx.index(yr, b, (wn * 4) as i64);
            cx.for_n(wn, |cx, j| {
                let xa = cx.index(xb, j, 4);
                let v = cx.load(types::F32, xa, 0);
                let wa = cx.index(wp, j, 4);
                let s = cx.load(types::F32, wa, 0);
                let t = cx.b.ins().fmul(v, rr);
                let t = cx.b.ins().fmul(t, s);
                let ya = cx.index(yb, j, 4);
                cx.store(t, ya, 0);
                Ok(())
            })
        })
    })
}

/// Lowers the normalisations.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    match io.op() {
        Op::BatchNormalization(o) if o.training_mode != 0 => batch_norm_training(cx, io, o),
        Op::BatchNormalization(o) => {
            let x = io.input(0)?;
            let y = io.output(0)?;
            let get = |i: usize| -> R<Vec<f32>> {
                io.konst(i)
                    .and_then(|t| t.to_f32_vec())
                    .ok_or_else(|| "BatchNormalization's parameters must be f32 constants".into())
            };
            let (scale, bias, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
            let c = x.dims.get(1).copied().unwrap_or(1);
            let at = |v: &[f32], i: usize| v.get(i).or(v.first()).copied().unwrap_or(0.0);
            let mut a = vec![0f32; c];
            let mut b = vec![0f32; c];
            for i in 0..c {
                let k = at(&scale, i) as f64 / (at(&var, i) as f64 + o.epsilon as f64).sqrt();
                a[i] = k as f32;
                b[i] = (at(&bias, i) as f64 - at(&mean, i) as f64 * k) as f32;
            }
            let n = x.dims.first().copied().unwrap_or(1);
            let plane: usize = x.dims.iter().skip(2).product();
            if y.len() != x.len() {
                return Err("the output does not fit the input".into());
            }
            let ap = cx.add_f32s(&a);
            let bp = cx.add_f32s(&b);
            let xp = cx.addr(io.g, x)?;
            let yp = cx.addr(io.g, y)?;
            let st = (plane * 4) as i64;
            cx.nest(
                &[n, c],
                &[vec![st * c as i64, st], vec![st * c as i64, st], vec![0, 4]],
                vec![xp, yp, ap],
                &mut |cx, p| {
                    let bc = {
                        let d = cx.b.ins().isub(p[2], ap);
                        cx.b.ins().iadd(bp, d)
                    };
                    let ka = cx.load(types::F32, p[2], 0);
                    let kb = cx.load(types::F32, bc, 0);
                    let kav = cx.b.ins().splat(types::F32X4, ka);
                    let kbv = cx.b.ins().splat(types::F32X4, kb);
                    let (xr, yr) = (p[0], p[1]);
                    cx.vec_loop(plane, &mut |cx, l, off| {
                        let xa = cx.b.ins().iadd(xr, off);
                        let v = cx.load(l.ty(types::F32), xa, 0);
                        let (ka, kb) = if l == Lanes::Four {
                            (kav, kbv)
                        } else {
                            (ka, kb)
                        };
                        let r = cx.fma(v, ka, kb);
                        let ya = cx.b.ins().iadd(yr, off);
                        cx.store(r, ya, 0);
                        Ok(())
                    })
                },
            )
        }
        Op::LayerNormalization(o) => {
            let x = io.input(0)?;
            let y = io.output(0)?;
            let r = x.dims.len();
            let a = axis(o.axis, r)?;
            let outer: usize = x.dims[..a].iter().product();
            let d: usize = x.dims[a..].iter().product();
            let scale = io.input(1)?;
            let bias = io.opt_input(2);
            norm_rows(cx, io, x, y, outer, d, o.epsilon, scale, bias, 0)
        }
        Op::InstanceNormalization(o) => {
            let x = io.input(0)?;
            let y = io.output(0)?;
            let n = x.dims.first().copied().unwrap_or(1);
            let c = x.dims.get(1).copied().unwrap_or(1);
            let plane: usize = x.dims.iter().skip(2).product();
            let scale = io.input(1)?;
            let bias = io.opt_input(2);
            norm_rows(cx, io, x, y, n * c, plane, o.epsilon, scale, bias, c)
        }
        Op::LRN(o) => lrn(cx, io, o.alpha, o.beta, o.bias, o.size),
        op => Err(format!("{} is not a normalisation", op.op_type())),
    }
}

/// Normalises `rows` contiguous rows of `d`. `per_channel == 0`: scale/bias broadcast along
/// the row (LayerNormalization); else one scale/bias per row, cycling over `per_channel`.
#[allow(clippy::too_many_arguments)]
fn norm_rows(
    cx: &mut Ctx,
    io: &NodeIo,
    x: &Operand,
    y: &Operand,
    rows: usize,
    d: usize,
    eps: f32,
    scale: &Operand,
    bias: Option<&Operand>,
    per_channel: usize,
) -> R<()> {
    if y.len() != x.len() || x.len() != rows * d {
        return Err("the output does not fit the input".into());
    }
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let sp = cx.addr(io.g, scale)?;
    let bp = match bias {
        Some(b) => Some((cx.addr(io.g, b)?, b.len())),
        None => None,
    };
    let slen = scale.len();
    let fits = |n: usize| {
        if per_channel > 0 {
            n == per_channel
        } else {
            n == 1 || n == d
        }
    };
    if !fits(slen) || bias.is_some_and(|b| !fits(b.len())) {
        return Err("scale and bias do not fit the normalised axes".into());
    }
    let mean_out = match io.outs.get(1) {
        Some(Some(o)) => Some(cx.addr(io.g, o)?),
        _ => None,
    };
    let rstd_out = match io.outs.get(2) {
        Some(Some(o)) => Some(cx.addr(io.g, o)?),
        _ => None,
    };
    let row = (d * 4) as i64;
    cx.for_n(rows, |cx, i| {
        let xr = cx.index(xp, i, row);
        let yr = cx.index(yp, i, row);
        let (mean, rstd) = stats(cx, xr, d, eps)?;
        if let Some(m) = mean_out {
            let a = cx.index(m, i, 4);
            cx.store(mean, a, 0);
        }
        if let Some(m) = rstd_out {
            let a = cx.index(m, i, 4);
            cx.store(rstd, a, 0);
        }
        let (sp_i, bp_i, slen_i, blen_i) = if per_channel > 0 {
            let c = cx.b.ins().urem_imm_s(i, per_channel as i64);
            let s = cx.index(sp, c, 4);
            let b = bp.map(|(b, _)| cx.index(b, c, 4));
            (s, b, 1, 1)
        } else {
            (sp, bp.map(|b| b.0), slen, bp.map(|b| b.1).unwrap_or(1))
        };
        let mv = cx.b.ins().splat(types::F32X4, mean);
        let rv = cx.b.ins().splat(types::F32X4, rstd);
        cx.vec_loop(d, &mut |cx, l, off| {
            let xa = cx.b.ins().iadd(xr, off);
            let v = cx.load(l.ty(types::F32), xa, 0);
            let (m, r) = if l == Lanes::Four {
                (mv, rv)
            } else {
                (mean, rstd)
            };
            let t = cx.b.ins().fsub(v, m);
            let t = cx.b.ins().fmul(t, r);
            let s = row_operand(cx, sp_i, slen_i, l, off);
            let t = cx.b.ins().fmul(t, s);
            let t = match bp_i {
                Some(b) => {
                    let bv = row_operand(cx, b, blen_i, l, off);
                    cx.b.ins().fadd(t, bv)
                }
                None => t,
            };
            let ya = cx.b.ins().iadd(yr, off);
            cx.store(t, ya, 0);
            Ok(())
        })
    })
}

/// LRN across channels: `y = x / (bias + alpha / size * Σ x²)^beta` over the window of
/// channels `[c - (size-1)/2, c + ceil((size-1)/2)]`, four spatial positions at a time.
fn lrn(cx: &mut Ctx, io: &NodeIo, alpha: f32, beta: f32, bias: f32, size: i64) -> R<()> {
    let x = io.input(0)?;
    let y = io.output(0)?;
    if x.dims.len() < 2 || size < 1 {
        return Err("LRN needs [N, C, ...] input and a positive size".into());
    }
    let n = x.dims[0];
    let c = x.dims[1];
    let plane: usize = x.dims[2..].iter().product();
    let lo = (size - 1) / 2;
    let hi = size - 1 - lo;
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let pb = (plane * 4) as i64;
    cx.for_n(n, |cx, ni| {
        let xn = cx.index(xp, ni, pb * c as i64);
        let yn = cx.index(yp, ni, pb * c as i64);
        cx.for_n(c, |cx, ci| {
            // Channel window: clamped planes and 0/1 weights for channels outside.
            let mut taps = vec![];
            for j in -lo..=hi {
                let cj = cx.b.ins().iadd_imm_s(ci, j);
                let ok = cx.b.ins().icmp_imm_u(
                    cranelift_codegen::ir::condcodes::IntCC::UnsignedLessThan,
                    cj,
                    c as i64,
                );
                let zero = cx.iconst(0);
                let maxc = cx.iconst(c as i64 - 1);
                let cc = cx.b.ins().smax(cj, zero);
                let cc = cx.b.ins().smin(cc, maxc);
                let one = cx.fconst(Lanes::One, 1.0);
                let nil = cx.fconst(Lanes::One, 0.0);
                let k = cx.b.ins().select(ok, one, nil);
                let kv = cx.b.ins().splat(types::F32X4, k);
                let plane_p = cx.index(xn, cc, pb);
                taps.push((plane_p, k, kv));
            }
            let xc = cx.index(xn, ci, pb);
            let yc = cx.index(yn, ci, pb);
            cx.vec_loop(plane, &mut |cx, l, off| {
                let mut acc = cx.fconst(l, 0.0);
                for (p, k, kv) in &taps {
                    let a = cx.b.ins().iadd(*p, off);
                    let v = cx.load(l.ty(types::F32), a, 0);
                    let sq = cx.b.ins().fmul(v, v);
                    let w = if l == Lanes::Four { *kv } else { *k };
                    acc = cx.fma(sq, w, acc);
                }
                let al = cx.fconst(l, alpha / size as f32);
                let bi = cx.fconst(l, bias);
                let base = cx.fma(acc, al, bi);
                let lg = super::math::log(cx, l, base);
                let be = cx.fconst(l, -beta);
                let t = cx.b.ins().fmul(lg, be);
                let f = super::math::exp(cx, l, t);
                let a = cx.b.ins().iadd(xc, off);
                let v = cx.load(l.ty(types::F32), a, 0);
                let r = cx.b.ins().fmul(v, f);
                let ya = cx.b.ins().iadd(yc, off);
                cx.store(r, ya, 0);
                Ok(())
            })
        })
    })
}
