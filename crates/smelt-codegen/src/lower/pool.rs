//! Pooling: MaxPool (f32, u8, i8; the Indices output in either storage order), AveragePool
//! (count_include_pad, ceil_mode, dilations, auto_pad) over 1-D, 2-D and 3-D windows, and
//! GlobalAveragePool / GlobalMaxPool.
//!
//! Windowed pools run one output element at a time with the window unrolled; taps outside the
//! input read a clamped address and are replaced by the fold's identity, so there is no branch
//! per tap. Global pools fold each contiguous plane four lanes at a time.

use super::conv::begin_pad;
use super::reduce::{fold_contig, Fold};
use super::{Ctx, Lanes, NodeIo, R};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{DType, Graph, NodeId, Op};

/// Why a pooling node cannot be lowered, if it cannot.
pub(crate) fn check(g: &Graph, id: NodeId) -> R<()> {
    let node = g.node(id);
    let dt = g
        .node_inputs(id)
        .first()
        .copied()
        .flatten()
        .and_then(|v| g.value_type(v).dtype());
    if let Op::MaxPool(_) = &node.op {
        if !matches!(dt, Some(DType::F32 | DType::U8 | DType::I8)) {
            return Err(format!("MaxPool of {dt:?} is not supported (f32, u8, i8)"));
        }
    } else if dt != Some(DType::F32) {
        return Err(format!("{dt:?} inputs are not supported (f32 only)"));
    }
    let k = match &node.op {
        Op::MaxPool(o) => o.kernel_shape.len(),
        Op::AveragePool(o) => o.kernel_shape.len(),
        _ => return Ok(()),
    };
    if k == 0 || k > 3 {
        return Err(format!("{k}-D pooling is not supported (1-D to 3-D are)"));
    }
    Ok(())
}

/// The window per spatial axis (1-D and 2-D pools use the last slots; the others have extent
/// one).
struct Win {
    k: [usize; 3],
    s: [usize; 3],
    d: [usize; 3],
    pb: [usize; 3],
    pe: [usize; 3],
    inp: [usize; 3],
    out: [usize; 3],
}

