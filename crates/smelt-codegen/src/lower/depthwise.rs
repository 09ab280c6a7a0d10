//! Depthwise convolutions (`group` = input channels = output channels), one channel at a
//! time, without a padded copy: interior outputs four per vector (the window inside the
//! input, loads contiguous for stride 1 and a two-load shuffle for stride 2), border outputs
//! one at a time with each tap bounds-checked.
//!
//! Why not the grouped direct kernel: with one channel per group its blocks are one channel
//! wide, so every group first pads a copy of its plane (scalar copies for stride 2) and
//! small maps (7×7) fill a 24-column block with 7 useful ones.

use super::conv::Geom;
use super::pool::interior_range;
use super::{Act, Ctx, Lanes, R};
use cranelift_codegen::ir::{types, InstBuilder, Value};

/// Whether a convolution goes this way: one input and one output channel per group, 2-D.
pub(crate) fn applies(gm: &Geom) -> bool {
    gm.group > 1 && gm.group == gm.c && gm.group == gm.m && gm.h > 1
}

/// What the lowering needs besides the geometry: weights `[C][kh][kw]` and bias `[C]` in
/// the weights object, the node's input and output.
pub(crate) struct DepthwiseConv {
    pub w: Value,
    pub bias: Value,
    pub x: Value,
    pub y: Value,
    pub act: Act,
}

