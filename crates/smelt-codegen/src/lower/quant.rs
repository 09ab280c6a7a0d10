//! QuantizeLinear and DequantizeLinear, per tensor, per axis or blocked (int8, uint8, int16,
//! uint16; int32 for dequantised biases), so QDQ models run natively.
//!
//! `DequantizeLinear`: `y = (x - zero_point) * scale`; `QuantizeLinear`:
//! `y = saturate(round_half_even(x / scale) + zero_point)`. A per-axis scale (and zero point) is
//! read as a tensor of shape `[C, 1, .., 1]` broadcast against the input from `axis` on, so both
//! run through the elementwise kernel. Blocked quantisation (`block_size` B along `axis`, whose
//! extent B divides) views the input as `[.., C/B, B, ..]` and the scale as `[.., C/B, 1, ..]`.
//! `DequantizeLinear` of a constant (per axis, blocked, packed int4) is folded into an f32
//! constant during binding ([`crate::fold`]), which is how quantized weights reach Conv.

use super::elementwise::map;
use super::{axis, clif_ty, Ctx, Lanes, NodeIo, Operand, R};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{DType, Graph, NodeId, Op};

/// Why a Q/DQ node cannot be lowered, if it cannot.
pub(crate) fn check(g: &Graph, id: NodeId) -> R<()> {
    let node = g.node(id);
    let ins = g.node_inputs(id);
    let dt = |i: usize| {
        ins.get(i)
            .copied()
            .flatten()
            .and_then(|v| g.value_type(v).dtype())
    };
    let out = node.outputs.first().and_then(|v| v.ty.dtype());
    let scale_rank = ins
        .get(1)
        .copied()
        .flatten()
        .and_then(|v| g.value_type(v).shape().map(|s| s.len()));
    let (block, ax) = match &node.op {
        Op::QuantizeLinear(o) => (o.block_size, o.axis),
        Op::DequantizeLinear(o) => (o.block_size, o.axis),
        _ => (0, 0),
    };
    if block != 0 {
        let dims = |i: usize| {
            ins.get(i)
                .copied()
                .flatten()
                .and_then(|v| g.value_type(v).static_dims())
        };
        blocked_dims(dims(0).as_deref(), dims(1).as_deref(), ax, block)?;
    } else if scale_rank.is_some_and(|r| r > 1) {
        return Err("the scale must be a scalar or 1-D (per axis)".into());
    }
    match &node.op {
        Op::QuantizeLinear(_) => {
            if dt(0) != Some(DType::F32) || dt(1) != Some(DType::F32) {
                return Err("QuantizeLinear takes f32 input and scale".into());
            }
            match out {
                Some(DType::I8 | DType::U8 | DType::I16 | DType::U16) => Ok(()),
                d => Err(format!(
                    "QuantizeLinear to {d:?} is not supported (int8, uint8, int16, uint16)"
                )),
            }
        }
        Op::DequantizeLinear(_) => {
            match dt(0) {
                Some(DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32) => {}
                d => return Err(format!("DequantizeLinear of {d:?} is not supported")),
            }
            if dt(1) != Some(DType::F32) || out != Some(DType::F32) {
                return Err("DequantizeLinear with a non-f32 scale is not supported".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// For blocked quantisation of an input of `x` dims by blocks of `block` along `axis`: the dims
/// the input is viewed with (`[.., C/B, B, ..]`) and the scale with (`[.., C/B, 1, ..]`).
fn blocked_dims(
    x: Option<&[usize]>,
    scale: Option<&[usize]>,
    axis: i64,
    block: i64,
) -> R<(Vec<usize>, Vec<usize>)> {
    let (Some(x), Some(sc)) = (x, scale) else {
        return Err("blocked quantisation needs static shapes".into());
    };
    let a = super::axis(axis, x.len())?;
    let b = usize::try_from(block).map_err(|_| "negative block_size")?;
    if b == 0 || x[a] % b != 0 {
        return Err(format!(
            "blocked quantisation with blocks of {b} that do not divide the extent {}",
            x[a]
        ));
    }
    let mut want = x.to_vec();
    want[a] = x[a] / b;
    if sc != want.as_slice() {
        return Err(format!(
            "the blocked scale has dims {sc:?}, expected {want:?}"
        ));
    }
    let mut xv = x[..a].to_vec();
    xv.extend([x[a] / b, b]);
    xv.extend(&x[a + 1..]);
    let mut sv = x[..a].to_vec();
    sv.extend([x[a] / b, 1]);
    sv.extend(&x[a + 1..]);
    Ok((xv, sv))
}

/// The operand re-viewed as `[C, 1, .., 1]` for a per-axis parameter (1-D of the axis' extent).
fn per_axis(p: &Operand, x: &Operand, a: usize) -> Operand {
    if p.dims.len() == 1 && p.dims[0] > 1 {
        let mut dims = vec![p.dims[0]];
        dims.extend(std::iter::repeat_n(1, x.dims.len() - a - 1));
        Operand { dims, ..p.clone() }
    } else {
        Operand {
            dims: vec![],
            ..p.clone()
        }
    }
}

/// An integer element widened to f32.
fn int_to_f32(cx: &mut Ctx, v: Value, d: DType) -> Value {
    let w = match d {
        DType::U8 | DType::U16 => cx.b.ins().uextend(types::I32, v),
        DType::I8 | DType::I16 => cx.b.ins().sextend(types::I32, v),
        _ => v,
    };
    cx.b.ins().fcvt_from_sint(types::F32, w)
}

/// Lowers QuantizeLinear and DequantizeLinear.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let x = io.input(0)?.clone();
    let y = io.output(0)?.clone();
    let (ax, quant, block) = match io.op() {
        Op::QuantizeLinear(o) => (o.axis, true, o.block_size),
        Op::DequantizeLinear(o) => (o.axis, false, o.block_size),
        op => return Err(format!("{} is not a quantisation op", op.op_type())),
    };
    let (x, y, scale, zp) = if block != 0 {
        let (xv, sv) = blocked_dims(Some(&x.dims), Some(&io.input(1)?.dims), ax, block)?;
        let view = |o: &Operand, dims: &[usize]| Operand {
            dims: dims.to_vec(),
            ..o.clone()
        };
        (
            view(&x, &xv),
            view(&y, &xv),
            view(io.input(1)?, &sv),
            io.opt_input(2).map(|z| view(z, &sv)),
        )
    } else {
        // The axis matters only for a per-axis (1-D, more than one element) scale.
        let per_axis_scale = io.input(1)?.len() > 1;
        let a = if per_axis_scale {
            axis(ax, x.dims.len())?
        } else {
            0
        };
        let scale = per_axis(io.input(1)?, &x, a);
        let zp = io.opt_input(2).map(|z| per_axis(z, &x, a));
        (x, y, scale, zp)
    };
    let zdt = zp.as_ref().map(|z| z.dtype);
    clif_ty(y.dtype).ok_or("unsupported output dtype")?;
    let mut ins = vec![&x, &scale];
    if let Some(z) = &zp {
        ins.push(z);
    }
    if quant {
        let (lo, hi, ty) = match y.dtype {
            DType::I8 => (-128.0f32, 127.0f32, types::I8),
            DType::U8 => (0.0, 255.0, types::I8),
            DType::I16 => (-32768.0, 32767.0, types::I16),
            DType::U16 => (0.0, 65535.0, types::I16),
            d => return Err(format!("QuantizeLinear to {d} is not supported")),
        };
        map(cx, io, &y, &ins, &move |cx, _, v| {
            let q = cx.b.ins().fdiv(v[0], v[1]);
            // Clamp far outside the range first so the rounding trick stays exact.
            let big = cx.fconst(Lanes::One, 4_194_304.0);
            let nbig = cx.fconst(Lanes::One, -4_194_304.0);
            let q = cx.b.ins().fmin(q, big);
            let q = cx.b.ins().fmax(q, nbig);
            let magic = cx.fconst(Lanes::One, 12_582_912.0);
            let t = cx.b.ins().fadd(q, magic);
            let q = cx.b.ins().fsub(t, magic);
            let q = match (v.get(2), zdt) {
                (Some(z), Some(d)) => {
                    let zf = int_to_f32(cx, *z, d);
                    cx.b.ins().fadd(q, zf)
                }
                _ => q,
            };
            let l = cx.fconst(Lanes::One, lo);
            let h = cx.fconst(Lanes::One, hi);
            let q = cx.b.ins().fmax(q, l);
            let q = cx.b.ins().fmin(q, h);
            let i = cx.b.ins().fcvt_to_sint_sat(types::I32, q);
            Ok(cx.b.ins().ireduce(ty, i))
        })
    } else {
        let xdt = x.dtype;
        map(cx, io, &y, &ins, &move |cx, _, v| {
            let xf = int_to_f32(cx, v[0], xdt);
            let d = match (v.get(2), zdt) {
                (Some(z), Some(zd)) => {
                    let zf = int_to_f32(cx, *z, zd);
                    cx.b.ins().fsub(xf, zf)
                }
                _ => xf,
            };
            Ok(cx.b.ins().fmul(d, v[1]))
        })
    }
}
