//! Conv (1-D and 2-D, NCHW; groups incl. depthwise, strides, dilations, pads, auto_pad) as a
//! direct convolution with register blocking, no im2col buffer.
//!
//! Weights are packed at compile time per group into blocks of 4 output channels:
//! `[group][block][ci][kh][kw][4]`, zero-padded. For each output row the kernel computes
//!
//! - *interior* columns (every tap inside the input) in blocks of 4 channels × 8 columns:
//!   eight f32x4 accumulators, one broadcast weight per channel and one input vector per 4
//!   columns per tap (contiguous for stride 1, gathered lanes otherwise);
//! - *border* and leftover columns one at a time, vectorised across the 4 channels, with
//!   out-of-range taps read from a clamped address and zeroed (no branch per tap).
//!
//! Input rows outside the image (vertical padding) are skipped by one branch per kernel row.
//! The bias seeds the accumulators.

use super::{axis, Ctx, NodeIo, R};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::Variable;
use smelt_ir::{Graph, NodeId, Op};

const CB: usize = 4; // output channels per block
/// f32x4 vectors of output columns per interior block for `mr` channels: about eight
/// accumulators, enough independent FMA chains to hide their latency without spilling.
fn nv_for(mr: usize) -> usize {
    match mr {
        1 => 6,
        2 => 4,
        _ => 2,
    }
}

/// Static geometry of one convolution, 1-D convs as 2-D with one row.
#[derive(Clone, Debug)]
pub(crate) struct Geom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub m: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
    pub group: usize,
}

/// Begin pads of one spatial axis per ONNX's auto_pad rules.
pub(crate) fn begin_pad(
    auto_pad: &str,
    input: usize,
    k: usize,
    s: usize,
    d: usize,
    explicit: usize,
) -> usize {
    match auto_pad {
        "SAME_UPPER" | "SAME_LOWER" => {
            let out = input.div_ceil(s);
            let need = ((out.saturating_sub(1)) * s + (k - 1) * d + 1).saturating_sub(input);
            if auto_pad == "SAME_UPPER" {
                need / 2
            } else {
                need - need / 2
            }
        }
        "VALID" => 0,
        _ => explicit,
    }
}

/// Reads the geometry of a Conv node (also used by the checker).
pub(crate) fn geom(g: &Graph, id: NodeId) -> R<Geom> {
    let Op::Conv(o) = &g.node(id).op else {
        return Err("not a Conv".into());
    };
    let ins = g.node_inputs(id);
    let dims = |i: usize| -> R<Vec<usize>> {
        ins.get(i)
            .copied()
            .flatten()
            .and_then(|v| g.value_type(v).static_dims())
            .ok_or_else(|| format!("input {i} has no static shape"))
    };
    let x = dims(0)?;
    let wd = dims(1)?;
    let y = g
        .value_type(smelt_ir::ValueId::new(id, 0))
        .static_dims()
        .ok_or("output has no static shape")?;
    let sp = x.len().checked_sub(2).ok_or("Conv input rank below 3")?;
    if sp == 0 || sp > 2 {
        return Err(format!(
            "{sp}-D convolution is not supported (1-D and 2-D are)"
        ));
    }
    if wd.len() != x.len() || y.len() != x.len() {
        return Err("Conv weight rank does not match the input".into());
    }
    let get = |v: &Option<Vec<i64>>, i: usize, def: i64| -> i64 {
        v.as_ref().and_then(|v| v.get(i).copied()).unwrap_or(def)
    };
    let pos = |v: i64, what: &str| -> R<usize> {
        usize::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("{what} must be positive"))
    };
    let group = pos(o.group, "group")?;
    let (h, w, kh, kw, oh, ow) = if sp == 1 {
        (1, x[2], 1, wd[2], 1, y[2])
    } else {
        (x[2], x[3], wd[2], wd[3], y[2], y[3])
    };
    let (sh, sw, dh, dw) = if sp == 1 {
        (
            1,
            pos(get(&o.strides, 0, 1), "stride")?,
            1,
            pos(get(&o.dilations, 0, 1), "dilation")?,
        )
    } else {
        (
            pos(get(&o.strides, 0, 1), "stride")?,
            pos(get(&o.strides, 1, 1), "stride")?,
            pos(get(&o.dilations, 0, 1), "dilation")?,
            pos(get(&o.dilations, 1, 1), "dilation")?,
        )
    };
    let pads: Vec<i64> = o.pads.clone().unwrap_or_else(|| vec![0; 2 * sp]);
    if pads.iter().any(|p| *p < 0) {
        return Err("negative pads are not supported".into());
    }
    let (pt, pl) = if sp == 1 {
        (
            0,
            begin_pad(
                &o.auto_pad,
                w,
                kw,
                sw,
                dw,
                *pads.first().unwrap_or(&0) as usize,
            ),
        )
    } else {
        (
            begin_pad(
                &o.auto_pad,
                h,
                kh,
                sh,
                dh,
                *pads.first().unwrap_or(&0) as usize,
            ),
            begin_pad(
                &o.auto_pad,
                w,
                kw,
                sw,
                dw,
                *pads.get(1).unwrap_or(&0) as usize,
            ),
        )
    };
    let (n, c, m) = (x[0], x[1], wd[0]);
    if c % group != 0 || m % group != 0 || wd[1] * group != c {
        return Err(format!(
            "channels {c} / {m} do not fit group {group} and weight {wd:?}"
        ));
    }
    Ok(Geom {
        n,
        c,
        h,
        w,
        m,
        kh,
        kw,
        oh,
        ow,
        sh,
        sw,
        dh,
        dw,
        pt,
        pl,
        group,
    })
}

