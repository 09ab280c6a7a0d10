//! Reductions: ReduceMean/Sum/Max/Min/Prod/L1/L2/SumSquare/LogSumExp over any axes, and
//! ArgMax/ArgMin along one axis.
//!
//! The output loops over the kept dims; each output element folds its reduced elements. When
//! the reduced dims are the trailing, contiguous ones (the common case: last-axis reductions,
//! global pooling) the fold runs four lanes at a time ([`fold_contig`]); otherwise it walks the
//! reduced dims with their strides one element at a time.

use super::{axis, strides, Ctx, Lanes, NodeIo, R};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{DType, Op};

/// How elements fold into an accumulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fold {
    Sum,
    Max,
    Min,
    Prod,
    SumAbs,
    SumSquare,
}

impl Fold {
    fn init(self) -> f32 {
        match self {
            Fold::Sum | Fold::SumAbs | Fold::SumSquare => 0.0,
            Fold::Max => f32::NEG_INFINITY,
            Fold::Min => f32::INFINITY,
            Fold::Prod => 1.0,
        }
    }
    fn step(self, cx: &mut Ctx, acc: Value, x: Value) -> Value {
        match self {
            Fold::Sum => cx.b.ins().fadd(acc, x),
            Fold::Max => cx.b.ins().fmax(acc, x),
            Fold::Min => cx.b.ins().fmin(acc, x),
            Fold::Prod => cx.b.ins().fmul(acc, x),
            Fold::SumAbs => {
                let a = cx.b.ins().fabs(x);
                cx.b.ins().fadd(acc, a)
            }
            Fold::SumSquare => cx.fma(x, x, acc),
        }
    }
    fn combine(self, cx: &mut Ctx, a: Value, b: Value) -> Value {
        match self {
            Fold::Max => cx.b.ins().fmax(a, b),
            Fold::Min => cx.b.ins().fmin(a, b),
            Fold::Prod => cx.b.ins().fmul(a, b),
            _ => cx.b.ins().fadd(a, b),
        }
    }
}

/// Folds `n` contiguous f32 at `ptr` (four lanes at a time); `map` transforms each element
/// first. Returns the scalar result.
pub(crate) fn fold_contig(
    cx: &mut Ctx,
    ptr: Value,
    n: usize,
    fold: Fold,
    map: &dyn Fn(&mut Ctx, Lanes, Value) -> Value,
) -> R<Value> {
    let init_v = cx.fconst(Lanes::Four, fold.init());
    let init_s = cx.fconst(Lanes::One, fold.init());
    let vacc = cx.var(types::F32X4, init_v);
    let sacc = cx.var(types::F32, init_s);
    cx.vec_loop(n, &mut |cx, l, off| {
        let a = cx.b.ins().iadd(ptr, off);
        let x = cx.load(l.ty(types::F32), a, 0);
        let x = map(cx, l, x);
        let var = if l == Lanes::Four { vacc } else { sacc };
        let acc = cx.b.use_var(var);
        let r = fold.step(cx, acc, x);
        cx.b.def_var(var, r);
        Ok(())
    })?;
    let v = cx.b.use_var(vacc);
    let h = match fold {
        Fold::Max => cx.hreduce(v, |cx, a, b| cx.b.ins().fmax(a, b)),
        Fold::Min => cx.hreduce(v, |cx, a, b| cx.b.ins().fmin(a, b)),
        Fold::Prod => cx.hreduce(v, |cx, a, b| cx.b.ins().fmul(a, b)),
        _ => cx.hreduce(v, |cx, a, b| cx.b.ins().fadd(a, b)),
    };
    let s = cx.b.use_var(sacc);
    Ok(fold.combine(cx, h, s))
}

