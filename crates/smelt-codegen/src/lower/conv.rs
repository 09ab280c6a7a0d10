//! Conv (1-D and 2-D, NCHW; groups incl. depthwise, strides, dilations, pads, auto_pad) as a
//! direct convolution with register blocking, no im2col buffer.
//!
//! Weights are packed at compile time per group into blocks of 4 output channels:
//! `[group][block][ci][kh][kw][4]`, zero-padded. For each output row the kernel computes
//!
//! blocks of 4 channels × 8 columns (fewer channels: more columns, about eight f32x4
//! accumulators in all), with one broadcast weight per channel and one input vector per 4
//! columns per tap (contiguous for stride 1, two loads and a shuffle for stride 2, gathered
//! lanes otherwise). The bias seeds the accumulators; a fused Relu/Clip is applied at the store.
//!
//! When the convolution pads, or the last block of columns is partial, the kernel reads a
//! zero-padded copy of the current image in the node's arena scratch (with slack after it for
//! the spare lanes of a partial block), so every tap is in bounds and there is no border code
//! and no branch in the loop nest. For stride 2 (dilation 1) that copy splits every row into its
//! even and its odd columns, so that each tap reads four outputs' inputs with one contiguous
//! load instead of two loads and a shuffle.

use super::{axis, depthwise, im2col, winograd, Ctx, NodeIo, R};
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
    // A 1x1, stride-1, unpadded convolution is a matrix product over the pixels: its planes
    // are re-cut into rows of `len` pixels (a divisor of h*w, at least w, about 256 at most),
    // so that narrow images do not leave most of every row in a partial block.
    let flat = kh == 1 && kw == 1 && (sh, sw, pt, pl) == (1, 1, 0, 0) && (oh, ow) == (h, w);
    let (h, w, oh, ow) = if flat {
        let hw = h * w;
        let len = (w..=hw.min(256).max(w))
            .rev()
            .find(|l| hw.is_multiple_of(*l))
            .unwrap_or(w);
        (hw / len, len, hw / len, len)
    } else {
        (h, w, oh, ow)
    };
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
    /// Stride-2 convolutions read a copy whose rows are split into even columns (the first
    /// `half` floats) and odd columns, so that every tap is a contiguous load.
    half: Option<usize>,
}

/// Whether the stride-2 column split of [`Bases::half`] applies.
fn splits(gm: &Geom) -> bool {
    gm.sw == 2 && gm.dw == 1
}

/// Output channels per block for the full blocks and the remainder of one group.
fn blocks(gm: &Geom) -> (usize, usize) {
    let mpg = gm.m / gm.group;
    (mpg / CB, mpg % CB)
}

/// The zero-padded copy of one input image the kernel reads, when it needs one: `(hp, wp)`
/// extents and the slack (floats) after it. Needed when the convolution pads, or when a block
/// of output columns is partial (its spare lanes then read past the row, into the slack).
fn padding(gm: &Geom) -> Option<(usize, usize, usize)> {
    let (full, rem) = blocks(gm);
    let mut partial = false;
    for (mr, used) in [(CB, full > 0), (rem, rem > 0)] {
        // A partial last block overlaps the one before it (see `row`) when there is one.
        if used && gm.ow < nv_for(mr) * 4 {
            partial = true;
        }
    }
    let need_h = (gm.oh.saturating_sub(1)) * gm.sh + (gm.kh - 1) * gm.dh + 1;
    let need_w = (gm.ow.saturating_sub(1)) * gm.sw + (gm.kw - 1) * gm.dw + 1;
    let hp = (gm.h + gm.pt).max(need_h);
    let wp = (gm.w + gm.pl).max(need_w);
    let pads = gm.pt > 0 || gm.pl > 0 || hp > gm.h || wp > gm.w;
    (pads || partial || splits(gm)).then_some((hp, wp, 24 * gm.sw + gm.kw * gm.dw + 64))
}