/// Why a Conv node cannot be lowered, if it cannot.
pub(crate) fn check(g: &Graph, id: NodeId) -> R<()> {
    let ins = g.node_inputs(id);
    let known = ins
        .iter()
        .flatten()
        .all(|v| g.value_type(*v).static_dims().is_some());
    if !known {
        // Shapes are bound later; the geometry is checked when compiling.
        return Ok(());
    }
    let _ = axis;
    geom(g, id).map(|_| ())
}

/// Packs `[m][cpg][kh][kw]` weights into `[group][block][ci][kh][kw][4]`.
fn pack(w: &[f32], gm: &Geom) -> (Vec<f32>, usize) {
    let mpg = gm.m / gm.group;
    let cpg = gm.c / gm.group;
    let nblk = mpg.div_ceil(CB);
    let taps = gm.kh * gm.kw;
    let mut out = vec![0f32; gm.group * nblk * cpg * taps * CB];
    for g in 0..gm.group {
        for b in 0..nblk {
            for ci in 0..cpg {
                for t in 0..taps {
                    for r in 0..CB {
                        let co = b * CB + r;
                        if co < mpg {
                            let src = ((g * mpg + co) * cpg + ci) * taps + t;
                            let dst = ((((g * nblk + b) * cpg + ci) * taps + t) * CB) + r;
                            out[dst] = w.get(src).copied().unwrap_or(0.0);
                        }
                    }
                }
            }
        }
    }
    (out, nblk)
}

struct Bases {
    /// Input channel 0 of this group, this image.
    x: Value,
    /// Packed weights of this block.
    w: Value,
    /// Output channel 0 of this block, this image.
    y: Value,
    /// Packed bias of this block (4 floats).
    b: Value,
}