/// Lowers the reductions.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let x = io.input(0)?.clone();
    let y = io.output(0)?.clone();
    let r = x.dims.len();
    let (fold, post, keep_arg): (Fold, u8, Option<(i64, bool, bool)>) = match io.op() {
        Op::ReduceMean(_) => (Fold::Sum, 1, None),
        Op::ReduceSum(_) => (Fold::Sum, 0, None),
        Op::ReduceMax(_) => (Fold::Max, 0, None),
        Op::ReduceMin(_) => (Fold::Min, 0, None),
        Op::ReduceProd(_) => (Fold::Prod, 0, None),
        Op::ReduceL1(_) => (Fold::SumAbs, 0, None),
        Op::ReduceL2(_) => (Fold::SumSquare, 2, None),
        Op::ReduceSumSquare(_) => (Fold::SumSquare, 0, None),
        Op::ReduceLogSumExp(_) => (Fold::Max, 3, None),
        Op::ArgMax(o) => (Fold::Max, 0, Some((o.axis, true, o.select_last_index != 0))),
        Op::ArgMin(o) => (
            Fold::Min,
            0,
            Some((o.axis, false, o.select_last_index != 0)),
        ),
        op => return Err(format!("{} is not a reduction", op.op_type())),
    };
    if let Some((a, max, last)) = keep_arg {
        return arg(cx, io, axis(a, r)?, max, last);
    }
    let (keepdims, noop) = reduce_attrs(io.op());
    let axes: Vec<usize> = match io.opt_input(1) {
        Some(_) => io
            .const_ints(1)
            .ok_or("reduction axes must be constant")?
            .iter()
            .map(|a| axis(*a, r))
            .collect::<R<_>>()?,
        None => vec![],
    };
    // keepdims only changes the output's dims, which binding already fixed.
    let _ = keepdims;
    let axes: Vec<usize> = if axes.is_empty() {
        if noop {
            return super::shape::copy(cx, io.g, &x, &y);
        }
        (0..r).collect()
    } else {
        axes
    };
    let xs = strides(&x.dims);
    let kept: Vec<usize> = (0..r).filter(|a| !axes.contains(a)).collect();
    let kdims: Vec<usize> = kept.iter().map(|a| x.dims[*a]).collect();
    if y.len() != kdims.iter().product::<usize>() || x.dtype != y.dtype {
        return Err("the reduction's output does not fit its input".into());
    }
    if x.dtype != DType::F32 {
        return reduce_scalar(cx, io, &x, &y, &axes, &kept, fold, post);
    }
    let rdims: Vec<usize> = axes.iter().map(|a| x.dims[*a]).collect();
    let count: usize = rdims.iter().product();
    let trailing = axes.iter().all(|a| *a >= r - axes.len()) && {
        let mut s = axes.clone();
        s.sort();
        s.dedup();
        s.len() == axes.len()
    };
    let xp = cx.addr(io.g, &x)?;
    let yp = cx.addr(io.g, &y)?;
    let kst: Vec<i64> = kept.iter().map(|a| xs[*a] * 4).collect();
    let yst: Vec<i64> = strides(&kdims).iter().map(|s| s * 4).collect();
    let rst: Vec<i64> = axes.iter().map(|a| xs[*a] * 4).collect();
    cx.nest(&kdims, &[kst, yst], vec![xp, yp], &mut |cx, p| {
        let m = if post == 3 {
            // log-sum-exp: max first, then sum of exp(x - max).
            let mx = fold_general(
                cx,
                p[0],
                &rdims,
                &rst,
                trailing,
                count,
                Fold::Max,
                &|_, _, v| v,
            )?;
            let s = fold_general(
                cx,
                p[0],
                &rdims,
                &rst,
                trailing,
                count,
                Fold::Sum,
                &move |cx, l, v| {
                    let m = match l {
                        Lanes::One => mx,
                        Lanes::Four => cx.b.ins().splat(types::F32X4, mx),
                    };
                    let d = cx.b.ins().fsub(v, m);
                    super::math::exp(cx, l, d)
                },
            )?;
            let lg = super::math::log(cx, Lanes::One, s);
            cx.b.ins().fadd(lg, mx)
        } else {
            let v = fold_general(cx, p[0], &rdims, &rst, trailing, count, fold, &|_, _, v| v)?;
            match post {
                1 => {
                    let k = cx.fconst(Lanes::One, count as f32);
                    cx.b.ins().fdiv(v, k)
                }
                2 => cx.b.ins().sqrt(v),
                _ => v,
            }
        };
        cx.store(m, p[1], 0);
        Ok(())
    })
}