/// Arena bytes a Conv node needs for its padded input copy.
pub(crate) fn scratch_bytes(g: &Graph, id: NodeId) -> u64 {
    let Ok(gm) = geom(g, id) else {
        return 0;
    };
    if let Some(p) = winograd_plan(g, id, &gm) {
        return p.scratch_bytes(&gm) as u64;
    }
    if const_weights(g, id) && im2col::applies(&gm) {
        return im2col::scratch_bytes(&gm) as u64;
    }
    if const_weights(g, id) && depthwise::applies(&gm) {
        return 0;
    }
    let pad = padding(&gm)
        .map(|(hp, wp, slack)| (gm.c * hp * wp + slack) * 4)
        .unwrap_or(0);
    let ins = g.node_inputs(id);
    let runtime = |i: usize| {
        ins.get(i)
            .copied()
            .flatten()
            .is_some_and(|v| g.const_value(v).is_none())
    };
    let packed = if runtime(1) || runtime(2) {
        packed_floats(&gm) * 4
    } else {
        0
    };
    (pad.div_ceil(64) * 64 + packed) as u64
}

/// Floats of the packed weights and the packed bias.
fn packed_floats(gm: &Geom) -> usize {
    let mpg = gm.m / gm.group;
    let cpg = gm.c / gm.group;
    let nblk = mpg.div_ceil(CB);
    gm.group * nblk * (cpg * gm.kh * gm.kw + 1) * CB
}

/// Packs weights (and bias) given at run time into `dst` with the layout of [`pack`].
fn pack_runtime(cx: &mut Ctx, io: &NodeIo, gm: &Geom, dst: Value) -> R<(Value, Value)> {
    use super::shape::{copy_nest, fill};
    let mpg = gm.m / gm.group;
    let cpg = gm.c / gm.group;
    let nblk = mpg.div_ceil(CB);
    let taps = gm.kh * gm.kw;
    let (full, rem) = (mpg / CB, mpg % CB);
    let wbytes = gm.group * nblk * cpg * taps * CB * 4;
    let bdst = cx.offset(dst, wbytes as i64);
    fill(cx, dst, packed_floats(gm), &[0, 0, 0, 0])?;
    let (ct, ict) = ((cpg * taps) as i64, (cpg * taps * CB) as i64);
    let wsrc = match io.konst(1) {
        Some(t) => {
            let w = t.to_f32_vec().ok_or("Conv's weight must be f32")?;
            let (packed, _) = pack(&w, gm);
            let p = cx.add_f32s(&packed);
            super::shape::copy_bytes(cx, p, dst, wbytes)?;
            None
        }
        None => Some(cx.addr(io.g, io.input(1)?)?),
    };
    if let Some(src) = wsrc {
        // (g, block, r, ci, t) -> [g][block][ci][t][r]
        copy_nest(
            cx,
            &[gm.group, full, CB, cpg, taps],
            src,
            &[mpg as i64 * ct, CB as i64 * ct, ct, taps as i64, 1],
            dst,
            &[nblk as i64 * ict, ict, 1, (taps * CB) as i64, CB as i64],
            4,
        )?;
        if rem > 0 {
            let s = cx.offset(src, full as i64 * CB as i64 * ct * 4);
            let d = cx.offset(dst, full as i64 * ict * 4);
            copy_nest(
                cx,
                &[gm.group, rem, cpg, taps],
                s,
                &[mpg as i64 * ct, ct, taps as i64, 1],
                d,
                &[nblk as i64 * ict, 1, (taps * CB) as i64, CB as i64],
                4,
            )?;
        }
    }
    if let Some(b) = io.opt_input(2) {
        let src = cx.addr(io.g, b)?;
        copy_nest(
            cx,
            &[gm.group, full * CB],
            src,
            &[mpg as i64, 1],
            bdst,
            &[(nblk * CB) as i64, 1],
            4,
        )?;
        if rem > 0 {
            let s = cx.offset(src, (full * CB * 4) as i64);
            let d = cx.offset(bdst, (full * CB * 4) as i64);
            copy_nest(
                cx,
                &[gm.group, rem],
                s,
                &[mpg as i64, 1],
                d,
                &[(nblk * CB) as i64, 1],
                4,
            )?;
        }
    }
    Ok((dst, bdst))
}