/// Lowers Conv.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let gm = geom(io.g, io.id)?;
    let wt = io
        .konst(1)
        .and_then(|t| t.to_f32_vec())
        .ok_or("Conv's weight must be an f32 constant")?;
    let bias: Vec<f32> = match io.opt_input(2) {
        Some(_) => io
            .konst(2)
            .and_then(|t| t.to_f32_vec())
            .ok_or("Conv's bias must be an f32 constant")?,
        None => vec![0.0; gm.m],
    };
    let relu = io.act;
    let (packed, nblk) = pack(&wt, &gm);
    let mpg = gm.m / gm.group;
    let cpg = gm.c / gm.group;
    let mut pbias = vec![0f32; gm.group * nblk * CB];
    for g in 0..gm.group {
        for co in 0..mpg {
            pbias[(g * nblk + co / CB) * CB + co % CB] =
                bias.get(g * mpg + co).copied().unwrap_or(0.0);
        }
    }
    let wp = cx.add_f32s(&packed);
    let bp = cx.add_f32s(&pbias);
    let x = cx.addr(io.g, io.input(0)?)?;
    let y = cx.addr(io.g, io.output(0)?)?;
    let taps = gm.kh * gm.kw;
    let hw = (gm.h * gm.w) as i64;
    let ohw = (gm.oh * gm.ow) as i64;
    let full_blocks = mpg / CB;
    let rem = mpg % CB;

    let per_block = |cx: &mut Ctx, n: Value, g: Value, blk: Value, mr: usize| -> R<()> {
        // Bases for (n, g, blk).
        let xo = {
            let a = cx.b.ins().imul_imm_s(n, gm.c as i64 * hw * 4);
            let b = cx.b.ins().imul_imm_s(g, cpg as i64 * hw * 4);
            let s = cx.b.ins().iadd(a, b);
            cx.b.ins().iadd(x, s)
        };
        let gb = {
            let a = cx.b.ins().imul_imm_s(g, nblk as i64);
            cx.b.ins().iadd(a, blk)
        };
        let wo = cx.index(wp, gb, (cpg * taps * CB * 4) as i64);
        let bo = cx.index(bp, gb, (CB * 4) as i64);
        let yo = {
            let a = cx.b.ins().imul_imm_s(n, gm.m as i64 * ohw * 4);
            let b = cx.b.ins().imul_imm_s(g, mpg as i64 * ohw * 4);
            let c = cx.b.ins().imul_imm_s(blk, (CB as i64) * ohw * 4);
            let s = cx.b.ins().iadd(a, b);
            let s = cx.b.ins().iadd(s, c);
            cx.b.ins().iadd(y, s)
        };
        let bases = Bases {
            x: xo,
            w: wo,
            y: yo,
            b: bo,
        };
        cx.for_n(gm.oh, |cx, oh| row(cx, &gm, &bases, oh, mr, cpg, relu))
    };
    cx.for_n(gm.n, |cx, n| {
        cx.for_n(gm.group, |cx, g| {
            cx.for_n(full_blocks, |cx, blk| per_block(cx, n, g, blk, CB))?;
            if rem > 0 {
                let blk = cx.iconst(full_blocks as i64);
                per_block(cx, n, g, blk, rem)?;
            }
            Ok(())
        })
    })
}

/// One output row `oh` of `mr` channels.
#[allow(clippy::too_many_arguments)]
fn row(
    cx: &mut Ctx,
    gm: &Geom,
    bs: &Bases,
    oh: Value,
    mr: usize,
    cpg: usize,
    relu: super::Act,
) -> R<()> {
    // Interior columns: every kw tap inside [0, w).
    let span = (gm.kw - 1) * gm.dw;
    let ow_lo = gm.pl.div_ceil(gm.sw).min(gm.ow);
    let ow_hi = if gm.w + gm.pl > span {
        ((gm.w + gm.pl - span - 1) / gm.sw + 1).min(gm.ow)
    } else {
        0
    };
    let ow_hi = ow_hi.max(ow_lo);
    let nv = nv_for(mr);
    let width = nv * 4;
    let nfull = (ow_hi - ow_lo) / width;
    cx.for_n(nfull, |cx, blk| {
        let ow0 = cx.b.ins().imul_imm_s(blk, width as i64);
        let ow0 = cx.b.ins().iadd_imm_s(ow0, ow_lo as i64);
        wide(cx, gm, bs, oh, ow0, mr, cpg, relu)
    })?;
    // Left border, then everything after the interior blocks.
    cx.for_n(ow_lo, |cx, ow| single(cx, gm, bs, oh, ow, mr, cpg, relu))?;
    let start = ow_lo + nfull * width;
    cx.for_n(gm.ow - start, |cx, i| {
        let ow = cx.b.ins().iadd_imm_s(i, start as i64);
        single(cx, gm, bs, oh, ow, mr, cpg, relu)
    })
}

