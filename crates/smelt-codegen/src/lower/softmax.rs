//! Softmax and LogSoftmax along one axis (opset 13 semantics), numerically stable: the row's
//! maximum is subtracted before `exp`. f32, and f64 one element at a time.
//!
//! Rows along a last (contiguous) axis run four lanes at a time: max, then `exp(x - max)`
//! stored while its sum accumulates, then one scaling pass. Other axes walk the row with its
//! stride one element at a time.

use super::math;
use super::reduce::{fold_contig, Fold};
use super::{axis, Ctx, Lanes, NodeIo, R};
use cranelift_codegen::ir::{types, InstBuilder};
use smelt_ir::Op;

/// The legacy (opset < 13) Softmax / LogSoftmax the ONNX front end keeps opaque: the input
/// is coerced to 2-D at `axis` (default 1) and each row is normalised. Returns (axis, log).
pub(crate) fn legacy(op: &Op) -> Option<(i64, bool)> {
    let Op::Opaque(o) = op else {
        return None;
    };
    let log = match (o.domain.as_str(), o.op_type.as_str()) {
        ("", "Softmax") | ("ai.onnx", "Softmax") => false,
        ("", "LogSoftmax") | ("ai.onnx", "LogSoftmax") => true,
        _ => return None,
    };
    let mut axis = 1;
    for (name, a) in &o.attrs {
        match (name.as_str(), a) {
            ("axis", smelt_ir::Attr::Int(x)) => axis = *x,
            _ => return None,
        }
    }
    Some((axis, log))
}

/// Lowers Softmax and LogSoftmax (and the legacy 2-D forms, see [`legacy`]).
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let x = io.input(0)?;
    let y = io.output(0)?;
    let r = x.dims.len().max(1);
    let (outer, d, inner, log) = match io.op() {
        Op::Softmax(_) | Op::LogSoftmax(_) => {
            let (ax, log) = match io.op() {
                Op::Softmax(o) => (o.axis, false),
                Op::LogSoftmax(o) => (o.axis, true),
                _ => (0, false),
            };
            let a = if x.dims.is_empty() { 0 } else { axis(ax, r)? };
            let outer: usize = x.dims.iter().take(a).product();
            let d = x.dims.get(a).copied().unwrap_or(1);
            let inner: usize = x.dims.iter().skip(a + 1).product();
            (outer, d, inner, log)
        }
        op => {
            let (ax, log) = legacy(op).ok_or("not a softmax")?;
            let a = if ax < 0 { ax + r as i64 } else { ax };
            if a < 0 || a > x.dims.len() as i64 {
                return Err(format!("axis {ax} is out of range"));
            }
            let outer: usize = x.dims[..a as usize].iter().product();
            let d: usize = x.dims[a as usize..].iter().product();
            (outer, d, 1, log)
        }
    };
    if y.len() != x.len() {
        return Err("the output does not fit the input".into());
    }
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    if x.dtype == smelt_ir::DType::F64 {
        return lower_f64(cx, xp, yp, (outer, d, inner), log);
    }
    if inner == 1 {
        let row = (d * 4) as i64;
        return cx.nest(
            &[outer],
            &[vec![row], vec![row]],
            vec![xp, yp],
            &mut |cx, p| {
                let (xr, yr) = (p[0], p[1]);
                let mx = fold_contig(cx, xr, d, Fold::Max, &|_, _, v| v)?;
                let zero_v = cx.fconst(Lanes::Four, 0.0);
                let zero_s = cx.fconst(Lanes::One, 0.0);
                let sv = cx.var(types::F32X4, zero_v);
                let ss = cx.var(types::F32, zero_s);
                let mxv = cx.b.ins().splat(types::F32X4, mx);
                cx.vec_loop(d, &mut |cx, l, off| {
                    let xa = cx.b.ins().iadd(xr, off);
                    let v = cx.load(l.ty(types::F32), xa, 0);
                    let m = if l == Lanes::Four { mxv } else { mx };
                    let t = cx.b.ins().fsub(v, m);
                    let e = math::exp(cx, l, t);
                    let ya = cx.b.ins().iadd(yr, off);
                    // Softmax keeps exp(x - max) for the scaling pass; LogSoftmax keeps x - max.
                    cx.store(if log { t } else { e }, ya, 0);
                    let var = if l == Lanes::Four { sv } else { ss };
                    let acc = cx.b.use_var(var);
                    let s = cx.b.ins().fadd(acc, e);
                    cx.b.def_var(var, s);
                    Ok(())
                })?;
                let v = cx.b.use_var(sv);
                let h = cx.hreduce(v, |cx, a, b| cx.b.ins().fadd(a, b));
                let s = cx.b.use_var(ss);
                let sum = cx.b.ins().fadd(h, s);
                let k = if log {
                    math::log(cx, Lanes::One, sum)
                } else {
                    let one = cx.fconst(Lanes::One, 1.0);
                    cx.b.ins().fdiv(one, sum)
                };
                let kv = cx.b.ins().splat(types::F32X4, k);
                cx.vec_loop(d, &mut |cx, l, off| {
                    let ya = cx.b.ins().iadd(yr, off);
                    let v = cx.load(l.ty(types::F32), ya, 0);
                    let kk = if l == Lanes::Four { kv } else { k };
                    let o = if log {
                        cx.b.ins().fsub(v, kk)
                    } else {
                        cx.b.ins().fmul(v, kk)
                    };
                    cx.store(o, ya, 0);
                    Ok(())
                })
            },
        );
    }
    // Strided rows: one element at a time.
    let st = (inner * 4) as i64;
    let outer_st = (d * inner * 4) as i64;
    cx.nest(
        &[outer, inner],
        &[vec![outer_st, 4], vec![outer_st, 4]],
        vec![xp, yp],
        &mut |cx, p| {
            let (xr, yr) = (p[0], p[1]);
            let ninf = cx.fconst(Lanes::One, f32::NEG_INFINITY);
            let mxv = cx.var(types::F32, ninf);
            cx.for_n(d, |cx, i| {
                let a = cx.index(xr, i, st);
                let v = cx.load(types::F32, a, 0);
                let m = cx.b.use_var(mxv);
                let m = cx.b.ins().fmax(m, v);
                cx.b.def_var(mxv, m);
                Ok(())
            })?;
            let mx = cx.b.use_var(mxv);
            let zero = cx.fconst(Lanes::One, 0.0);
            let sum = cx.var(types::F32, zero);
            cx.for_n(d, |cx, i| {
                let a = cx.index(xr, i, st);
                let v = cx.load(types::F32, a, 0);
                let t = cx.b.ins().fsub(v, mx);
                let e = math::exp(cx, Lanes::One, t);
                let ya = cx.index(yr, i, st);
                cx.store(if log { t } else { e }, ya, 0);
                let s = cx.b.use_var(sum);
                let s = cx.b.ins().fadd(s, e);
                cx.b.def_var(sum, s);
                Ok(())
            })?;
            let s = cx.b.use_var(sum);
            let k = if log {
                math::log(cx, Lanes::One, s)
            } else {
                let one = cx.fconst(Lanes::One, 1.0);
                cx.b.ins().fdiv(one, s)
            };
            cx.for_n(d, |cx, i| {
                let ya = cx.index(yr, i, st);
                let v = cx.load(types::F32, ya, 0);
                let o = if log {
                    cx.b.ins().fsub(v, k)
                } else {
                    cx.b.ins().fmul(v, k)
                };
                cx.store(o, ya, 0);
                Ok(())
            })
        },
    )
}

