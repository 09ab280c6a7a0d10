//! QuantizeLinear and DequantizeLinear, per tensor, per axis or blocked (int8, uint8, int16,
//! uint16; int32 for dequantised biases; packed int4, uint4, int2 and uint2 per tensor or per
//! axis, one element at a time; the 8- and 4-bit floats too), so QDQ models run natively.
//!
//! `DequantizeLinear`: `y = (x - zero_point) * scale`; `QuantizeLinear`:
//! `y = saturate(round_half_even(x / scale) + zero_point)`. A per-axis scale (and zero point) is
//! read as a tensor of shape `[C, 1, .., 1]` broadcast against the input from `axis` on, so both
//! run through the elementwise kernel. Blocked quantisation (`block_size` B along `axis`, whose
//! extent B divides) views the input as `[.., C/B, B, ..]` and the scale as `[.., C/B, 1, ..]`.
//! `DequantizeLinear` of a constant (per axis, blocked, packed int4) is folded into an f32
//! constant during binding ([`crate::fold`]), which is how quantized weights reach Conv.

use super::elementwise::{
    decoded, encode_small_float, encoded, load_elem, map, packed, write_packed,
};
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
                Some(d) if block == 0 && (packed(d).is_some() || encoded(d)) => Ok(()),
                d => Err(format!(
                    "QuantizeLinear to {d:?} is not supported (int8, uint8, int16, uint16, \
                     int4, uint4, int2, uint2)"
                )),
            }
        }
        Op::DequantizeLinear(_) => {
            match dt(0) {
                Some(DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32) => {}
                Some(d) if block == 0 && (packed(d).is_some() || decoded(d).is_some()) => {}
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

/// Q/DQ from or to a packed sub-byte integer type (per tensor or per axis), one element at a
/// time: the element's scale and zero point are those of its index along `axis`.
fn packed_qdq(cx: &mut Ctx, io: &NodeIo, x: &Operand, y: &Operand, quant: bool, ax: i64) -> R<()> {
    let scale = io.input(1)?;
    let zp = io.opt_input(2);
    if scale.dtype != DType::F32 || x.len() != y.len() {
        return Err("Q/DQ of a packed type takes an f32 scale".into());
    }
    let c = scale.len();
    // The parameter index of element `i`: 0 per tensor, `(i / inner) % C` per axis.
    let inner: usize = if c > 1 {
        let a = axis(ax, x.dims.len())?;
        if x.dims[a] != c || zp.is_some_and(|z| z.len() != c) {
            return Err("the per-axis scale does not fit the axis".into());
        }
        x.dims[a + 1..].iter().product()
    } else {
        1
    };
    let param = move |cx: &mut Ctx, i: Value| -> Value {
        if c > 1 {
            let q = cx.b.ins().udiv_imm_s(i, inner as i64);
            cx.b.ins().urem_imm_s(q, c as i64)
        } else {
            cx.iconst(0)
        }
    };
    let sp = cx.addr(io.g, scale)?;
    let zpp = zp.map(|z| cx.addr(io.g, z)).transpose()?;
    let zdt = zp.map(|z| z.dtype);
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let (xdt, ydt) = (x.dtype, y.dtype);
    let zero_point = move |cx: &mut Ctx, k: Value| -> R<Value> {
        Ok(match (zpp, zdt) {
            (Some(p), Some(d)) => {
                let (z, zd) = load_elem(cx, p, k, d)?;
                super::elementwise::cast(cx, z, zd, DType::F32)?
            }
            _ => cx.fconst(Lanes::One, 0.0),
        })
    };
    let scale_at = move |cx: &mut Ctx, k: Value| -> Value {
        let a = cx.index(sp, k, 4);
        cx.load(types::F32, a, 0)
    };
    if !quant {
        return cx.for_n(x.len(), |cx, i| {
            let k = param(cx, i);
            let (v, d) = load_elem(cx, xp, i, xdt)?;
            let xf = super::elementwise::cast(cx, v, d, DType::F32)?;
            let zf = zero_point(cx, k)?;
            let s = scale_at(cx, k);
            let diff = cx.b.ins().fsub(xf, zf);
            let r = cx.b.ins().fmul(diff, s);
            let a = cx.index(yp, i, 4);
            cx.store(r, a, 0);
            Ok(())
        });
    }
    if encoded(ydt) {
        // ONNX: `x / scale` cast to the format (the zero point is added for f4e2m1 only).
        if xdt != DType::F32 {
            return Err("QuantizeLinear takes f32 input".into());
        }
        let saturate = !matches!(io.op(), Op::QuantizeLinear(o) if o.saturate == 0);
        let code_of = move |cx: &mut Ctx, i: Value| -> R<Value> {
            let k = param(cx, i);
            let a = cx.index(xp, i, 4);
            let v = cx.load(types::F32, a, 0);
            let s = scale_at(cx, k);
            let mut q = cx.b.ins().fdiv(v, s);
            if ydt == DType::F4E2M1 {
                let zf = zero_point(cx, k)?;
                q = cx.b.ins().fadd(q, zf);
            }
            encode_small_float(cx, q, ydt, saturate)
        };
        if ydt == DType::F4E2M1 {
            return write_packed(cx, yp, x.len(), 4, &code_of);
        }
        return cx.for_n(x.len(), |cx, i| {
            let c = code_of(cx, i)?;
            let b = cx.b.ins().ireduce(types::I8, c);
            let a = cx.b.ins().iadd(yp, i);
            cx.store(b, a, 0);
            Ok(())
        });
    }
    let (bits, signed) = packed(ydt).ok_or("QuantizeLinear to this type is not supported")?;
    let (lo, hi) = if signed {
        (
            -(1i64 << (bits - 1)) as f32,
            ((1i64 << (bits - 1)) - 1) as f32,
        )
    } else {
        (0.0, ((1i64 << bits) - 1) as f32)
    };
    if xdt != DType::F32 {
        return Err("QuantizeLinear takes f32 input".into());
    }
    write_packed(cx, yp, x.len(), bits, &move |cx, i| {
        let k = param(cx, i);
        let a = cx.index(xp, i, 4);
        let v = cx.load(types::F32, a, 0);
        let s = scale_at(cx, k);
        let q = cx.b.ins().fdiv(v, s);
        // Round half to even (clamped first so the trick stays exact), add the zero point,
        // saturate.
        let big = cx.fconst(Lanes::One, 4_194_304.0);
        let nbig = cx.fconst(Lanes::One, -4_194_304.0);
        let q = cx.b.ins().fmin(q, big);
        let q = cx.b.ins().fmax(q, nbig);
        let magic = cx.fconst(Lanes::One, 12_582_912.0);
        let t = cx.b.ins().fadd(q, magic);
        let q = cx.b.ins().fsub(t, magic);
        let zf = zero_point(cx, k)?;
        let q = cx.b.ins().fadd(q, zf);
        let l = cx.fconst(Lanes::One, lo);
        let h = cx.fconst(Lanes::One, hi);
        let q = cx.b.ins().fmax(q, l);
        let q = cx.b.ins().fmin(q, h);
        Ok(cx.b.ins().fcvt_to_sint_sat(types::I64, q))
    })
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
    if packed(x.dtype).is_some()
        || packed(y.dtype).is_some()
        || decoded(x.dtype).is_some()
        || encoded(y.dtype)
    {
        return packed_qdq(cx, io, &x, &y, quant, ax);
    }
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