/// The Winograd plan for this node, when its weights (and bias) are constants and the shape
/// suits (see [`winograd::plan`]); the same answer for the memory plan and the lowering.
fn winograd_plan(g: &Graph, id: NodeId, gm: &Geom) -> Option<winograd::WinogradPlan> {
    const_weights(g, id).then(|| winograd::plan(gm)).flatten()
}

/// Whether the weights are an f32 constant and the bias one too or absent (the algorithms
/// that transform or pack weights at compile time need them).
fn const_weights(g: &Graph, id: NodeId) -> bool {
    let ins = g.node_inputs(id);
    let konst = |i: usize| {
        ins.get(i).copied().flatten().map(|v| {
            g.const_value(v)
                .is_some_and(|t| t.dtype() == smelt_ir::DType::F32)
        })
    };
    konst(1) == Some(true) && konst(2) != Some(false)
}

/// The constant weights (`[M][C/group][kh][kw]`, checked against the geometry) and bias (`M`
/// floats, zeros when absent) of a Conv whose [`const_weights`] hold: what the algorithms that
/// transform or pack weights at compile time (Winograd, im2col, depthwise) start from.
fn const_params(io: &NodeIo, gm: &Geom) -> R<(Vec<f32>, Vec<f32>)> {
    let wt = io
        .konst(1)
        .and_then(|t| t.to_f32_vec())
        .ok_or("Conv's weight must be an f32 constant")?;
    let bias: Vec<f32> = match io.konst(2) {
        Some(t) => t.to_f32_vec().ok_or("Conv's bias must be f32")?,
        None => vec![0.0; gm.m],
    };
    if wt.len() != gm.m * (gm.c / gm.group) * gm.kh * gm.kw || bias.len() != gm.m {
        return Err("Conv's weight or bias does not fit its shape".into());
    }
    Ok((wt, bias))
}

/// The address of the node's scratch space in the arena.
fn scratch_at(cx: &mut Ctx, io: &NodeIo) -> R<Value> {
    let off = io
        .scratch
        .ok_or("Conv needs scratch space the plan did not give")?;
    Ok(cx.offset(cx.arena(), off as i64))
}