/// Dtypes a reduction takes: f32 for every reduction; f64 for Sum, Mean, Max, Min, Prod and
/// LogSumExp;
/// 8- to 64-bit integers for Sum, Max, Min and Prod; bool for Max (any) and Min (all).
pub(crate) fn check_dtype(op: &Op, d: Option<DType>) -> R<()> {
    let basic = matches!(
        op,
        Op::ReduceSum(_) | Op::ReduceMax(_) | Op::ReduceMin(_) | Op::ReduceProd(_)
    );
    let ok = match d {
        Some(DType::F32) => true,
        Some(DType::F64) => basic || matches!(op, Op::ReduceMean(_) | Op::ReduceLogSumExp(_)),
        Some(DType::Bool) => matches!(op, Op::ReduceMax(_) | Op::ReduceMin(_)),
        Some(d) if d.is_int() && super::clif_ty(d).is_some() => basic,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} of {} is not supported",
            op.op_type(),
            d.map(|d| d.to_string())
                .unwrap_or_else(|| "an unknown dtype".into())
        ))
    }
}

/// A reduction of a non-f32 tensor (see [`check_dtype`]), one element at a time in the
/// element type: integers wrap like numpy's, bool Max/Min are any/all.
#[allow(clippy::too_many_arguments)]
fn reduce_scalar(
    cx: &mut Ctx,
    io: &NodeIo,
    x: &super::Operand,
    y: &super::Operand,
    axes: &[usize],
    kept: &[usize],
    fold: Fold,
    post: u8,
) -> R<()> {
    check_dtype(io.op(), Some(x.dtype))?;
    let ty = super::clif_ty(x.dtype).ok_or("unsupported reduction dtype")?;
    let e = x.elem() as i64;
    let float = x.dtype.is_float();
    let signed = x.dtype.is_signed_int();
    let xs = strides(&x.dims);
    let kdims: Vec<usize> = kept.iter().map(|a| x.dims[*a]).collect();
    let rdims: Vec<usize> = axes.iter().map(|a| x.dims[*a]).collect();
    let count: usize = rdims.iter().product();
    let kst: Vec<i64> = kept.iter().map(|a| xs[*a] * e).collect();
    let yst: Vec<i64> = strides(&kdims).iter().map(|s| s * e).collect();
    let rst: Vec<i64> = axes.iter().map(|a| xs[*a] * e).collect();
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let bits = x.dtype.bits().clamp(8, 64) as u32;
    let is_bool = x.dtype == DType::Bool;
    let init = move |cx: &mut Ctx| -> Value {
        if float {
            let v = match fold {
                Fold::Prod => 1.0,
                Fold::Max => f64::NEG_INFINITY,
                Fold::Min => f64::INFINITY,
                _ => 0.0,
            };
            return cx.b.ins().f64const(v);
        }
        let v: i64 = match fold {
            Fold::Prod => 1,
            Fold::Max if signed => i64::MIN >> (64 - bits),
            Fold::Max => 0,
            Fold::Min if signed => i64::MAX >> (64 - bits),
            Fold::Min if is_bool => 1,
            Fold::Min => -1,
            _ => 0,
        };
        // Immediates of narrow types hold only the type's bits.
        let v = if bits < 64 {
            v & ((1i64 << bits) - 1)
        } else {
            v
        };
        cx.b.ins().iconst(ty, v)
    };
    cx.nest(&kdims, &[kst, yst], vec![xp, yp], &mut |cx, p| {
        let start = init(cx);
        let acc = cx.var(ty, start);
        let step: &mut dyn FnMut(&mut Ctx, &[Value]) -> R<()> = &mut |cx, q| {
            let v = cx.load(ty, q[0], 0);
            let a = cx.b.use_var(acc);
            let ins = cx.b.ins();
            let r = match (fold, float, signed) {
                (Fold::Max, true, _) => ins.fmax(a, v),
                (Fold::Min, true, _) => ins.fmin(a, v),
                (Fold::Prod, true, _) => ins.fmul(a, v),
                (_, true, _) => ins.fadd(a, v),
                (Fold::Max, false, true) => ins.smax(a, v),
                (Fold::Min, false, true) => ins.smin(a, v),
                (Fold::Max, false, false) => ins.umax(a, v),
                (Fold::Min, false, false) => ins.umin(a, v),
                (Fold::Prod, false, _) => ins.imul(a, v),
                _ => ins.iadd(a, v),
            };
            cx.b.def_var(acc, r);
            Ok(())
        };
        cx.nest(&rdims, std::slice::from_ref(&rst), vec![p[0]], step)?;
        let mut v = cx.b.use_var(acc);
        if post == 3 {
            // log-sum-exp (f64): `acc` holds the max; then log(sum(exp(x - max))) + max.
            let mx = v;
            let zero = cx.b.ins().f64const(0.0);
            let sum = cx.var(ty, zero);
            let step: &mut dyn FnMut(&mut Ctx, &[Value]) -> R<()> = &mut |cx, q| {
                let x = cx.load(ty, q[0], 0);
                let d = cx.b.ins().fsub(x, mx);
                let e = super::math::exp_f64(cx, d);
                let s = cx.b.use_var(sum);
                let s = cx.b.ins().fadd(s, e);
                cx.b.def_var(sum, s);
                Ok(())
            };
            cx.nest(&rdims, std::slice::from_ref(&rst), vec![p[0]], step)?;
            let s = cx.b.use_var(sum);
            let lg = super::math::log_f64(cx, s);
            v = cx.b.ins().fadd(lg, mx);
        }
        if post == 1 {
            // Mean (f64 only).
            let k = cx.b.ins().f64const(count as f64);
            v = cx.b.ins().fdiv(v, k);
        }
        cx.store(v, p[1], 0);
        Ok(())
    })
}