/// `ih = oh * sh - pt + kh * dh` and whether it is inside the image.
fn in_row(cx: &mut Ctx, gm: &Geom, oh: Value, kh: usize) -> (Value, Value) {
    let ih = cx.b.ins().imul_imm_s(oh, gm.sh as i64);
    let ih =
        cx.b.ins()
            .iadd_imm_s(ih, (kh * gm.dh) as i64 - gm.pt as i64);
    let ok =
        cx.b.ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, ih, gm.h as i64);
    (ih, ok)
}

fn init_accs(cx: &mut Ctx, bs: &Bases, mr: usize, nv: usize) -> Vec<Variable> {
    let mut v = vec![];
    for r in 0..mr {
        let b = cx.load(types::F32, bs.b, (r * 4) as i64);
        let b = cx.b.ins().splat(types::F32X4, b);
        for _ in 0..nv {
            v.push(cx.var(types::F32X4, b));
        }
    }
    v
}

/// An interior block: `mr` channels × 8 columns from `ow0`.
#[allow(clippy::too_many_arguments)]
fn wide(
    cx: &mut Ctx,
    gm: &Geom,
    bs: &Bases,
    oh: Value,
    ow0: Value,
    mr: usize,
    cpg: usize,
    relu: super::Act,
) -> R<()> {
    let nv = nv_for(mr);
    let accs = init_accs(cx, bs, mr, nv);
    let hw = (gm.h * gm.w) as i64;
    let taps = gm.kh * gm.kw;
    // Input column of the first output column, first tap.
    let iw0 = cx.b.ins().imul_imm_s(ow0, gm.sw as i64);
    let iw0 = cx.b.ins().iadd_imm_s(iw0, -(gm.pl as i64));
    for kh in 0..gm.kh {
        let (ih, ok) = in_row(cx, gm, oh, kh);
        cx.when(ok, |cx| {
            let rowp = cx.index(bs.x, ih, (gm.w * 4) as i64);
            let rowp = cx.index(rowp, iw0, 4);
            cx.for_n(cpg, |cx, ci| {
                let xp = cx.index(rowp, ci, hw * 4);
                let wpc = cx.index(bs.w, ci, (taps * CB * 4) as i64);
                for kw in 0..gm.kw {
                    let t = kh * gm.kw + kw;
                    let base = (kw * gm.dw) as i64 * 4;
                    let mut xs = vec![];
                    for h in 0..nv {
                        let off = base + (h * 4 * gm.sw) as i64 * 4;
                        xs.push(load_strided(cx, xp, off, gm.sw));
                    }
                    for r in 0..mr {
                        let wv = cx.load(types::F32, wpc, ((t * CB + r) * 4) as i64);
                        let wv = cx.b.ins().splat(types::F32X4, wv);
                        for (h, xv) in xs.iter().enumerate() {
                            let var = accs[r * nv + h];
                            let a = cx.b.use_var(var);
                            let s = cx.fma(wv, *xv, a);
                            cx.b.def_var(var, s);
                        }
                    }
                }
                Ok(())
            })
        })?;
    }
    let ohw = (gm.oh * gm.ow) as i64;
    let yrow = cx.index(bs.y, oh, (gm.ow * 4) as i64);
    let yrow = cx.index(yrow, ow0, 4);
    for r in 0..mr {
        for h in 0..nv {
            let mut v = cx.b.use_var(accs[r * nv + h]);
            v = super::apply_act(cx, v, relu);
            cx.store(v, yrow, (r as i64 * ohw + (h * 4) as i64) * 4);
        }
    }
    Ok(())
}