/// Emits the convolution.
pub(crate) fn lower(cx: &mut Ctx, gm: &Geom, dc: &DepthwiseConv) -> R<()> {
    let taps = gm.kh * gm.kw;
    let (oy_lo, oy_hi) = interior_range(gm.oh, gm.h, gm.kh, gm.sh, gm.dh, gm.pt);
    let (ox_lo, ox_hi) = interior_range(gm.ow, gm.w, gm.kw, gm.sw, gm.dw, gm.pl);
    let vec_groups = (ox_hi - ox_lo) / 4;
    // The taps of output column `ox` (row `oy`) that fall inside the input: every border
    // position is static, so out-of-range taps are simply not emitted (no bounds checks).
    let kxs = |ox: usize| -> Vec<usize> {
        (0..gm.kw)
            .filter(|kx| {
                (ox * gm.sw + kx * gm.dw)
                    .checked_sub(gm.pl)
                    .is_some_and(|i| i < gm.w)
            })
            .collect()
    };
    let kys = |oy: usize| -> Vec<usize> {
        (0..gm.kh)
            .filter(|ky| {
                (oy * gm.sh + ky * gm.dh)
                    .checked_sub(gm.pt)
                    .is_some_and(|i| i < gm.h)
            })
            .collect()
    };
    let planes = gm.n * gm.c;
    cx.for_n(planes, |cx, pl| {
        let ch = cx.b.ins().urem_imm_u(pl, gm.c as i64);
        let xp = cx.index(dc.x, pl, (gm.h * gm.w * 4) as i64);
        let yp = cx.index(dc.y, pl, (gm.oh * gm.ow * 4) as i64);
        let wp = cx.index(dc.w, ch, (taps * 4) as i64);
        let bp = cx.index(dc.bias, ch, 4);
        let ws: Vec<Value> = (0..taps)
            .map(|t| cx.load(types::F32, wp, (t * 4) as i64))
            .collect();
        let b = cx.load(types::F32, bp, 0);
        let wv: Vec<Value> = ws
            .iter()
            .map(|w| cx.b.ins().splat(types::F32X4, *w))
            .collect();
        let bv = cx.b.ins().splat(types::F32X4, b);
        // One output row: `rows` are the valid kernel rows; `ybase` the input row of ky = 0
        // (possibly above the image: only valid rows are read).
        let row = |cx: &mut Ctx, oy: Value, rows: &[usize]| -> R<()> {
            let iy = cx.b.ins().imul_imm_s(oy, gm.sh as i64);
            let iy = cx.b.ins().iadd_imm_s(iy, -(gm.pt as i64));
            let xrow = cx.index(xp, iy, (gm.w * 4) as i64);
            let yrow = cx.index(yp, oy, (gm.ow * 4) as i64);
            let scalar = |cx: &mut Ctx, ox: usize| -> R<()> {
                let mut acc = b;
                for &ky in rows {
                    for kx in kxs(ox) {
                        let col = (ox * gm.sw + kx * gm.dw) as i64 - gm.pl as i64;
                        let off = ((ky * gm.dh * gm.w) as i64 + col) * 4;
                        let v = cx.load(types::F32, xrow, off);
                        acc = cx.fma(v, ws[ky * gm.kw + kx], acc);
                    }
                }
                let r = clamp_scalar(cx, acc, dc.act);
                cx.store(r, yrow, (ox * 4) as i64);
                Ok(())
            };
            for ox in 0..ox_lo.min(gm.ow) {
                scalar(cx, ox)?;
            }
            // `u` groups of four outputs per step: independent accumulators, so the taps'
            // FMA chains overlap instead of waiting on each other.
            let step = |cx: &mut Ctx, ox0: Value, u: usize| -> R<()> {
                let ix = cx.b.ins().imul_imm_s(ox0, gm.sw as i64);
                let ix = cx.b.ins().iadd_imm_s(ix, -(gm.pl as i64));
                let base = cx.index(xrow, ix, 4);
                let mut accs = vec![bv; u];
                for &ky in rows {
                    for kx in 0..gm.kw {
                        for (q, acc) in accs.iter_mut().enumerate() {
                            let off = ((ky * gm.dh * gm.w + kx * gm.dw + q * 4 * gm.sw) * 4) as i64;
                            let v = super::conv::load_strided(cx, base, off, gm.sw);
                            *acc = cx.fma(v, wv[ky * gm.kw + kx], *acc);
                        }
                    }
                }
                let o = cx.index(yrow, ox0, 4);
                for (q, acc) in accs.into_iter().enumerate() {
                    let r = super::apply_act(cx, acc, dc.act);
                    cx.store(r, o, (q * 16) as i64);
                }
                Ok(())
            };
            let unroll = 4;
            cx.for_n(vec_groups / unroll, |cx, g| {
                let ox = cx.b.ins().imul_imm_s(g, (4 * unroll) as i64);
                let ox = cx.b.ins().iadd_imm_s(ox, ox_lo as i64);
                step(cx, ox, unroll)
            })?;
            let done = vec_groups / unroll * unroll;
            if vec_groups > done {
                let ox = cx.iconst((ox_lo + done * 4) as i64);
                step(cx, ox, vec_groups - done)?;
            }
            for ox in (ox_lo + vec_groups * 4).max(ox_lo.min(gm.ow))..gm.ow {
                scalar(cx, ox)?;
            }
            Ok(())
        };
        let all: Vec<usize> = (0..gm.kh).collect();
        for oy in 0..oy_lo {
            let v = cx.iconst(oy as i64);
            row(cx, v, &kys(oy))?;
        }
        cx.for_n(oy_hi - oy_lo, |cx, i| {
            let oy = cx.b.ins().iadd_imm_s(i, oy_lo as i64);
            row(cx, oy, &all)
        })?;
        for oy in oy_hi.max(oy_lo)..gm.oh {
            let v = cx.iconst(oy as i64);
            row(cx, v, &kys(oy))?;
        }
        Ok(())
    })
}

/// A fused activation on one f32.
fn clamp_scalar(cx: &mut Ctx, v: Value, act: Act) -> Value {
    let Some((lo, hi)) = act else {
        return v;
    };
    let mut r = v;
    if lo.is_finite() {
        let l = cx.fconst(Lanes::One, lo);
        r = cx.clamp_below(r, l);
    }
    if hi.is_finite() {
        let h = cx.fconst(Lanes::One, hi);
        r = cx.clamp_above(r, h);
    }
    r
}