/// ONNX `CumSum` / `CumProd` (kept opaque by the IR): `Some((product, exclusive, reverse))`
/// for such a node with no other attributes.
pub(crate) fn cum_attrs(op: &Op) -> Option<(bool, bool, bool)> {
    let Op::Opaque(o) = op else { return None };
    let prod = match o.op_type.as_str() {
        "CumSum" => false,
        "CumProd" => true,
        _ => return None,
    };
    if !(o.domain.is_empty() || o.domain == "ai.onnx") {
        return None;
    }
    let (mut exclusive, mut reverse) = (false, false);
    for (n, v) in &o.attrs {
        match (n.as_str(), v) {
            ("exclusive", smelt_ir::Attr::Int(e)) => exclusive = *e != 0,
            ("reverse", smelt_ir::Attr::Int(r)) => reverse = *r != 0,
            _ => return None,
        }
    }
    Some((prod, exclusive, reverse))
}

/// CumSum / CumProd along a constant axis: one running sum (product) per line, in the
/// element type, `exclusive` storing it before adding the element, `reverse` from the end.
pub(crate) fn cumulative(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let (prod, exclusive, reverse) = cum_attrs(io.op()).ok_or("not CumSum/CumProd")?;
    let x = io.input(0)?;
    let y = io.output(0)?;
    if y.dims != x.dims || y.dtype != x.dtype {
        return Err("the cumulative output does not fit its input".into());
    }
    let r = x.dims.len().max(1);
    let a = *io
        .const_ints(1)
        .ok_or("the cumulative axis must be constant")?
        .first()
        .ok_or("the cumulative axis is empty")?;
    let dims = if x.dims.is_empty() {
        vec![1]
    } else {
        x.dims.clone()
    };
    let a = axis(a, r)?;
    let outer: usize = dims[..a].iter().product();
    let n = dims[a];
    let inner: usize = dims[a + 1..].iter().product();
    let ty = super::clif_ty(x.dtype).ok_or("unsupported cumulative dtype")?;
    let float = x.dtype.is_float();
    let e = x.elem() as i64;
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let line = (n * inner) as i64 * e;
    cx.nest(
        &[outer, inner],
        &[vec![line, e], vec![line, e]],
        vec![xp, yp],
        &mut |cx, p| {
            let init = match (float, prod) {
                (true, true) => cx.b.ins().f64const(1.0),
                (true, false) => cx.b.ins().f64const(0.0),
                (false, true) => cx.b.ins().iconst(ty, 1),
                (false, false) => cx.b.ins().iconst(ty, 0),
            };
            let init = if float && ty == types::F32 {
                cx.b.ins().fdemote(types::F32, init)
            } else {
                init
            };
            let acc = cx.var(ty, init);
            cx.for_n(n, |cx, t| {
                let idx = if reverse {
                    let last = cx.iconst(n as i64 - 1);
                    cx.b.ins().isub(last, t)
                } else {
                    t
                };
                let xa = cx.index(p[0], idx, inner as i64 * e);
                let ya = cx.index(p[1], idx, inner as i64 * e);
                let v = cx.load(ty, xa, 0);
                let s = cx.b.use_var(acc);
                let next = match (float, prod) {
                    (true, true) => cx.b.ins().fmul(s, v),
                    (true, false) => cx.b.ins().fadd(s, v),
                    (false, true) => cx.b.ins().imul(s, v),
                    (false, false) => cx.b.ins().iadd(s, v),
                };
                cx.store(if exclusive { s } else { next }, ya, 0);
                cx.b.def_var(acc, next);
                Ok(())
            })
        },
    )
}