/// Four input values at `p + off + lane * s * 4` bytes.
fn load_strided(cx: &mut Ctx, p: Value, off: i64, s: usize) -> Value {
    if s == 1 {
        return cx.load(types::F32X4, p, off);
    }
    if s == 2 {
        // Elements 0..4 and 3..7 (never past element 6, the last one used), then lanes
        // (a0, a2, b1, b3) = elements 0, 2, 4, 6.
        let a = cx.load(types::I8X16, p, off);
        let b = cx.load(types::I8X16, p, off + 12);
        let mut mask = [0u8; 16];
        for (i, lane) in [0u8, 2, 5, 7].iter().enumerate() {
            for k in 0..4 {
                mask[i * 4 + k] = lane * 4 + k as u8;
            }
        }
        let imm =
            cx.b.func
                .dfg
                .immediates
                .push(cranelift_codegen::ir::ConstantData::from(&mask[..]));
        let v = cx.b.ins().shuffle(a, b, imm);
        return cx.b.ins().bitcast(types::F32X4, super::bc(), v);
    }
    let first = cx.load(types::F32, p, off);
    let mut v = cx.b.ins().splat(types::F32X4, first);
    for l in 1..4 {
        let e = cx.load(types::F32, p, off + (l * s) as i64 * 4);
        v = cx.b.ins().insertlane(v, e, l as u8);
    }
    v
}

/// One output column `ow` (runtime) for `mr` channels, vectorised across the channels.
#[allow(clippy::too_many_arguments)]
fn single(
    cx: &mut Ctx,
    gm: &Geom,
    bs: &Bases,
    oh: Value,
    ow: Value,
    mr: usize,
    cpg: usize,
    relu: super::Act,
) -> R<()> {
    let b = cx.load(types::F32X4, bs.b, 0);
    let acc = cx.var(types::F32X4, b);
    let hw = (gm.h * gm.w) as i64;
    let taps = gm.kh * gm.kw;
    let iw0 = cx.b.ins().imul_imm_s(ow, gm.sw as i64);
    let iw0 = cx.b.ins().iadd_imm_s(iw0, -(gm.pl as i64));
    // Per kw: clamped column and validity (as a lane mask multiplier).
    let mut cols = vec![];
    for kw in 0..gm.kw {
        let iw = cx.b.ins().iadd_imm_s(iw0, (kw * gm.dw) as i64);
        let ok =
            cx.b.ins()
                .icmp_imm_u(IntCC::UnsignedLessThan, iw, gm.w as i64);
        let zero = cx.iconst(0);
        let maxc = cx.iconst(gm.w as i64 - 1);
        let c = cx.b.ins().smax(iw, zero);
        let c = cx.b.ins().smin(c, maxc);
        cols.push((c, ok));
    }
    for kh in 0..gm.kh {
        let (ih, ok) = in_row(cx, gm, oh, kh);
        cx.when(ok, |cx| {
            let rowp = cx.index(bs.x, ih, (gm.w * 4) as i64);
            cx.for_n(cpg, |cx, ci| {
                let xp = cx.index(rowp, ci, hw * 4);
                let wpc = cx.index(bs.w, ci, (taps * CB * 4) as i64);
                for (kw, (c, ok)) in cols.iter().enumerate() {
                    let t = kh * gm.kw + kw;
                    let xa = cx.index(xp, *c, 4);
                    let xv = cx.load(types::F32, xa, 0);
                    let nil = cx.b.ins().f32const(0.0);
                    let xv = cx.b.ins().select(*ok, xv, nil);
                    let xv = cx.b.ins().splat(types::F32X4, xv);
                    let wv = cx.load(types::F32X4, wpc, (t * CB * 4) as i64);
                    let a = cx.b.use_var(acc);
                    let s = cx.fma(wv, xv, a);
                    cx.b.def_var(acc, s);
                }
                Ok(())
            })
        })?;
    }
    let mut v = cx.b.use_var(acc);
    v = super::apply_act(cx, v, relu);
    let ohw = (gm.oh * gm.ow) as i64;
    let yp = cx.index(bs.y, oh, (gm.ow * 4) as i64);
    let yp = cx.index(yp, ow, 4);
    for r in 0..mr {
        let s = cx.b.ins().extractlane(v, r as u8);
        cx.store(s, yp, r as i64 * ohw * 4);
    }
    Ok(())
}