/// Lowers the pooling ops.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let x = io.input(0)?;
    let y = io.output(0)?;
    let n = x.dims.first().copied().unwrap_or(1);
    let c = x.dims.get(1).copied().unwrap_or(1);
    let planes = n * c;
    let plane: usize = x.dims.iter().skip(2).product();
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let (max, kernel, strides, pads, dil, auto_pad, include_pad) = match io.op() {
        Op::GlobalAveragePool(_) | Op::GlobalMaxPool(_) => {
            let max = matches!(io.op(), Op::GlobalMaxPool(_));
            return cx.for_n(planes, |cx, i| {
                let xr = cx.index(xp, i, (plane * 4) as i64);
                let v = fold_contig(
                    cx,
                    xr,
                    plane,
                    if max { Fold::Max } else { Fold::Sum },
                    &|_, _, v| v,
                )?;
                let v = if max {
                    v
                } else {
                    let k = cx.fconst(Lanes::One, plane as f32);
                    cx.b.ins().fdiv(v, k)
                };
                let ya = cx.index(yp, i, 4);
                cx.store(v, ya, 0);
                Ok(())
            });
        }
        Op::MaxPool(o) => (
            true,
            &o.kernel_shape,
            &o.strides,
            &o.pads,
            &o.dilations,
            &o.auto_pad,
            false,
        ),
        Op::AveragePool(o) => (
            false,
            &o.kernel_shape,
            &o.strides,
            &o.pads,
            &o.dilations,
            &o.auto_pad,
            o.count_include_pad != 0,
        ),
        op => return Err(format!("{} is not a pooling op", op.op_type())),
    };
    let sp = kernel.len();
    if sp == 0 || sp > 3 || x.dims.len() != sp + 2 || y.dims.len() != sp + 2 {
        return Err("pooling window does not fit the input rank".into());
    }
    let get = |v: &Option<Vec<i64>>, i: usize, def: i64| -> usize {
        v.as_ref()
            .and_then(|v| v.get(i).copied())
            .unwrap_or(def)
            .max(0) as usize
    };
    let in_sp: Vec<usize> = x.dims[2..].to_vec();
    let out_sp: Vec<usize> = y.dims[2..].to_vec();
    let mut w = Win {
        k: [1; 3],
        s: [1; 3],
        d: [1; 3],
        pb: [0; 3],
        pe: [0; 3],
        inp: [1; 3],
        out: [1; 3],
    };
    // Lower-dimensional pools use the last slots.
    let off = 3 - sp;
    for i in 0..sp {
        let j = i + off;
        w.k[j] = kernel[i].max(1) as usize;
        w.s[j] = get(strides, i, 1).max(1);
        w.d[j] = get(dil, i, 1).max(1);
        w.inp[j] = in_sp[i];
        w.out[j] = out_sp[i];
        let explicit_b = get(pads, i, 0);
        let explicit_e = get(pads, i + sp, 0);
        w.pb[j] = begin_pad(auto_pad, w.inp[j], w.k[j], w.s[j], w.d[j], explicit_b);
        w.pe[j] = if auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER" {
            let need = ((w.out[j].saturating_sub(1)) * w.s[j] + (w.k[j] - 1) * w.d[j] + 1)
                .saturating_sub(w.inp[j]);
            need - w.pb[j]
        } else if auto_pad == "VALID" {
            0
        } else {
            explicit_e
        };
    }
    let out_plane = w.out[0] * w.out[1] * w.out[2];
    let e = x.elem() as i64;
    let ip = match io.outs.get(1) {
        Some(Some(i)) if max => Some(cx.addr(io.g, i)?),
        _ => None,
    };
    let k = Kind {
        max,
        include_pad,
        dtype: x.dtype,
        plane,
        col_major: matches!(io.op(), Op::MaxPool(o) if o.storage_order != 0),
    };
    // 1-D and 2-D f32 pools without Indices compute four outputs per vector where the whole
    // window is inside the input (no clamping, no identity): the bulk of any image; borders
    // (3-D pools, other dtypes, Indices) run one output at a time.
    let flat = w.k[0] == 1 && w.out[0] == 1 && w.inp[0] == 1;
    let [(oh_lo, oh_hi), (ow_lo, ow_hi)] = [interior(&w, 1), interior(&w, 2)];
    let vec_cols = if flat && x.dtype == DType::F32 && ip.is_none() {
        (ow_hi - ow_lo) / 4
    } else {
        0
    };
    cx.for_n(planes, |cx, pl| {
        let xr = cx.index(xp, pl, plane as i64 * e);
        let yr = cx.index(yp, pl, out_plane as i64 * e);
        cx.for_n(w.out[0], |cx, od| {
            let yd = cx.index(yr, od, (w.out[1] * w.out[2]) as i64 * e);
            let id = ip.map(|ip| {
                let ir = cx.index(ip, pl, out_plane as i64 * 8);
                cx.index(ir, od, (w.out[1] * w.out[2] * 8) as i64)
            });
            let scalar = |cx: &mut Ctx, oh: Value, ow: Value| -> R<()> {
                let (v, idx) = window(cx, &w, xr, [od, oh, ow], &k, ip.map(|_| pl))?;
                let a = cx.index(yd, oh, w.out[2] as i64 * e);
                let a = cx.index(a, ow, e);
                cx.store(v, a, 0);
                if let (Some(id), Some(idx)) = (id, idx) {
                    let a = cx.index(id, oh, (w.out[2] * 8) as i64);
                    let a = cx.index(a, ow, 8);
                    cx.store(idx, a, 0);
                }
                Ok(())
            };
            let scalar_cols = |cx: &mut Ctx, oh: Value, lo: usize, hi: usize| -> R<()> {
                cx.for_n(hi - lo, |cx, i| {
                    let ow = cx.b.ins().iadd_imm_s(i, lo as i64);
                    scalar(cx, oh, ow)
                })
            };
            let rows = |cx: &mut Ctx, lo: usize, hi: usize, inner: bool| -> R<()> {
                cx.for_n(hi - lo, |cx, i| {
                    let oh = cx.b.ins().iadd_imm_s(i, lo as i64);
                    if !inner || vec_cols == 0 {
                        return scalar_cols(cx, oh, 0, w.out[2]);
                    }
                    scalar_cols(cx, oh, 0, ow_lo)?;
                    cx.for_n(vec_cols, |cx, g| {
                        let ow = cx.b.ins().imul_imm_s(g, 4);
                        let ow = cx.b.ins().iadd_imm_s(ow, ow_lo as i64);
                        let v = window4(cx, &w, xr, oh, ow, max)?;
                        let a = cx.index(yd, oh, (w.out[2] * 4) as i64);
                        let a = cx.index(a, ow, 4);
                        cx.store(v, a, 0);
                        Ok(())
                    })?;
                    scalar_cols(cx, oh, ow_lo + vec_cols * 4, w.out[2])
                })
            };
            rows(cx, 0, oh_lo, false)?;
            rows(cx, oh_lo, oh_hi, true)?;
            rows(cx, oh_hi, w.out[1], false)
        })
    })
}