/// The line-wise ops the IR keeps opaque: Hardmax (its axis) and LpNormalization (axis, p).
#[derive(Clone, Copy, Debug)]
pub(crate) enum LineOp {
    /// 1 at the first maximum along the axis, 0 elsewhere.
    Hardmax(i64),
    /// `x / norm_p(x)` along the axis (p is 1 or 2; 0 where the norm is 0).
    LpNorm(i64, i64),
}

/// The [`LineOp`] of an opaque node, if it is one the backend lowers. Hardmax is taken only
/// along the last axis, where opset 13's per-axis form and the older flattened form agree (the
/// node does not say its opset).
pub(crate) fn line_op(op: &Op) -> Option<LineOp> {
    let Op::Opaque(o) = op else { return None };
    if !(o.domain.is_empty() || o.domain == "ai.onnx") {
        return None;
    }
    let int = |name: &str, def: i64| -> Option<i64> {
        match o.attrs.iter().find(|(n, _)| n == name) {
            None => Some(def),
            Some((_, smelt_ir::Attr::Int(v))) => Some(*v),
            Some(_) => None,
        }
    };
    let known = |names: &[&str]| o.attrs.iter().all(|(n, _)| names.contains(&n.as_str()));
    match o.op_type.as_str() {
        "Hardmax" if known(&["axis"]) => Some(LineOp::Hardmax(int("axis", -1)?)),
        "LpNormalization" if known(&["axis", "p"]) => {
            let p = int("p", 2)?;
            (p == 1 || p == 2).then_some(LineOp::LpNorm(int("axis", -1)?, p))
        }
        _ => None,
    }
}

/// Why a [`LineOp`] node cannot be lowered, if it cannot (its input's rank and dtype known).
pub(crate) fn check_line_op(op: LineOp, rank: Option<usize>, d: Option<DType>) -> R<()> {
    if d != Some(DType::F32) {
        return Err(format!("{d:?} inputs are not supported (f32 only)"));
    }
    if let (LineOp::Hardmax(a), Some(r)) = (op, rank) {
        if axis(a, r)? + 1 != r {
            return Err("Hardmax is lowered along the last axis only".into());
        }
    }
    Ok(())
}