/// Softmax / LogSoftmax of f64 rows (`outer` × `d` along the axis × `inner`), one element at
/// a time in f64: max, sum of `exp(x - max)`, then the quotient (or `x - max - ln sum`).
fn lower_f64(
    cx: &mut Ctx,
    xp: cranelift_codegen::ir::Value,
    yp: cranelift_codegen::ir::Value,
    (outer, d, inner): (usize, usize, usize),
    log: bool,
) -> R<()> {
    let st = (inner * 8) as i64;
    let line = d as i64 * st;
    cx.nest(
        &[outer, inner],
        &[vec![line, 8], vec![line, 8]],
        vec![xp, yp],
        &mut |cx, p| {
            let (xr, yr) = (p[0], p[1]);
            let ninf = cx.b.ins().f64const(f64::NEG_INFINITY);
            let mx = cx.var(types::F64, ninf);
            cx.for_n(d, |cx, i| {
                let a = cx.index(xr, i, st);
                let v = cx.load(types::F64, a, 0);
                let m = cx.b.use_var(mx);
                let m = cx.b.ins().fmax(m, v);
                cx.b.def_var(mx, m);
                Ok(())
            })?;
            let m = cx.b.use_var(mx);
            let z = cx.b.ins().f64const(0.0);
            let sum = cx.var(types::F64, z);
            cx.for_n(d, |cx, i| {
                let a = cx.index(xr, i, st);
                let v = cx.load(types::F64, a, 0);
                let t = cx.b.ins().fsub(v, m);
                let e = math::exp_f64(cx, t);
                let s = cx.b.use_var(sum);
                let s = cx.b.ins().fadd(s, e);
                cx.b.def_var(sum, s);
                Ok(())
            })?;
            let s = cx.b.use_var(sum);
            let ls = math::log_f64(cx, s);
            cx.for_n(d, |cx, i| {
                let a = cx.index(xr, i, st);
                let v = cx.load(types::F64, a, 0);
                let t = cx.b.ins().fsub(v, m);
                let r = if log {
                    cx.b.ins().fsub(t, ls)
                } else {
                    let e = math::exp_f64(cx, t);
                    cx.b.ins().fdiv(e, s)
                };
                let ya = cx.index(yr, i, st);
                cx.store(r, ya, 0);
                Ok(())
            })
        },
    )
}