/// Outputs `[lo, hi)` along axis `a` whose whole window is inside the input.
fn interior(w: &Win, a: usize) -> (usize, usize) {
    interior_range(w.out[a], w.inp[a], w.k[a], w.s[a], w.d[a], w.pb[a])
}

/// Outputs `[lo, hi)` of a sliding window (`out` outputs over `inp` inputs, kernel `k`, stride
/// `s`, dilation `d`, begin pad `pb`) whose whole window lies inside the input: where pools and
/// depthwise convs run four outputs per vector without bounds checks.
pub(crate) fn interior_range(
    out: usize,
    inp: usize,
    k: usize,
    s: usize,
    d: usize,
    pb: usize,
) -> (usize, usize) {
    let span = (k - 1) * d;
    let lo = pb.div_ceil(s).min(out);
    // o * s - pb + span <= inp - 1
    let hi = if inp + pb > span {
        ((inp + pb - span - 1) / s + 1).min(out)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// Four adjacent outputs `(oh, ow..ow+4)` of a 1-D or 2-D window lying inside the input
/// (axes 1 and 2 of [`Win`]).
fn window4(cx: &mut Ctx, w: &Win, xr: Value, oh: Value, ow: Value, max: bool) -> R<Value> {
    let mut acc: Option<Value> = None;
    let ih0 = {
        let v = cx.b.ins().imul_imm_s(oh, w.s[1] as i64);
        cx.b.ins().iadd_imm_s(v, -(w.pb[1] as i64))
    };
    let iw0 = {
        let v = cx.b.ins().imul_imm_s(ow, w.s[2] as i64);
        cx.b.ins().iadd_imm_s(v, -(w.pb[2] as i64))
    };
    let base = cx.index(xr, ih0, (w.inp[2] * 4) as i64);
    let base = cx.index(base, iw0, 4);
    for kh in 0..w.k[1] {
        for kw in 0..w.k[2] {
            let off = ((kh * w.d[1] * w.inp[2] + kw * w.d[2]) * 4) as i64;
            let v = super::conv::load_strided(cx, base, off, w.s[2]);
            acc = Some(match acc {
                None => v,
                Some(a) if max => cx.b.ins().fmax(a, v),
                Some(a) => cx.b.ins().fadd(a, v),
            });
        }
    }
    let acc = acc.ok_or("empty pooling window")?;
    Ok(if max {
        acc
    } else {
        let n = cx.fconst(Lanes::Four, (w.k[1] * w.k[2]) as f32);
        cx.b.ins().fdiv(acc, n)
    })
}

/// What a windowed pool computes: max (of f32, u8 or i8) or average (f32).
struct Kind {
    max: bool,
    include_pad: bool,
    dtype: DType,
    /// Elements of one input plane (for the flat indices of MaxPool's second output).
    plane: usize,
    /// MaxPool's `storage_order=1`: indices within a plane count column-major.
    col_major: bool,
}

/// One output element: the pooled value and, when `pl` (the plane) is given, the flat index
/// of the (first) maximum in the whole input (MaxPool's Indices, row-major).
fn window(
    cx: &mut Ctx,
    w: &Win,
    xr: Value,
    o: [Value; 3],
    k: &Kind,
    pl: Option<Value>,
) -> R<(Value, Option<Value>)> {
    let (max, include_pad) = (k.max, k.include_pad);
    let (ty, e) = match k.dtype {
        DType::U8 | DType::I8 => (types::I8, 1i64),
        _ => (types::F32, 4i64),
    };
    let ident = match k.dtype {
        DType::U8 => cx.b.ins().iconst(types::I8, 0),
        DType::I8 => cx.b.ins().iconst(types::I8, 0x80),
        _ => cx.fconst(Lanes::One, if max { f32::NEG_INFINITY } else { 0.0 }),
    };
    let mut acc = ident;
    // The index of the first maximum among the taps inside the input.
    let mut best: Option<(Value, Value)> = None;
    let mut count: Option<Value> = None;
    let one = cx.fconst(Lanes::One, 1.0);
    let zero_f = cx.fconst(Lanes::One, 0.0);
    // Per axis and tap: clamped index, validity, and (for count_include_pad) inside the pads.
    let mut taps: [Vec<(Value, Value, Value)>; 3] = [vec![], vec![], vec![]];
    for (a, o) in o.into_iter().enumerate() {
        let base = cx.b.ins().imul_imm_s(o, w.s[a] as i64);
        for k in 0..w.k[a] {
            let i =
                cx.b.ins()
                    .iadd_imm_s(base, (k * w.d[a]) as i64 - w.pb[a] as i64);
            let ok =
                cx.b.ins()
                    .icmp_imm_u(IntCC::UnsignedLessThan, i, w.inp[a] as i64);
            let shifted = cx.b.ins().iadd_imm_s(i, w.pb[a] as i64);
            let in_pad = cx.b.ins().icmp_imm_u(
                IntCC::UnsignedLessThan,
                shifted,
                (w.inp[a] + w.pb[a] + w.pe[a]) as i64,
            );
            let zero = cx.iconst(0);
            let mx = cx.iconst(w.inp[a] as i64 - 1);
            let c = cx.b.ins().smax(i, zero);
            let c = cx.b.ins().smin(c, mx);
            taps[a].push((c, ok, in_pad));
        }
    }
    for (id, okd, padd) in taps[0].clone() {
        let slab = cx.index(xr, id, (w.inp[1] * w.inp[2]) as i64 * e);
        for (ih, okh, padh) in taps[1].clone() {
            let rowp = cx.index(slab, ih, w.inp[2] as i64 * e);
            let okdh = cx.b.ins().band(okd, okh);
            let paddh = cx.b.ins().band(padd, padh);
            for (iw, okw, padw) in taps[2].clone() {
                let a = cx.index(rowp, iw, e);
                let v = cx.load(ty, a, 0);
                let ok = cx.b.ins().band(okdh, okw);
                let v = cx.b.ins().select(ok, v, ident);
                if let Some(pl) = pl {
                    // Flat index of this tap; a strictly greater value takes over.
                    let st = if k.col_major {
                        [1, w.inp[0], w.inp[0] * w.inp[1]]
                    } else {
                        [w.inp[1] * w.inp[2], w.inp[2], 1]
                    };
                    let mut f = cx.b.ins().imul_imm_s(pl, k.plane as i64);
                    for (i, s) in [id, ih, iw].into_iter().zip(st) {
                        let r = cx.b.ins().imul_imm_s(i, s as i64);
                        f = cx.b.ins().iadd(f, r);
                    }
                    best = Some(match best {
                        None => (f, ok),
                        Some((b, found)) => {
                            let gt = match k.dtype {
                                DType::U8 => cx.b.ins().icmp(IntCC::UnsignedGreaterThan, v, acc),
                                DType::I8 => cx.b.ins().icmp(IntCC::SignedGreaterThan, v, acc),
                                _ => cx.b.ins().fcmp(FloatCC::GreaterThan, v, acc),
                            };
                            let first = cx.b.ins().bxor_imm_s(found, 1);
                            let better = cx.b.ins().bor(gt, first);
                            let take = cx.b.ins().band(better, ok);
                            let found = cx.b.ins().bor(found, ok);
                            (cx.b.ins().select(take, f, b), found)
                        }
                    });
                }
                acc = match (max, k.dtype) {
                    (true, DType::U8) => cx.b.ins().umax(acc, v),
                    (true, DType::I8) => cx.b.ins().smax(acc, v),
                    (true, _) => cx.b.ins().fmax(acc, v),
                    (false, _) => cx.b.ins().fadd(acc, v),
                };
                if !max {
                    let counted = if include_pad {
                        cx.b.ins().band(paddh, padw)
                    } else {
                        ok
                    };
                    let inc = cx.b.ins().select(counted, one, zero_f);
                    count = Some(match count {
                        Some(c) => cx.b.ins().fadd(c, inc),
                        None => inc,
                    });
                }
            }
        }
    }
    let v = match count {
        Some(c) => {
            let c = cx.b.ins().fmax(c, one);
            cx.b.ins().fdiv(acc, c)
        }
        None => acc,
    };
    Ok((v, best.map(|(b, _)| b)))
}