/// Lowers a [`LineOp`]: per line along the axis, one pass to find the maximum (or the norm),
/// one to write.
pub(crate) fn lower_line_op(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let op = line_op(io.op()).ok_or("not a line op")?;
    let x = io.input(0)?;
    let y = io.output(0)?;
    if y.dims != x.dims || x.dtype != DType::F32 || y.dtype != DType::F32 {
        return Err("the output does not fit the input".into());
    }
    let r = x.dims.len();
    check_line_op(op, Some(r), Some(x.dtype))?;
    let a = match op {
        LineOp::Hardmax(a) | LineOp::LpNorm(a, _) => axis(a, r)?,
    };
    let outer: usize = x.dims[..a].iter().product();
    let n = x.dims[a];
    let inner: usize = x.dims[a + 1..].iter().product();
    let st = (inner * 4) as i64;
    let line = n as i64 * st;
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    cx.nest(
        &[outer, inner],
        &[vec![line, 4], vec![line, 4]],
        vec![xp, yp],
        &mut |cx, p| {
            let (xr, yr) = (p[0], p[1]);
            match op {
                LineOp::Hardmax(_) => {
                    let ninf = cx.fconst(Lanes::One, f32::NEG_INFINITY);
                    let best = cx.var(types::F32, ninf);
                    let zero = cx.iconst(0);
                    let at = cx.var(types::I64, zero);
                    cx.for_n(n, |cx, i| {
                        let xa = cx.index(xr, i, st);
                        let v = cx.load(types::F32, xa, 0);
                        let b = cx.b.use_var(best);
                        let gt = cx.b.ins().fcmp(FloatCC::GreaterThan, v, b);
                        let nb = cx.b.ins().select(gt, v, b);
                        let k = cx.b.use_var(at);
                        let nk = cx.b.ins().select(gt, i, k);
                        cx.b.def_var(best, nb);
                        cx.b.def_var(at, nk);
                        Ok(())
                    })?;
                    let k = cx.b.use_var(at);
                    cx.for_n(n, |cx, i| {
                        let hit = cx.b.ins().icmp(IntCC::Equal, i, k);
                        let one = cx.fconst(Lanes::One, 1.0);
                        let z = cx.fconst(Lanes::One, 0.0);
                        let v = cx.b.ins().select(hit, one, z);
                        let ya = cx.index(yr, i, st);
                        cx.store(v, ya, 0);
                        Ok(())
                    })
                }
                LineOp::LpNorm(_, pw) => {
                    let z = cx.fconst(Lanes::One, 0.0);
                    let acc = cx.var(types::F32, z);
                    cx.for_n(n, |cx, i| {
                        let xa = cx.index(xr, i, st);
                        let v = cx.load(types::F32, xa, 0);
                        let t = if pw == 1 {
                            cx.b.ins().fabs(v)
                        } else {
                            cx.b.ins().fmul(v, v)
                        };
                        let s = cx.b.use_var(acc);
                        let s = cx.b.ins().fadd(s, t);
                        cx.b.def_var(acc, s);
                        Ok(())
                    })?;
                    let s = cx.b.use_var(acc);
                    let norm = if pw == 1 { s } else { cx.b.ins().sqrt(s) };
                    cx.for_n(n, |cx, i| {
                        let xa = cx.index(xr, i, st);
                        let v = cx.load(types::F32, xa, 0);
                        // A zero norm gives zeros (ONNX's reference), not 0/0.
                        let q = cx.b.ins().fdiv(v, norm);
                        let z = cx.fconst(Lanes::One, 0.0);
                        let nil = cx.b.ins().fcmp(FloatCC::Equal, norm, z);
                        let q = cx.b.ins().select(nil, z, q);
                        let ya = cx.index(yr, i, st);
                        cx.store(q, ya, 0);
                        Ok(())
                    })
                }
            }
        },
    )
}

fn reduce_attrs(op: &Op) -> (bool, bool) {
    let (k, n) = match op {
        Op::ReduceMean(o) => (o.keepdims, o.noop_with_empty_axes),
        Op::ReduceSum(o) => (o.keepdims, o.noop_with_empty_axes),
        Op::ReduceMax(o) => (o.keepdims, o.noop_with_empty_axes),
        Op::ReduceMin(o) => (o.keepdims, o.noop_with_empty_axes),
        Op::ReduceProd(o) => (o.keepdims, o.noop_with_empty_axes),
        Op::ReduceL1(o) => (o.keepdims, o.noop_with_empty_axes),
        Op::ReduceL2(o) => (o.keepdims, o.noop_with_empty_axes),
        Op::ReduceSumSquare(o) => (o.keepdims, o.noop_with_empty_axes),
        Op::ReduceLogSumExp(o) => (o.keepdims, o.noop_with_empty_axes),
        _ => (1, 0),
    };
    (k != 0, n != 0)
}

