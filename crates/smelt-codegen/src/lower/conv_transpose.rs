//! ConvTranspose (1-D, 2-D and 3-D, groups, strides, dilations, pads, output_padding, output_shape,
//! auto_pad), computed per output element as a gather over the input positions that reach it:
//! `ih = (oh + pad - kh * dilation) / stride` when the division is exact and in range.
//! Every tap reads a clamped address and is zeroed when it does not reach the output, so the
//! loop body has no branches. Scalar: correct for every geometry, not yet a fast kernel.

use super::{Ctx, Lanes, NodeIo, R};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{Graph, NodeId, Op};

/// Why a ConvTranspose node cannot be lowered, if it cannot.
pub(crate) fn check(g: &Graph, id: NodeId) -> R<()> {
    let ins = g.node_inputs(id);
    let rank = ins
        .first()
        .copied()
        .flatten()
        .and_then(|v| g.value_type(v).shape().map(|s| s.len()));
    match rank {
        Some(3..=5) | None => Ok(()),
        Some(r) => Err(format!(
            "{}-D ConvTranspose is not supported (1-D to 3-D are)",
            r.saturating_sub(2)
        )),
    }
}

/// Lowers ConvTranspose.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let Op::ConvTranspose(o) = io.op() else {
        return Err("not a ConvTranspose".into());
    };
    let x = io.input(0)?;
    let y = io.output(0)?;
    let wd = io.input(1)?.dims.clone();
    if io.input(1)?.dtype != smelt_ir::DType::F32 {
        return Err("ConvTranspose's weight must be f32".into());
    }
    let r = x.dims.len();
    if !(3..=5).contains(&r) || wd.len() != r || y.dims.len() != r {
        return Err("ConvTranspose takes 1-D, 2-D or 3-D NC* tensors".into());
    }
    let sp = r - 2;
    let group = usize::try_from(o.group)
        .ok()
        .filter(|g| *g > 0)
        .ok_or("bad group")?;
    let (n, c) = (x.dims[0], x.dims[1]);
    let m = y.dims[1];
    let cpg = c / group;
    let mpg = wd[1];
    if c % group != 0 || mpg * group != m || wd[0] != c {
        return Err("ConvTranspose channels do not fit the weight and group".into());
    }
    if io
        .opt_input(2)
        .is_some_and(|b| b.dims != [m] || b.dtype != smelt_ir::DType::F32)
    {
        return Err("ConvTranspose's bias must be f32 of the output channels".into());
    }
    // Per spatial axis (fewer axes use the last slots): input, output, kernel, stride,
    // dilation, pad.
    let mut geo = [(1usize, 1usize, 1usize, 1usize, 1usize, 0i64); 3];
    for i in 0..sp {
        let get = |v: &Option<Vec<i64>>, def: i64| {
            v.as_ref().and_then(|v| v.get(i).copied()).unwrap_or(def)
        };
        let (inp, out, k) = (x.dims[2 + i], y.dims[2 + i], wd[2 + i]);
        let s = get(&o.strides, 1).max(1);
        let d = get(&o.dilations, 1).max(1);
        let op = get(&o.output_padding, 0);
        let explicit = o.pads.as_ref().and_then(|p| p.get(i).copied()).unwrap_or(0);
        let pad = if o.output_shape.is_some()
            || o.auto_pad == "SAME_UPPER"
            || o.auto_pad == "SAME_LOWER"
        {
            // A larger output than the input reaches (negative total) gets zeros at the end.
            let total = (s * (inp as i64 - 1) + op + (k as i64 - 1) * d + 1 - out as i64).max(0);
            if o.auto_pad == "SAME_UPPER" {
                total / 2
            } else {
                total - total / 2
            }
        } else if o.auto_pad == "VALID" {
            0
        } else {
            explicit
        };
        geo[i + 3 - sp] = (inp, out, k, s as usize, d as usize, pad);
    }
    let [(id_n, od_n, kd_n, sd, dd, pd), (ih_n, oh_n, kh_n, sh, dh, ph), (iw_n, ow_n, kw_n, sw, dw, pw)] =
        geo;
    // Weight and bias are read where they are (constants from the weights object).
    let wp = cx.addr(io.g, io.input(1)?)?;
    let bp = match io.opt_input(2) {
        Some(b) => cx.addr(io.g, b)?,
        None => cx.add_f32s(&vec![0.0; m]),
    };
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let in_plane = (id_n * ih_n * iw_n * 4) as i64;
    let out_plane = (od_n * oh_n * ow_n * 4) as i64;
    let taps = kd_n * kh_n * kw_n;
    cx.for_n(n, |cx, ni| {
        let xn = cx.index(xp, ni, in_plane * c as i64);
        let yn = cx.index(yp, ni, out_plane * m as i64);
        cx.for_n(group, |cx, g| {
            let xg = cx.index(xn, g, in_plane * cpg as i64);
            cx.for_n(mpg, |cx, co| {
                let mo = cx.b.ins().imul_imm_s(g, mpg as i64);
                let mo = cx.b.ins().iadd(mo, co);
                let ba = cx.index(bp, mo, 4);
                let b = cx.load(types::F32, ba, 0);
                let yc = cx.index(yn, mo, out_plane);
                // Weight of (ci = g * cpg, co, 0, 0): w[(g*cpg + ci) * mpg + co][taps].
                let wg = cx.index(wp, g, (cpg * mpg * taps * 4) as i64);
                let wc = cx.index(wg, co, (taps * 4) as i64);
                cx.for_n(od_n, |cx, od| {
                    let slabs = reach(cx, od, kd_n, sd, dd, pd, id_n);
                    let yd = cx.index(yc, od, (oh_n * ow_n * 4) as i64);
                    cx.for_n(oh_n, |cx, oh| {
                        let rows = reach(cx, oh, kh_n, sh, dh, ph, ih_n);
                        cx.for_n(ow_n, |cx, ow| {
                            let cols = reach(cx, ow, kw_n, sw, dw, pw, iw_n);
                            let acc = cx.var(types::F32, b);
                            cx.for_n(cpg, |cx, ci| {
                                let xc = cx.index(xg, ci, in_plane);
                                let wci = cx.index(wc, ci, (mpg * taps * 4) as i64);
                                for (kd, (idd, okd)) in slabs.iter().enumerate() {
                                    let xs = cx.index(xc, *idd, (ih_n * iw_n * 4) as i64);
                                    for (kh, (ih, okh)) in rows.iter().enumerate() {
                                        let xr = cx.index(xs, *ih, (iw_n * 4) as i64);
                                        let okdh = cx.b.ins().band(*okd, *okh);
                                        for (kw, (iw, okw)) in cols.iter().enumerate() {
                                            let xa = cx.index(xr, *iw, 4);
                                            let v = cx.load(types::F32, xa, 0);
                                            let ok = cx.b.ins().band(okdh, *okw);
                                            let nil = cx.fconst(Lanes::One, 0.0);
                                            let v = cx.b.ins().select(ok, v, nil);
                                            let t = (kd * kh_n + kh) * kw_n + kw;
                                            let w = cx.load(types::F32, wci, (t * 4) as i64);
                                            let a = cx.b.use_var(acc);
                                            let s = cx.fma(v, w, a);
                                            cx.b.def_var(acc, s);
                                        }
                                    }
                                }
                                Ok(())
                            })?;
                            let v = cx.b.use_var(acc);
                            let ya = cx.index(yd, oh, (ow_n * 4) as i64);
                            let ya = cx.index(ya, ow, 4);
                            cx.store(v, ya, 0);
                            Ok(())
                        })
                    })
                })
            })
        })
    })
}