/// Lowers Conv.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let orig = geom(io.g, io.id)?;
    if let Some(p) = winograd_plan(io.g, io.id, &orig) {
        let (wt, bias) = const_params(io, &orig)?;
        let u = winograd::transform_weights(&wt, &orig, &p);
        let scratch = scratch_at(cx, io)?;
        let w = winograd::WinogradConv {
            gm: &orig,
            plan: &p,
            u: cx.add_f32s(&u),
            bias: cx.add_f32s(&bias),
            x: cx.addr(io.g, io.input(0)?)?,
            y: cx.addr(io.g, io.output(0)?)?,
            scratch,
            act: io.act,
        };
        return winograd::lower(cx, &w);
    }
    if const_weights(io.g, io.id) && im2col::applies(&orig) {
        let (wt, mut bias) = const_params(io, &orig)?;
        let k = orig.c * orig.kh * orig.kw;
        bias.resize(orig.m.div_ceil(4) * 4, 0.0);
        let scratch = scratch_at(cx, io)?;
        let c = im2col::Im2colConv {
            w: cx.add_f32s(&im2col::pack_rows(&wt, orig.m, k)),
            bias: cx.add_f32s(&bias),
            x: cx.addr(io.g, io.input(0)?)?,
            y: cx.addr(io.g, io.output(0)?)?,
            scratch,
            act: io.act,
        };
        return im2col::lower(cx, &orig, &c);
    }
    if const_weights(io.g, io.id) && depthwise::applies(&orig) {
        let (wt, bias) = const_params(io, &orig)?;
        let c = depthwise::DepthwiseConv {
            w: cx.add_f32s(&wt),
            bias: cx.add_f32s(&bias),
            x: cx.addr(io.g, io.input(0)?)?,
            y: cx.addr(io.g, io.output(0)?)?,
            act: io.act,
        };
        return depthwise::lower(cx, &orig, &c);
    }
    let relu = io.act;
    let mpg = orig.m / orig.group;
    let cpg = orig.c / orig.group;
    let nblk = mpg.div_ceil(CB);
    let runtime = |i: usize| io.opt_input(i).is_some() && io.konst(i).is_none();
    let pad_bytes = padding(&orig)
        .map(|(hp, wp, slack)| (orig.c * hp * wp + slack) * 4)
        .unwrap_or(0);
    let (wp, bp) = if runtime(1) || runtime(2) {
        // Weights computed at run time (DequantizeLinear, a graph input): packed into scratch
        // by the generated code, every run.
        let off = io
            .scratch
            .ok_or("Conv needs scratch space the plan did not give")?;
        let at = cx.offset(
            cx.arena(),
            (off as usize + pad_bytes.div_ceil(64) * 64) as i64,
        );
        pack_runtime(cx, io, &orig, at)?
    } else {
        let wt = io
            .konst(1)
            .and_then(|t| t.to_f32_vec())
            .ok_or("Conv's weight must be an f32 constant")?;
        let bias: Vec<f32> = match io.opt_input(2) {
            Some(_) => io
                .konst(2)
                .and_then(|t| t.to_f32_vec())
                .ok_or("Conv's bias must be an f32 constant")?,
            None => vec![0.0; orig.m],
        };
        let (packed, _) = pack(&wt, &orig);
        let mut pbias = vec![0f32; orig.group * nblk * CB];
        for g in 0..orig.group {
            for co in 0..mpg {
                pbias[(g * nblk + co / CB) * CB + co % CB] =
                    bias.get(g * mpg + co).copied().unwrap_or(0.0);
            }
        }
        (cx.add_f32s(&packed), cx.add_f32s(&pbias))
    };
    let x_in = cx.addr(io.g, io.input(0)?)?;
    let y = cx.addr(io.g, io.output(0)?)?;
    // The kernel reads either the input itself or a zero-padded copy of the current image.
    let pad = padding(&orig);
    let per_group = pad.is_some() && orig.group > 1;
    let (gm, x, image) = match pad {
        Some((hp, wpd, slack)) => {
            let off = io
                .scratch
                .ok_or("Conv needs scratch space the plan did not give")?;
            let buf = cx.offset(cx.arena(), off as i64);
            let channels = if per_group { cpg } else { orig.c };
            super::shape::fill(cx, buf, channels * hp * wpd + slack, &[0, 0, 0, 0])?;
            let gm = Geom {
                h: hp,
                w: wpd,
                pt: 0,
                pl: 0,
                ..orig.clone()
            };
            (gm, buf, 0i64)
        }
        None => (orig.clone(), x_in, (orig.c * orig.h * orig.w * 4) as i64),
    };
    let taps = gm.kh * gm.kw;
    let hw = (gm.h * gm.w) as i64;
    let ohw = (gm.oh * gm.ow) as i64;
    let (full_blocks, rem) = blocks(&gm);
    let split = pad.is_some() && splits(&orig);

    let per_block = |cx: &mut Ctx, n: Value, g: Value, oh: Value, blk: Value, mr: usize| -> R<()> {
        // Bases for (n, g, blk).
        let xo = {
            let a = cx.b.ins().imul_imm_s(n, image);
            let gs = if per_group { 0 } else { cpg as i64 * hw * 4 };
            let b = cx.b.ins().imul_imm_s(g, gs);
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
            half: split.then_some(gm.w.div_ceil(2)),
        };
        row(cx, &gm, &bases, oh, mr, cpg, relu)
    };
    cx.for_n(gm.n, |cx, n| {
        if pad.is_some() && !per_group {
            // Copy image n into the interior of the padded buffer (borders stay zero).
            let src = cx.index(x_in, n, (orig.c * orig.h * orig.w * 4) as i64);
            copy_padded(cx, &orig, &gm, split, src, x, orig.c)?;
        }
        // Output rows outside, channel blocks inside: the input rows one output row reads
        // stay in cache while every block of output channels uses them.
        cx.for_n(gm.group, |cx, g| {
            if per_group {
                // Grouped (depthwise): one group's channels at a time, which stay in cache.
                let src = cx.index(x_in, n, (orig.c * orig.h * orig.w * 4) as i64);
                let src = cx.index(src, g, (cpg * orig.h * orig.w * 4) as i64);
                copy_padded(cx, &orig, &gm, split, src, x, cpg)?;
            }
            cx.for_n(gm.oh, |cx, oh| {
                cx.for_n(full_blocks, |cx, blk| per_block(cx, n, g, oh, blk, CB))?;
                if rem > 0 {
                    let blk = cx.iconst(full_blocks as i64);
                    per_block(cx, n, g, oh, blk, rem)?;
                }
                Ok(())
            })
        })
    })
}