#[allow(clippy::too_many_arguments)]
fn fold_general(
    cx: &mut Ctx,
    base: Value,
    rdims: &[usize],
    rst: &[i64],
    trailing: bool,
    count: usize,
    fold: Fold,
    map: &dyn Fn(&mut Ctx, Lanes, Value) -> Value,
) -> R<Value> {
    if trailing {
        return fold_contig(cx, base, count, fold, map);
    }
    let init = cx.fconst(Lanes::One, fold.init());
    let acc = cx.var(types::F32, init);
    cx.nest(rdims, &[rst.to_vec()], vec![base], &mut |cx, p| {
        let v = cx.load(types::F32, p[0], 0);
        let v = map(cx, Lanes::One, v);
        let a = cx.b.use_var(acc);
        let r = fold.step(cx, a, v);
        cx.b.def_var(acc, r);
        Ok(())
    })?;
    Ok(cx.b.use_var(acc))
}

/// ArgMax / ArgMin along one axis (first index of the extreme, or the last).
fn arg(cx: &mut Ctx, io: &NodeIo, a: usize, max: bool, last: bool) -> R<()> {
    let x = io.input(0)?;
    let y = io.output(0)?;
    let outer: usize = x.dims[..a].iter().product();
    let d = x.dims[a];
    let inner: usize = x.dims[a + 1..].iter().product();
    if y.len() != outer * inner || y.elem() != 8 {
        return Err("the output does not fit its input".into());
    }
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    cx.nest(
        &[outer, inner],
        &[vec![(d * inner * 4) as i64, 4], vec![(inner * 8) as i64, 8]],
        vec![xp, yp],
        &mut |cx, p| {
            let first = cx.load(types::F32, p[0], 0);
            let best = cx.var(types::F32, first);
            let zero = cx.iconst(0);
            let at = cx.var(types::I64, zero);
            let src = p[0];
            cx.for_n(d, |cx, i| {
                let ad = cx.index(src, i, (inner * 4) as i64);
                let v = cx.load(types::F32, ad, 0);
                let b = cx.b.use_var(best);
                let cc = match (max, last) {
                    (true, false) => FloatCC::GreaterThan,
                    (true, true) => FloatCC::GreaterThanOrEqual,
                    (false, false) => FloatCC::LessThan,
                    (false, true) => FloatCC::LessThanOrEqual,
                };
                let better = cx.b.ins().fcmp(cc, v, b);
                let nb = cx.b.ins().select(better, v, b);
                let cur = cx.b.use_var(at);
                let na = cx.b.ins().select(better, i, cur);
                cx.b.def_var(best, nb);
                cx.b.def_var(at, na);
                Ok(())
            })?;
            let r = cx.b.use_var(at);
            cx.store(r, p[1], 0);
            Ok(())
        },
    )
}