/// For each kernel tap: the clamped input index reaching output `o`, and whether it does.
fn reach(
    cx: &mut Ctx,
    o: Value,
    k: usize,
    s: usize,
    d: usize,
    pad: i64,
    n_in: usize,
) -> Vec<(Value, Value)> {
    let mut v = vec![];
    for t in 0..k {
        // num = o + pad - t * d; reaches when num >= 0, num % s == 0 and num / s < n_in.
        let num = cx.b.ins().iadd_imm_s(o, pad - (t * d) as i64);
        let zero = cx.iconst(0);
        let nonneg =
            cx.b.ins()
                .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, num, 0);
        let safe = cx.b.ins().smax(num, zero);
        let q = cx.b.ins().udiv_imm_s(safe, s as i64);
        let back = cx.b.ins().imul_imm_s(q, s as i64);
        let exact = cx.b.ins().icmp(IntCC::Equal, back, safe);
        let inside =
            cx.b.ins()
                .icmp_imm_u(IntCC::UnsignedLessThan, q, n_in as i64);
        let ok = cx.b.ins().band(nonneg, exact);
        let ok = cx.b.ins().band(ok, inside);
        let maxi = cx.iconst(n_in as i64 - 1);
        let qc = cx.b.ins().smin(q, maxi);
        v.push((qc, ok));
    }
    v
}