/// Copies `channels` channels of one image from `src` into the interior of the padded buffer
/// `x` (rows split into even and odd columns when `split`).
fn copy_padded(
    cx: &mut Ctx,
    orig: &Geom,
    gm: &Geom,
    split: bool,
    src: Value,
    x: Value,
    channels: usize,
) -> R<()> {
    if split {
        // Padded column pc goes to plane pc % 2, index pc / 2.
        let half = gm.w.div_ceil(2);
        for q in 0..2 {
            let pc0 = if orig.pl % 2 == q {
                orig.pl
            } else {
                orig.pl + 1
            };
            let iw0 = pc0 - orig.pl;
            if iw0 >= orig.w {
                continue;
            }
            let count = (orig.w - iw0).div_ceil(2);
            let s = cx.offset(src, (iw0 * 4) as i64);
            let d = cx.offset(x, ((orig.pt * gm.w + q * half + pc0 / 2) * 4) as i64);
            super::shape::copy_nest(
                cx,
                &[channels, orig.h, count],
                s,
                &[(orig.h * orig.w) as i64, orig.w as i64, 2],
                d,
                &[(gm.h * gm.w) as i64, gm.w as i64, 1],
                4,
            )?;
        }
    } else {
        let dst = cx.offset(x, ((orig.pt * gm.w + orig.pl) * 4) as i64);
        super::shape::copy_nest(
            cx,
            &[channels, orig.h, orig.w],
            src,
            &[(orig.h * orig.w) as i64, orig.w as i64, 1],
            dst,
            &[(gm.h * gm.w) as i64, gm.w as i64, 1],
            4,
        )?;
    }
    Ok(())
}

/// One output row `oh` of `mr` channels: blocks of columns, the last one possibly partial.
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
    let width = nv_for(mr) * 4;
    let nfull = gm.ow / width;
    let rest = gm.ow % width;
    cx.for_n(nfull, |cx, blk| {
        let ow0 = cx.b.ins().imul_imm_s(blk, width as i64);
        wide(cx, gm, bs, oh, ow0, mr, cpg, width, relu)
    })?;
    if rest > 0 && nfull > 0 {
        // The last `width` columns, overlapping the previous block: full vectors, every read
        // inside the row (the overlapped outputs are computed twice, identically).
        let ow0 = cx.iconst((gm.ow - width) as i64);
        wide(cx, gm, bs, oh, ow0, mr, cpg, width, relu)?;
    } else if rest > 0 {
        let ow0 = cx.iconst((nfull * width) as i64);
        wide(cx, gm, bs, oh, ow0, mr, cpg, rest, relu)?;
    }
    Ok(())
}