/// TopK along one axis: `k` selection passes over each row, each taking the next element in
/// the order (value descending, or ascending for `largest = 0`; ties by lower index), so the
/// output is sorted whatever `sorted` says.
pub(crate) fn topk(cx: &mut Ctx, io: &NodeIo, ax: i64, largest: bool) -> R<()> {
    let x = io.input(0)?;
    let vals = io.output(0)?;
    let idxs = io.output(1)?;
    let r = x.dims.len();
    let a = axis(ax, r)?;
    let k = *vals.dims.get(a).ok_or("TopK's output rank differs")?;
    let rest =
        |o: &super::Operand| o.dims.len() == r && (0..r).all(|j| j == a || o.dims[j] == x.dims[j]);
    if k > x.dims[a] || !rest(vals) || !rest(idxs) || idxs.elem() != 8 {
        return Err("TopK's outputs do not fit its input".into());
    }
    let outer: usize = x.dims[..a].iter().product();
    let d = x.dims[a];
    let inner: usize = x.dims[a + 1..].iter().product();
    let xp = cx.addr(io.g, x)?;
    let vp = cx.addr(io.g, vals)?;
    let ip = cx.addr(io.g, idxs)?;
    let float = x.dtype == DType::F32;
    let ty = super::clif_ty(x.dtype).ok_or("TopK of this dtype is not supported")?;
    let e = x.elem();
    if vals.dtype != x.dtype {
        return Err("TopK's values differ in dtype from its input".into());
    }
    let (gt, lt) = if largest {
        (FloatCC::GreaterThan, FloatCC::LessThan)
    } else {
        (FloatCC::LessThan, FloatCC::GreaterThan)
    };
    let signed = x.dtype.is_signed_int();
    let (igt, ilt) = match (largest, signed) {
        (true, true) => (IntCC::SignedGreaterThan, IntCC::SignedLessThan),
        (false, true) => (IntCC::SignedLessThan, IntCC::SignedGreaterThan),
        (true, false) => (IntCC::UnsignedGreaterThan, IntCC::UnsignedLessThan),
        (false, false) => (IntCC::UnsignedLessThan, IntCC::UnsignedGreaterThan),
    };
    // Float order with ±inf as the "before everything" start; integers start with no
    // previous element instead (any value is eligible in the first round).
    let cmp = move |cx: &mut Ctx, fc: FloatCC, ic: IntCC, a: Value, b: Value| -> Value {
        if float {
            cx.b.ins().fcmp(fc, a, b)
        } else {
            cx.b.ins().icmp(ic, a, b)
        }
    };
    cx.nest(
        &[outer, inner],
        &[
            vec![(d * inner * e) as i64, e as i64],
            vec![(k * inner * e) as i64, e as i64],
            vec![(k * inner * 8) as i64, 8],
        ],
        vec![xp, vp, ip],
        &mut |cx, p| {
            let (src, vdst, idst) = (p[0], p[1], p[2]);
            let start = if float {
                cx.fconst(
                    Lanes::One,
                    if largest {
                        f32::INFINITY
                    } else {
                        f32::NEG_INFINITY
                    },
                )
            } else {
                cx.b.ins().iconst(ty, 0)
            };
            let prev_v = cx.var(ty, start);
            let m1 = cx.iconst(-1);
            let prev_i = cx.var(types::I64, m1);
            cx.for_n(k, |cx, t| {
                let pv = cx.b.use_var(prev_v);
                let pi = cx.b.use_var(prev_i);
                let nil = if float {
                    cx.fconst(Lanes::One, 0.0)
                } else {
                    cx.b.ins().iconst(ty, 0)
                };
                let best_v = cx.var(ty, nil);
                let none = cx.iconst(-1);
                let best_i = cx.var(types::I64, none);
                cx.for_n(d, |cx, i| {
                    let a = cx.index(src, i, (inner * e) as i64);
                    let v = cx.load(ty, a, 0);
                    // Eligible: after (pv, pi) in the order.
                    let after_v = cmp(cx, lt, ilt, v, pv);
                    let same_v = cmp(cx, FloatCC::Equal, IntCC::Equal, v, pv);
                    let after_i = cx.b.ins().icmp(IntCC::SignedGreaterThan, i, pi);
                    let tie = cx.b.ins().band(same_v, after_i);
                    let mut eligible = cx.b.ins().bor(after_v, tie);
                    if !float {
                        let first = cx.b.ins().icmp_imm_s(IntCC::Equal, pi, -1);
                        eligible = cx.b.ins().bor(eligible, first);
                    }
                    let bv = cx.b.use_var(best_v);
                    let bi = cx.b.use_var(best_i);
                    let empty = cx.b.ins().icmp_imm_s(IntCC::Equal, bi, -1);
                    let beats = cmp(cx, gt, igt, v, bv);
                    let better = cx.b.ins().bor(empty, beats);
                    let take = cx.b.ins().band(eligible, better);
                    let nv = cx.b.ins().select(take, v, bv);
                    let ni = cx.b.ins().select(take, i, bi);
                    cx.b.def_var(best_v, nv);
                    cx.b.def_var(best_i, ni);
                    Ok(())
                })?;
                let bv = cx.b.use_var(best_v);
                let bi = cx.b.use_var(best_i);
                // A row of NaNs finds nothing: report index 0.
                let zero = cx.iconst(0);
                let neg = cx.b.ins().icmp_imm_s(IntCC::SignedLessThan, bi, 0);
                let bi_out = cx.b.ins().select(neg, zero, bi);
                let va = cx.index(vdst, t, (inner * e) as i64);
                cx.store(bv, va, 0);
                let ia = cx.index(idst, t, (inner * 8) as i64);
                cx.store(bi_out, ia, 0);
                cx.b.def_var(prev_v, bv);
                cx.b.def_var(prev_i, bi);
                Ok(())
            })
        },
    )
}
