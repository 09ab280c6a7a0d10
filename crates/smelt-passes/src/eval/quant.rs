//! Cast, QuantizeLinear and DequantizeLinear, bit-exact with the ONNX reference:
//! `QuantizeLinear` divides `x / scale` in `f32`, rounds half to even, adds the zero point and
//! saturates; `DequantizeLinear` computes `(x - zero_point) * scale` in `f32`. Per-tensor,
//! per-axis and blocked (`block_size`) scales are supported.

use super::{axis, invalid, num, strides, terr, unsupported, Args, Num, R};
use smelt_ir::ops::{DequantizeLinear, QuantizeLinear};
use smelt_ir::{DType, Tensor};

fn numeric(d: DType) -> bool {
    matches!(
        d,
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Bool
    ) || d.is_int()
}

pub(crate) fn cast(x: &Tensor, to: DType) -> R<Tensor> {
    let from = x.dtype();
    if from == to {
        return Ok(x.clone());
    }
    if !numeric(from) || !numeric(to) {
        return unsupported(format!("Cast from {from} to {to}"));
    }
    let dims = x.dims().to_vec();
    match num(x)? {
        Num::I(v) if !to.is_float() => Tensor::from_i64s(to, dims, &v).map_err(terr),
        Num::I(v) => {
            let f: Vec<f64> = v.iter().map(|a| *a as f64).collect();
            Tensor::from_f64s(to, dims, &f).map_err(terr)
        }
        Num::F(v) if to == DType::Bool => {
            let b: Vec<i64> = v.iter().map(|a| (*a != 0.0) as i64).collect();
            Tensor::from_i64s(to, dims, &b).map_err(terr)
        }
        Num::F(v) if to.is_float() => Tensor::from_f64s(to, dims, &v).map_err(terr),
        Num::F(v) if to.bits() < 8 => {
            // Packed integers: truncate toward zero, then wrap like ONNX's reference.
            let t: Vec<i64> = v
                .iter()
                .map(|a| if a.is_finite() { a.trunc() as i64 } else { 0 })
                .collect();
            Tensor::from_i64s(to, dims, &t).map_err(terr)
        }
        Num::F(v) => {
            // Float to integer truncates toward zero; NaN and out-of-range saturate.
            let t: Vec<f64> = v.iter().map(|a| a.trunc()).collect();
            Tensor::from_f64s(to, dims, &t).map_err(terr)
        }
    }
}

/// For each element of `x`, the index of its scale (and zero point).
fn scale_index(dims: &[usize], scale: &Tensor, ax: i64, block: i64) -> R<Vec<usize>> {
    let n: usize = dims.iter().product();
    if block <= 0 && scale.len() == 1 && scale.dims().len() <= 1 {
        return Ok(vec![0; n]);
    }
    let a = axis(ax, dims.len())?;
    let st = strides(dims);
    if block <= 0 {
        if scale.dims().len() != 1 || scale.dims()[0] != dims[a] {
            return invalid(format!(
                "per-axis scale of shape {:?} for axis {a} of {dims:?}",
                scale.dims()
            ));
        }
        return Ok((0..n).map(|i| (i / st[a]) % dims[a]).collect());
    }
    let b = block as usize;
    let mut sd = dims.to_vec();
    sd[a] = dims[a].div_ceil(b);
    if scale.dims() != sd.as_slice() {
        return invalid(format!(
            "blocked scale of shape {:?}, expected {sd:?}",
            scale.dims()
        ));
    }
    let sst = strides(&sd);
    Ok((0..n)
        .map(|i| {
            let mut j = 0;
            for k in 0..dims.len() {
                let c = (i / st[k]) % dims[k];
                let c = if k == a { c / b } else { c };
                j += c * sst[k];
            }
            j
        })
        .collect())
}

fn qrange(d: DType) -> Option<(i64, i64)> {
    Some(match d {
        DType::U8 => (0, 255),
        DType::I8 => (-128, 127),
        DType::U16 => (0, 65535),
        DType::I16 => (-32768, 32767),
        DType::U4 => (0, 15),
        DType::I4 => (-8, 7),
        DType::U2 => (0, 3),
        DType::I2 => (-2, 1),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        _ => return None,
    })
}

fn as_f32(t: &Tensor) -> R<Vec<f32>> {
    t.to_f32_vec()
        .ok_or_else(|| super::EvalError::Unsupported(format!("{} values", t.dtype())))
}

pub(crate) fn quantize_linear(args: &Args, q: &QuantizeLinear) -> R<Tensor> {
    let x = args.req(0)?;
    let scale = args.req(1)?;
    let zp = args.opt(2);
    let out = if q.output_dtype != 0 {
        i32::try_from(q.output_dtype)
            .ok()
            .and_then(DType::from_code)
            .ok_or_else(|| super::EvalError::Invalid("bad output_dtype".into()))?
    } else {
        zp.map(|z| z.dtype()).unwrap_or(DType::U8)
    };
    let Some((lo, hi)) = qrange(out) else {
        return unsupported(format!("QuantizeLinear to {out}"));
    };
    let idx = scale_index(x.dims(), scale, q.axis, q.block_size)?;
    let xs = as_f32(x)?;
    let ss = as_f32(scale)?;
    let zs: Vec<i64> = match zp {
        Some(z) => z
            .to_i64_vec()
            .ok_or_else(|| super::EvalError::Unsupported(format!("{} zero point", z.dtype())))?,
        None => vec![0; ss.len()],
    };
    if zs.len() != ss.len() {
        return invalid("zero point and scale differ in shape");
    }
    let half = matches!(x.dtype(), DType::F16);
    let v: Vec<i64> = xs
        .iter()
        .zip(&idx)
        .map(|(xv, i)| {
            let mut d = xv / ss[*i];
            if half {
                d = half::f16::from_f32(d).to_f32();
            }
            let r = d.round_ties_even() as f64;
            let r = if r.is_nan() { 0.0 } else { r };
            let y = r + zs[*i] as f64;
            y.clamp(lo as f64, hi as f64) as i64
        })
        .collect();
    Tensor::from_i64s(out, x.dims().to_vec(), &v).map_err(terr)
}

pub(crate) fn dequantize_linear(args: &Args, q: &DequantizeLinear) -> R<Tensor> {
    let x = args.req(0)?;
    let scale = args.req(1)?;
    let zp = args.opt(2);
    if !x.dtype().is_int() {
        return unsupported(format!("DequantizeLinear of {}", x.dtype()));
    }
    let out = if q.output_dtype != 0 {
        i32::try_from(q.output_dtype)
            .ok()
            .and_then(DType::from_code)
            .ok_or_else(|| super::EvalError::Invalid("bad output_dtype".into()))?
    } else {
        scale.dtype()
    };
    let idx = scale_index(x.dims(), scale, q.axis, q.block_size)?;
    let xs = x
        .to_i64_vec()
        .ok_or_else(|| super::EvalError::Unsupported(format!("{} values", x.dtype())))?;
    let ss = as_f32(scale)?;
    let zs: Vec<i64> = match zp {
        Some(z) => z
            .to_i64_vec()
            .ok_or_else(|| super::EvalError::Unsupported(format!("{} zero point", z.dtype())))?,
        None => vec![0; ss.len()],
    };
    if zs.len() != ss.len() {
        return invalid("zero point and scale differ in shape");
    }
    let v: Vec<f64> = xs
        .iter()
        .zip(&idx)
        .map(|(xv, i)| ((*xv as f32 - zs[*i] as f32) * ss[*i]) as f64)
        .collect();
    Tensor::from_f64s(out, x.dims().to_vec(), &v).map_err(terr)
}