/// `ih = oh * sh + kh * dh` (every row is inside the, possibly padded, input).
fn in_row(cx: &mut Ctx, gm: &Geom, oh: Value, kh: usize) -> Value {
    let ih = cx.b.ins().imul_imm_s(oh, gm.sh as i64);
    cx.b.ins().iadd_imm_s(ih, (kh * gm.dh) as i64)
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

/// A block of `mr` channels × `cols` output columns from `ow0` (all lanes computed, `cols`
/// stored).
#[allow(clippy::too_many_arguments)]
fn wide(
    cx: &mut Ctx,
    gm: &Geom,
    bs: &Bases,
    oh: Value,
    ow0: Value,
    mr: usize,
    cpg: usize,
    cols: usize,
    relu: super::Act,
) -> R<()> {
    let nv = nv_for(mr);
    let accs = init_accs(cx, bs, mr, nv);
    let hw = (gm.h * gm.w) as i64;
    let taps = gm.kh * gm.kw;
    // Input column of the first output column, first tap.
    let iw0 = match bs.half {
        Some(_) => ow0,
        None => cx.b.ins().imul_imm_s(ow0, gm.sw as i64),
    };
    // First input row of the window; row kh is kh * dh rows further. Small windows run all
    // taps per input channel (one loop); large ones (7x7 stems) one kernel row per loop.
    let ih0 = in_row(cx, gm, oh, 0);
    let rowp = cx.index(bs.x, ih0, (gm.w * 4) as i64);
    let rowp = cx.index(rowp, iw0, 4);
    let row_groups: Vec<Vec<usize>> = if taps <= 9 {
        vec![(0..gm.kh).collect()]
    } else {
        (0..gm.kh).map(|kh| vec![kh]).collect()
    };
    // Small windows (1x1, 1xk) unroll input channels so that a loop iteration carries about
    // nine taps' work: the loop overhead per FMA stays small.
    let unroll = if taps <= 4 && gm.sw == 1 {
        (8 / taps).min(4).min(cpg).max(1)
    } else {
        1
    };
    for rows in &row_groups {
        // Taps of `rows` for channels `ci0 + j`, j in 0..count.
        let body = |cx: &mut Ctx, ci0: Value, count: usize| -> R<()> {
            let xp0 = cx.index(rowp, ci0, hw * 4);
            let wp0 = cx.index(bs.w, ci0, (taps * CB * 4) as i64);
            for j in 0..count {
                let xj = j as i64 * hw * 4;
                let wj = (j * taps * CB * 4) as i64;
                for &kh in rows {
                    for kw in 0..gm.kw {
                        let t = kh * gm.kw + kw;
                        let mut xs = vec![];
                        if let Some(half) = bs.half {
                            let col = (kw % 2) * half + kw / 2;
                            let base = ((kh * gm.dh * gm.w + col) * 4) as i64 + xj;
                            for h in 0..nv {
                                xs.push(cx.load(types::F32X4, xp0, base + (h * 16) as i64));
                            }
                        } else {
                            let base = ((kh * gm.dh * gm.w + kw * gm.dw) * 4) as i64 + xj;
                            for h in 0..nv {
                                let off = base + (h * 4 * gm.sw) as i64 * 4;
                                xs.push(load_strided(cx, xp0, off, gm.sw));
                            }
                        }
                        for r in 0..mr {
                            let wv = cx.load(types::F32, wp0, wj + ((t * CB + r) * 4) as i64);
                            let wv = cx.b.ins().splat(types::F32X4, wv);
                            for (h, xv) in xs.iter().enumerate() {
                                let var = accs[r * nv + h];
                                let a = cx.b.use_var(var);
                                let s = cx.fma(wv, *xv, a);
                                cx.b.def_var(var, s);
                            }
                        }
                    }
                }
            }
            Ok(())
        };
        let full = cpg / unroll;
        cx.for_n(full, |cx, cb| {
            let ci0 = cx.b.ins().imul_imm_s(cb, unroll as i64);
            body(cx, ci0, unroll)
        })?;
        if !cpg.is_multiple_of(unroll) {
            let ci0 = cx.iconst((full * unroll) as i64);
            body(cx, ci0, cpg % unroll)?;
        }
    }
    let ohw = (gm.oh * gm.ow) as i64;
    let yrow = cx.index(bs.y, oh, (gm.ow * 4) as i64);
    let yrow = cx.index(yrow, ow0, 4);
    for r in 0..mr {
        for h in 0..nv {
            let valid = cols.saturating_sub(h * 4).min(4);
            if valid == 0 {
                continue;
            }
            let mut v = cx.b.use_var(accs[r * nv + h]);
            v = super::apply_act(cx, v, relu);
            let at = (r as i64 * ohw + (h * 4) as i64) * 4;
            if valid == 4 {
                cx.store(v, yrow, at);
            } else {
                for l in 0..valid {
                    let e = cx.b.ins().extractlane(v, l as u8);
                    cx.store(e, yrow, at + l as i64 * 4);
                }
            }
        }
    }
    Ok(())
}

/// Four input values at `p + off + lane * s * 4` bytes.
pub(crate) fn load_strided(cx: &mut Ctx, p: Value, off: i64, s: usize) -> Value {
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
