//! QuantizeLinear and DequantizeLinear, per tensor or per axis (int8, uint8; int32 for
//! dequantised biases), so QDQ models run natively.
//!
//! `DequantizeLinear`: `y = (x - zero_point) * scale`; `QuantizeLinear`:
//! `y = saturate(round_half_even(x / scale) + zero_point)`. A per-axis scale (and zero point) is
//! read as a tensor of shape `[C, 1, .., 1]` broadcast against the input from `axis` on, so both
//! run through the elementwise kernel. Blocked quantisation (`block_size`) at run time is
//! refused; `DequantizeLinear` of a constant (per axis, blocked, packed int4) is folded into an
//! f32 constant during binding ([`crate::fold`]), which is how quantized weights reach Conv.

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
    if scale_rank.is_some_and(|r| r > 1) {
        return Err("the scale must be a scalar or 1-D (per axis)".into());
    }
    match &node.op {
        Op::QuantizeLinear(o) => {
            if o.block_size != 0 {
                return Err("blocked quantisation is not supported".into());
            }
            if dt(0) != Some(DType::F32) || dt(1) != Some(DType::F32) {
                return Err("QuantizeLinear takes f32 input and scale".into());
            }
            match out {
                Some(DType::I8) | Some(DType::U8) => Ok(()),
                d => Err(format!(
                    "QuantizeLinear to {d:?} is not supported (int8, uint8)"
                )),
            }
        }
        Op::DequantizeLinear(o) => {
            if o.block_size != 0 {
                return Err("blocked quantisation is not supported".into());
            }
            match dt(0) {
                Some(DType::I8) | Some(DType::U8) | Some(DType::I32) => {}
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
        DType::U8 => cx.b.ins().uextend(types::I32, v),
        DType::I8 => cx.b.ins().sextend(types::I32, v),
        _ => v,
    };
    cx.b.ins().fcvt_from_sint(types::F32, w)
}

/// Lowers QuantizeLinear and DequantizeLinear.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let x = io.input(0)?.clone();
    let y = io.output(0)?.clone();
    let (ax, quant) = match io.op() {
        Op::QuantizeLinear(o) => (o.axis, true),
        Op::DequantizeLinear(o) => (o.axis, false),
        op => return Err(format!("{} is not a quantisation op", op.op_type())),
    };
    // The axis matters only for a per-axis (1-D, more than one element) scale.
    let per_axis_scale = io.input(1)?.len() > 1;
    let a = if per_axis_scale {
        axis(ax, x.dims.len())?
    } else {
        0
    };
    let scale = per_axis(io.input(1)?, &x, a);
    let zp = io.opt_input(2).map(|z| per_axis(z, &x, a));
    let zdt = zp.as_ref().map(|z| z.dtype);
    clif_ty(y.dtype).ok_or("unsupported output dtype")?;
    let mut ins = vec![&x, &scale];
    if let Some(z) = &zp {
        ins.push(z);
    }
    if quant {
        let (lo, hi) = if y.dtype == DType::I8 {
            (-128.0f32, 127.0f32)
        } else {
            (0.0, 255.0)
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
            Ok(cx.b.ins().ireduce(types::I8, i))
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
