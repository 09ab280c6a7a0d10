//! Elementwise ops, one input or many with numpy broadcasting, through one kernel ([`map`]).
//!
//! The kernel coalesces the output's dims where every operand is contiguous, loops over the
//! outer dims and runs the innermost one four lanes at a time (f32x4) when every operand is f32
//! and reads either contiguously or one broadcast element; a scalar tail finishes the row.
//! Other dtypes (integer shapes and indices, bool masks) run one element at a time. Every
//! element is read before its slot is written, so the output may share the input's storage
//! (the memory plan's in-place rule).
//!
//! Also here: casts from and to packed sub-byte integers and the 8-/4-bit floats (element by
//! element), and the elementwise ops the IR keeps opaque ([`OpaqueEw`]: Selu, Celu,
//! ThresholdedRelu, IsInf, the bitwise ops).

use super::math;
use super::{bc, clif_ty, strides, Ctx, Lanes, NodeIo, Operand, R};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{DType, Op};

/// A kernel body: computes one output lane group from the input lane groups.
pub(crate) type Body<'a> = dyn Fn(&mut Ctx, Lanes, &[Value]) -> R<Value> + 'a;

/// Arithmetic dtypes the elementwise kernels take.
pub(crate) fn check_numeric(d: Option<DType>) -> R<()> {
    match d {
        Some(DType::F32) | Some(DType::I32) | Some(DType::I64) => Ok(()),
        Some(d) => Err(format!("{d} tensors are not supported (f32, i32, i64)")),
        None => Err("input 0 has no known dtype".into()),
    }
}

/// Dtypes of Mod and Clip: f32 and the 8- to 64-bit integers.
pub(crate) fn check_int_or_f32(d: Option<DType>) -> R<()> {
    match d {
        Some(DType::F64) => Err("f64 tensors are not supported (f32, integers)".into()),
        d => check_arith(d),
    }
}

/// Dtypes of Add, Sub, Mul, Div and the comparisons: f32, f64 and the 8- to 64-bit integers.
pub(crate) fn check_arith(d: Option<DType>) -> R<()> {
    match d {
        Some(DType::F32 | DType::F64)
        | Some(DType::I8 | DType::I16 | DType::I32 | DType::I64)
        | Some(DType::U8 | DType::U16 | DType::U32 | DType::U64) => Ok(()),
        Some(d) => Err(format!(
            "{d} tensors are not supported (f32, f64, 8- to 64-bit integers)"
        )),
        None => Err("input 0 has no known dtype".into()),
    }
}

fn cast_kind(d: DType) -> Option<u8> {
    // 0: float, 1: signed int, 2: unsigned int, 3: bool, 4: half float (f16, bf16)
    Some(match d {
        DType::F32 | DType::F64 => 0,
        DType::F16 | DType::BF16 => 4,
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ => 4,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => 1,
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => 2,
        DType::Bool => 3,
        _ => return None,
    })
}

/// Exponent dtypes Pow takes (with an f32 base): f32 and the integers.
pub(crate) fn pow_exponent_supported(d: DType) -> bool {
    d == DType::F32 || cast_kind(d).is_some_and(|k| k == 1 || k == 2)
}

/// Why Pow of a `base` by an `exp` tensor cannot be lowered, if it cannot: an f32 base takes
/// an f32 or integer exponent; an integer base (8 to 64 bits) an integer, f32 or f64 one.
pub(crate) fn check_pow(base: Option<DType>, exp: Option<DType>) -> R<()> {
    let Some(b) = base else {
        return Err("input 0 has no known dtype".into());
    };
    let Some(e) = exp else {
        return Err("Pow's exponent has no known dtype".into());
    };
    let int_base = b.is_int() && super::clif_ty(b).is_some();
    let ok = match b {
        DType::F32 => pow_exponent_supported(e),
        _ if int_base => pow_exponent_supported(e) || e == DType::F64,
        _ => return Err(format!("{b} inputs are not supported (f32 only)")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("Pow with a {e} exponent is not supported"))
    }
}

/// `base ^ e` for an integer `base` (Cranelift type `ty`) and an i64 exponent, wrapping like
/// numpy: square and multiply over the exponent's `bits` low bits. A negative exponent gives
/// the real result truncated toward zero: 1 for base 1, ±1 for base -1 (`signed` bases), 0
/// otherwise.
fn int_pow(cx: &mut Ctx, base: Value, e: Value, bits: u32, signed: bool) -> Value {
    let ty = cx.b.func.dfg.value_type(base);
    let mut r = cx.b.ins().iconst(ty, 1);
    let mut b = base;
    let mut ee = e;
    for k in 0..bits {
        let bit = cx.b.ins().band_imm_s(ee, 1);
        let m = cx.b.ins().imul(r, b);
        r = cx.b.ins().select(bit, m, r);
        if k + 1 < bits {
            b = cx.b.ins().imul(b, b);
            ee = cx.b.ins().ushr_imm_s(ee, 1);
        }
    }
    let neg = cx.b.ins().icmp_imm_s(IntCC::SignedLessThan, e, 0);
    let one = cx.b.ins().iconst(ty, 1);
    let zero = cx.b.ins().iconst(ty, 0);
    let is_one = cx.b.ins().icmp_imm_s(IntCC::Equal, base, 1);
    let m1 = cx.b.ins().iconst(ty, ((1i128 << ty.bits()) - 1) as i64);
    let is_m1 = if signed {
        cx.b.ins().icmp(IntCC::Equal, base, m1)
    } else {
        cx.b.ins().iconst(types::I8, 0)
    };
    let odd = cx.b.ins().band_imm_s(e, 1);
    let m1_pow = cx.b.ins().select(odd, m1, one);
    let small = cx.b.ins().select(is_m1, m1_pow, zero);
    let small = cx.b.ins().select(is_one, one, small);
    cx.b.ins().select(neg, small, r)
}

/// f16 and bf16, carried as bit patterns and computed through f32.
pub(crate) fn is_half(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16)
}

fn half_to_f32(cx: &mut Ctx, v: Value, d: DType) -> Value {
    if d == DType::F16 {
        super::half::f16_to_f32(cx, v)
    } else {
        super::half::bf16_to_f32(cx, v)
    }
}

fn f32_to_half(cx: &mut Ctx, v: Value, d: DType) -> Value {
    if d == DType::F16 {
        super::half::f32_to_f16(cx, v)
    } else {
        super::half::f32_to_bf16(cx, v)
    }
}

/// Casts the backend performs: between f32, f64, the 8- to 64-bit integers and bool, and
/// from or to the packed sub-byte integers (int4, uint4, int2, uint2).
pub(crate) fn cast_supported(from: DType, to: DType) -> bool {
    let ok = |d: DType| cast_kind(d).is_some() || packed(d).is_some();
    (ok(from) || decoded(from).is_some()) && (ok(to) || (encoded(to) && cast_kind(from).is_some()))
}

/// Casts that run one element at a time ([`cast_packed`]): from or to the packed sub-byte
/// integers, from f4e2m1/f8e8m0 and to f4e2m1 (the 8-bit floats go through `float8`).
fn by_element(from: DType, to: DType) -> bool {
    let table = |d: DType| !super::float8::is_f8(d);
    packed(from).is_some()
        || packed(to).is_some()
        || (decoded(from).is_some() && table(from))
        || (encoded(to) && table(to))
}

/// The 8- and 4-bit float formats the backend writes (from f32/f64): f8e4m3fn, f8e4m3fnuz,
/// f8e5m2, f8e5m2fnuz and f4e2m1.
pub(crate) fn encoded(d: DType) -> bool {
    decoded(d).is_some() && d != DType::F8E8M0
}

/// Encodes the f32 `x` into the code of `d` (an i64), rounding to nearest even as ONNX's
/// reference (ml_dtypes) does. `saturate`: values beyond the largest finite one (infinities
/// included) become it; otherwise they become infinity (f8e5m2) or NaN. NaN gives the
/// format's NaN code; the sign is kept (negative zero where the format has one).
pub(crate) fn encode_small_float(cx: &mut Ctx, x: Value, d: DType, saturate: bool) -> R<Value> {
    if super::float8::is_f8(d) {
        let c = super::float8::encode(cx, x, d, saturate)?;
        return Ok(cx.b.ins().uextend(types::I64, c));
    }
    let (bits, table) = decoded(d).ok_or("not a small float format")?;
    let fnuz = matches!(d, DType::F8E4M3FNUZ | DType::F8E5M2FNUZ);
    let sign_bit = 1i64 << (bits - 1);
    // The largest finite magnitude's code.
    let max_code = (0..sign_bit as usize)
        .filter(|c| table[*c].is_finite())
        .max()
        .ok_or("empty format")? as i64;
    let (nan_code, overflow) = match d {
        DType::F8E4M3FN => (0x7F, 0x7F),
        DType::F8E5M2 => (0x7E, 0x7C),
        DType::F4E2M1 => (0x8, max_code),
        _ => (0x80, 0x80),
    };
    let overflow = if saturate || d == DType::F4E2M1 {
        max_code
    } else {
        overflow
    };
    // Magnitudes by code, padded with +inf to a power of two for the search.
    let size = 1usize << (bits - 1);
    let mags: Vec<f32> = (0..size)
        .map(|c| {
            if (c as i64) <= max_code {
                table[c]
            } else {
                f32::INFINITY
            }
        })
        .collect();
    let tp = cx.add_f32s(&mags);
    let a = cx.b.ins().fabs(x);
    // lo = the largest code whose magnitude is <= a (binary search; code 0 is 0.0).
    let mut lo = cx.iconst(0);
    let mut step = size / 2;
    while step > 0 {
        let cand = cx.b.ins().iadd_imm_s(lo, step as i64);
        let at = cx.index(tp, cand, 4);
        let v = cx.load(types::F32, at, 0);
        let le = cx.b.ins().fcmp(FloatCC::LessThanOrEqual, v, a);
        lo = cx.b.ins().select(le, cand, lo);
        step /= 2;
    }
    // Round up when the next magnitude is nearer, or as near and `lo` is odd. Past the largest
    // finite magnitude, the next one is where the binade would continue.
    let max_v = mags[max_code as usize] as f64;
    let next_past_max = max_v + (max_v - mags[(max_code - 1).max(0) as usize] as f64);
    let at = cx.index(tp, lo, 4);
    let lower = cx.load(types::F32, at, 0);
    let is_max = cx.b.ins().icmp_imm_s(IntCC::Equal, lo, max_code);
    let lo1 = cx.b.ins().iadd_imm_s(lo, 1);
    let lo1c = cx.iconst(max_code);
    let lo1s = cx.b.ins().smin(lo1, lo1c);
    let at = cx.index(tp, lo1s, 4);
    let upper = cx.load(types::F32, at, 0);
    let upper = cx.b.ins().fpromote(types::F64, upper);
    let past = cx.b.ins().f64const(next_past_max);
    let upper = cx.b.ins().select(is_max, past, upper);
    let a64 = cx.b.ins().fpromote(types::F64, a);
    let l64 = cx.b.ins().fpromote(types::F64, lower);
    let d1 = cx.b.ins().fsub(a64, l64);
    let d2 = cx.b.ins().fsub(upper, a64);
    let nearer = cx.b.ins().fcmp(FloatCC::LessThan, d2, d1);
    let tie = cx.b.ins().fcmp(FloatCC::Equal, d2, d1);
    let odd = cx.b.ins().band_imm_s(lo, 1);
    let odd = cx.b.ins().icmp_imm_s(IntCC::NotEqual, odd, 0);
    let tie_up = cx.b.ins().band(tie, odd);
    let up = cx.b.ins().bor(nearer, tie_up);
    let mut code = cx.b.ins().select(up, lo1, lo);
    // Beyond the largest finite magnitude (infinity included).
    let over =
        cx.b.ins()
            .icmp_imm_s(IntCC::SignedGreaterThan, code, max_code);
    let inf = cx.fconst(Lanes::One, f32::INFINITY);
    let is_inf = cx.b.ins().fcmp(FloatCC::Equal, a, inf);
    let over = cx.b.ins().bor(over, is_inf);
    let oc = cx.iconst(overflow);
    code = cx.b.ins().select(over, oc, code);
    // The sign, unless the code is the FNUZ NaN/overflow code or an FNUZ zero.
    let xb = cx.b.ins().bitcast(types::I32, bc(), x);
    let neg = cx.b.ins().icmp_imm_s(IntCC::SignedLessThan, xb, 0);
    let signed = cx.b.ins().bor_imm_s(code, sign_bit);
    let keep = if fnuz {
        let z = cx.b.ins().icmp_imm_s(IntCC::Equal, code, 0);
        let total = cx.b.ins().icmp_imm_s(IntCC::Equal, code, 0x80);
        let no = cx.b.ins().bor(z, total);
        let yes = cx.b.ins().bxor_imm_s(no, 1);
        cx.b.ins().band(neg, yes)
    } else {
        neg
    };
    code = cx.b.ins().select(keep, signed, code);
    let is_nan = cx.b.ins().fcmp(FloatCC::Unordered, x, x);
    let nc = cx.iconst(nan_code);
    Ok(cx.b.ins().select(is_nan, nc, code))
}

/// The 8- and 4-bit float formats read through a table of their values (every code decoded at
/// compile time): the code's bits and the table. Writing them is not supported.
pub(crate) fn decoded(d: DType) -> Option<(u32, Vec<f32>)> {
    // (exponent bits, mantissa bits, bias)
    let (e, m, bias) = match d {
        DType::F8E4M3FN => (4, 3, 7),
        DType::F8E4M3FNUZ => (4, 3, 8),
        DType::F8E5M2 => (5, 2, 15),
        DType::F8E5M2FNUZ => (5, 2, 16),
        DType::F4E2M1 => (2, 1, 1),
        DType::F8E8M0 => {
            let t = (0..256u32)
                .map(|c| {
                    if c == 255 {
                        f32::NAN
                    } else {
                        (2.0f64).powi(c as i32 - 127) as f32
                    }
                })
                .collect();
            return Some((8, t));
        }
        _ => return None,
    };
    let bits = 1 + e + m;
    let fnuz = matches!(d, DType::F8E4M3FNUZ | DType::F8E5M2FNUZ);
    let table = (0..1u32 << bits)
        .map(|c| {
            let neg = c >> (e + m) & 1 == 1;
            let ex = (c >> m) & ((1 << e) - 1);
            let mm = c & ((1 << m) - 1);
            let emax = (1 << e) - 1;
            if fnuz && c == 1 << (e + m) {
                return f32::NAN;
            }
            if d == DType::F8E4M3FN && ex == emax && mm == (1 << m) - 1 {
                return f32::NAN;
            }
            if d == DType::F8E5M2 && ex == emax {
                return match (mm, neg) {
                    (0, false) => f32::INFINITY,
                    (0, true) => f32::NEG_INFINITY,
                    _ => f32::NAN,
                };
            }
            let frac = mm as f64 / (1u32 << m) as f64;
            let v = if ex == 0 {
                frac * (2.0f64).powi(1 - bias)
            } else {
                (1.0 + frac) * (2.0f64).powi(ex as i32 - bias)
            };
            (if neg { -v } else { v }) as f32
        })
        .collect();
    Some((bits, table))
}

/// The packed sub-byte integer dtypes, low bits first in each byte: (bits, signed).
pub(crate) fn packed(d: DType) -> Option<(u32, bool)> {
    match d {
        DType::I4 => Some((4, true)),
        DType::U4 => Some((4, false)),
        DType::I2 => Some((2, true)),
        DType::U2 => Some((2, false)),
        _ => None,
    }
}

/// Element `i` (an i64 index) of a tensor at `p`: a packed element sign- or zero-extended to
/// i64 (its dtype is then I64), any other element as loaded.
pub(crate) fn load_elem(cx: &mut Ctx, p: Value, i: Value, d: DType) -> R<(Value, DType)> {
    if super::float8::is_f8(d) {
        // The code as loaded: [`cast`] decodes the 8-bit floats.
        let a = cx.b.ins().iadd(p, i);
        return Ok((cx.load(types::I8, a, 0), d));
    }
    if let Some((bits, table)) = decoded(d) {
        // The code (a byte, or a packed nibble), then its value from the table.
        let code = if bits == 8 {
            let a = cx.b.ins().iadd(p, i);
            let c = cx.load(types::I8, a, 0);
            cx.b.ins().uextend(types::I64, c)
        } else {
            let byte_at = cx.b.ins().ushr_imm_s(i, 1);
            let a = cx.b.ins().iadd(p, byte_at);
            let c = cx.load(types::I8, a, 0);
            let c = cx.b.ins().uextend(types::I64, c);
            let slot = cx.b.ins().band_imm_s(i, 1);
            let shift = cx.b.ins().imul_imm_s(slot, 4);
            let c = cx.b.ins().ushr(c, shift);
            cx.b.ins().band_imm_s(c, 15)
        };
        let t = cx.add_f32s(&table);
        let a = cx.index(t, code, 4);
        return Ok((cx.load(types::F32, a, 0), DType::F32));
    }
    if let Some((bits, signed)) = packed(d) {
        let per = (8 / bits) as i64;
        let byte_at = cx.b.ins().udiv_imm_s(i, per);
        let a = cx.b.ins().iadd(p, byte_at);
        let byte = cx.load(types::I8, a, 0);
        let byte = cx.b.ins().uextend(types::I64, byte);
        let slot = cx.b.ins().band_imm_s(i, per - 1);
        let shift = cx.b.ins().imul_imm_s(slot, bits as i64);
        let v = cx.b.ins().ushr(byte, shift);
        let v = cx.b.ins().band_imm_s(v, (1i64 << bits) - 1);
        let v = if signed {
            let up = cx.b.ins().ishl_imm_s(v, 64 - bits as i64);
            cx.b.ins().sshr_imm_s(up, 64 - bits as i64)
        } else {
            v
        };
        return Ok((v, DType::I64));
    }
    let ty = clif_ty(d).ok_or("unsupported cast source")?;
    let a = cx.index(p, i, super::elem_bytes(d) as i64);
    Ok((cx.load(ty, a, 0), d))
}

/// Cast from or to a packed sub-byte integer type or an 8-/4-bit float, one element at a time. Into the packed
/// type, values are truncated toward zero and wrapped to the type's bits (as numpy/ml_dtypes'
/// `astype`: -9 becomes 7 in int4); the output is written a whole byte at a time.
fn cast_packed(cx: &mut Ctx, io: &NodeIo, x: &Operand, out: &Operand, saturate: bool) -> R<()> {
    let (from, to) = (x.dtype, out.dtype);
    let n = x.len();
    if out.len() != n {
        return Err("Cast's output does not fit its input".into());
    }
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, out)?;
    if encoded(to) {
        let code_of = move |cx: &mut Ctx, i: Value| -> R<Value> {
            let (v, d) = load_elem(cx, xp, i, from)?;
            let f = cast(cx, v, d, DType::F32)?;
            encode_small_float(cx, f, to, saturate)
        };
        if to == DType::F4E2M1 {
            return write_packed(cx, yp, n, 4, &code_of);
        }
        return cx.for_n(n, |cx, i| {
            let c = code_of(cx, i)?;
            let b = cx.b.ins().ireduce(types::I8, c);
            let a = cx.b.ins().iadd(yp, i);
            cx.store(b, a, 0);
            Ok(())
        });
    }
    let Some((bits, _)) = packed(to) else {
        let e = super::elem_bytes(to) as i64;
        return cx.for_n(n, |cx, i| {
            let (v, d) = load_elem(cx, xp, i, from)?;
            let r = cast(cx, v, d, to)?;
            let a = cx.index(yp, i, e);
            cx.store(r, a, 0);
            Ok(())
        });
    };
    write_packed(cx, yp, n, bits, &move |cx, i| {
        let (v, d) = load_elem(cx, xp, i, from)?;
        if matches!(d, DType::F32 | DType::F64) {
            Ok(cx.b.ins().fcvt_to_sint_sat(types::I64, v))
        } else {
            // Integers, and f16/bf16/8-bit floats (converted through f32 by `cast`).
            cast(cx, v, d, DType::I64)
        }
    })
}

/// Writes `n` packed elements of `bits` bits at `yp`, a whole byte at a time: element `i` is
/// the low bits of the i64 `value(i)`.
pub(crate) fn write_packed(
    cx: &mut Ctx,
    yp: Value,
    n: usize,
    bits: u32,
    value: &dyn Fn(&mut Ctx, Value) -> R<Value>,
) -> R<()> {
    let per = (8 / bits) as usize;
    let byte = |cx: &mut Ctx, j: Value, count: usize| -> R<()> {
        let mut acc = cx.iconst(0);
        for k in 0..count {
            let base = cx.b.ins().imul_imm_s(j, per as i64);
            let i = cx.b.ins().iadd_imm_s(base, k as i64);
            let v = value(cx, i)?;
            let v = cx.b.ins().band_imm_s(v, (1i64 << bits) - 1);
            let v = cx.b.ins().ishl_imm_s(v, (k as u32 * bits) as i64);
            acc = cx.b.ins().bor(acc, v);
        }
        let b = cx.b.ins().ireduce(types::I8, acc);
        let a = cx.b.ins().iadd(yp, j);
        cx.store(b, a, 0);
        Ok(())
    };
    cx.for_n(n / per, |cx, j| byte(cx, j, per))?;
    if !n.is_multiple_of(per) {
        let j = cx.iconst((n / per) as i64);
        byte(cx, j, n % per)?;
    }
    Ok(())
}

/// Broadcast strides (in elements) of an input of `dims` read at every point of `out`.
pub(crate) fn bcast_strides(dims: &[usize], out: &[usize]) -> Vec<i64> {
    let st = strides(dims);
    let pad = out.len() - dims.len().min(out.len());
    (0..out.len())
        .map(|i| {
            if i < pad {
                0
            } else {
                let k = i - pad;
                if dims[k] == 1 && out[i] != 1 {
                    0
                } else {
                    st[k]
                }
            }
        })
        .collect()
}

/// Runs `f` at every element of `out`, reading `ins` with numpy broadcasting.
pub(crate) fn map(cx: &mut Ctx, io: &NodeIo, out: &Operand, ins: &[&Operand], f: &Body) -> R<()> {
    map_with(cx, io, out, ins, true, f)
}

/// [`map`] for bodies that only take one lane at a time.
pub(crate) fn map_scalar(
    cx: &mut Ctx,
    io: &NodeIo,
    out: &Operand,
    ins: &[&Operand],
    f: &Body,
) -> R<()> {
    map_with(cx, io, out, ins, false, f)
}

fn map_with(
    cx: &mut Ctx,
    io: &NodeIo,
    out: &Operand,
    ins: &[&Operand],
    allow_vec: bool,
    f: &Body,
) -> R<()> {
    let out_ty = clif_ty(out.dtype).ok_or("unsupported output dtype")?;
    let in_tys: Vec<types::Type> = ins
        .iter()
        .map(|x| clif_ty(x.dtype).ok_or_else(|| format!("unsupported input dtype {}", x.dtype)))
        .collect::<R<_>>()?;
    // Strides of every operand over the output's dims (output first), in elements.
    let mut dims = out.dims.clone();
    let mut st: Vec<Vec<i64>> = vec![strides(&out.dims)];
    for x in ins {
        if x.dims.len() > out.dims.len() {
            return Err("an input has a higher rank than the output".into());
        }
        // Every input dim must be 1 or the output's (numpy broadcasting): anything else would
        // read outside the input.
        let pad = out.dims.len() - x.dims.len();
        if x.dims
            .iter()
            .enumerate()
            .any(|(k, d)| *d != 1 && *d != out.dims[pad + k])
        {
            return Err(format!(
                "input dims {:?} do not broadcast to {:?}",
                x.dims, out.dims
            ));
        }
        st.push(bcast_strides(&x.dims, &out.dims));
    }
    // Drop unit dims, then merge dims where every operand is contiguous across them.
    let keep: Vec<usize> = (0..dims.len()).filter(|i| dims[*i] != 1).collect();
    dims = keep.iter().map(|i| dims[*i]).collect();
    for s in st.iter_mut() {
        *s = keep.iter().map(|i| s[*i]).collect();
    }
    let mut k = dims.len();
    while k >= 2 {
        let (a, b) = (k - 2, k - 1);
        if st.iter().all(|s| s[a] == s[b] * dims[b] as i64) {
            dims[b] *= dims[a];
            dims.remove(a);
            for s in st.iter_mut() {
                s.remove(a);
            }
        }
        k -= 1;
    }
    if dims.is_empty() {
        dims.push(1);
        for s in st.iter_mut() {
            s.push(0);
        }
    }
    let inner = *dims.last().unwrap_or(&1);
    let outer = &dims[..dims.len() - 1];
    let inner_st: Vec<i64> = st.iter().map(|s| *s.last().unwrap_or(&0)).collect();
    let all_f32 = out.dtype == DType::F32 && ins.iter().all(|x| x.dtype == DType::F32);
    let vec_ok = allow_vec && all_f32 && inner >= 4 && inner_st.iter().all(|s| *s == 0 || *s == 1);

    let elems: Vec<i64> = std::iter::once(out.elem() as i64)
        .chain(ins.iter().map(|x| x.elem() as i64))
        .collect();
    let byte_st: Vec<Vec<i64>> = st
        .iter()
        .zip(&elems)
        .map(|(s, e)| s[..s.len() - 1].iter().map(|x| x * e).collect())
        .collect();
    let mut bases = vec![cx.addr(io.g, out)?];
    for x in ins {
        bases.push(cx.addr(io.g, x)?);
    }
    let mut body = |cx: &mut Ctx, ptrs: &[Value]| -> R<()> {
        let mut done = 0usize;
        if vec_ok {
            let nv = inner / 4;
            // Broadcast inputs: one scalar, splat once per row.
            let mut splats: Vec<Option<Value>> = vec![];
            for (k, s) in inner_st[1..].iter().enumerate() {
                if *s == 0 {
                    let v = cx.load(types::F32, ptrs[k + 1], 0);
                    splats.push(Some(cx.b.ins().splat(types::F32X4, v)));
                } else {
                    splats.push(None);
                }
            }
            cx.for_n(nv, |cx, i| {
                let off = cx.b.ins().imul_imm_s(i, 16);
                let mut args = vec![];
                for (k, sp) in splats.iter().enumerate() {
                    args.push(match sp {
                        Some(v) => *v,
                        None => {
                            let a = cx.b.ins().iadd(ptrs[k + 1], off);
                            cx.load(types::F32X4, a, 0)
                        }
                    });
                }
                let r = f(cx, Lanes::Four, &args)?;
                let a = cx.b.ins().iadd(ptrs[0], off);
                cx.store(r, a, 0);
                Ok(())
            })?;
            done = nv * 4;
        }
        let rest = inner - done;
        let scalar_at = |cx: &mut Ctx, i: Value| -> R<()> {
            let mut args = vec![];
            for (k, ty) in in_tys.iter().enumerate() {
                let a = cx.index(ptrs[k + 1], i, inner_st[k + 1] * elems[k + 1]);
                let a = cx.offset(a, done as i64 * inner_st[k + 1] * elems[k + 1]);
                args.push(cx.load(*ty, a, 0));
            }
            let r = f(cx, Lanes::One, &args)?;
            let r = fit(cx, r, out_ty);
            let a = cx.index(ptrs[0], i, elems[0]);
            let a = cx.offset(a, done as i64 * elems[0]);
            cx.store(r, a, 0);
            Ok(())
        };
        if vec_ok && rest < 4 {
            for t in 0..rest {
                let i = cx.iconst(t as i64);
                scalar_at(cx, i)?;
            }
            Ok(())
        } else {
            cx.for_n(rest, scalar_at)
        }
    };
    cx.nest(outer, &byte_st, bases, &mut body)
}

/// Narrows or widens an integer result to the type stored (comparisons give i8 already).
fn fit(cx: &mut Ctx, v: Value, ty: types::Type) -> Value {
    let vt = cx.b.func.dfg.value_type(v);
    if vt == ty || !vt.is_int() || !ty.is_int() {
        return v;
    }
    if vt.bits() > ty.bits() {
        cx.b.ins().ireduce(ty, v)
    } else {
        cx.b.ins().uextend(ty, v)
    }
}

/// A constant scalar of a constant input (Clip bounds, Pow exponents).
fn const_scalar(io: &NodeIo, i: usize) -> Option<f64> {
    let t = io.konst(i)?;
    if t.len() != 1 {
        return None;
    }
    t.to_f64_vec()?.first().copied()
}

fn is_float(cx: &Ctx, v: Value) -> bool {
    cx.b.func.dfg.value_type(v).lane_type().is_float()
}

/// The elementwise ops the IR keeps opaque that the backend lowers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OpaqueEw {
    /// `gamma * (x > 0 ? x : alpha * (e^x - 1))`.
    Selu(f32, f32),
    /// `max(0, x) + min(0, alpha * (e^(x / alpha) - 1))`.
    Celu(f32),
    /// `x > alpha ? x : 0`.
    ThresholdedRelu(f32),
    /// Infinities (positive, negative) as bool.
    IsInf(bool, bool),
    /// Bitwise and, or, xor of two integer tensors of one shape.
    Bitwise(u8),
    /// Bitwise not.
    BitwiseNot,
}

/// The [`OpaqueEw`] of an opaque node, if the backend lowers it (known attributes only).
pub(crate) fn opaque_elementwise(op: &Op) -> Option<OpaqueEw> {
    let Op::Opaque(o) = op else { return None };
    if !(o.domain.is_empty() || o.domain == "ai.onnx") {
        return None;
    }
    let f = |name: &str, def: f32| -> Option<f32> {
        match o.attrs.iter().find(|(n, _)| n == name) {
            None => Some(def),
            Some((_, smelt_ir::Attr::Float(v))) => Some(*v),
            Some(_) => None,
        }
    };
    let i = |name: &str, def: i64| -> Option<i64> {
        match o.attrs.iter().find(|(n, _)| n == name) {
            None => Some(def),
            Some((_, smelt_ir::Attr::Int(v))) => Some(*v),
            Some(_) => None,
        }
    };
    let only = |names: &[&str]| o.attrs.iter().all(|(n, _)| names.contains(&n.as_str()));
    Some(match o.op_type.as_str() {
        "Selu" if only(&["alpha", "gamma"]) => {
            OpaqueEw::Selu(f("alpha", 1.673_263_2)?, f("gamma", 1.050_701)?)
        }
        "Celu" if only(&["alpha"]) => OpaqueEw::Celu(f("alpha", 1.0)?),
        "ThresholdedRelu" if only(&["alpha"]) => OpaqueEw::ThresholdedRelu(f("alpha", 1.0)?),
        "IsInf" if only(&["detect_positive", "detect_negative"]) => {
            OpaqueEw::IsInf(i("detect_positive", 1)? != 0, i("detect_negative", 1)? != 0)
        }
        "BitwiseAnd" if only(&[]) => OpaqueEw::Bitwise(0),
        "BitwiseOr" if only(&[]) => OpaqueEw::Bitwise(1),
        "BitwiseXor" if only(&[]) => OpaqueEw::Bitwise(2),
        "BitwiseNot" if only(&[]) => OpaqueEw::BitwiseNot,
        _ => return None,
    })
}

/// Why an [`OpaqueEw`] node cannot be lowered, if it cannot; `a` and `b` are its inputs'
/// dtypes and (when known) static dims.
pub(crate) fn check_opaque_elementwise(
    op: OpaqueEw,
    a: (Option<DType>, Option<Vec<usize>>),
    b: (Option<DType>, Option<Vec<usize>>),
) -> R<()> {
    let int = |d: Option<DType>| d.is_some_and(|d| d.is_int() && clif_ty(d).is_some());
    match op {
        OpaqueEw::Bitwise(_) => {
            if !int(a.0) || a.0 != b.0 {
                return Err("bitwise ops take two integer tensors of one dtype".into());
            }
            match (a.1, b.1) {
                (Some(x), Some(y)) if x == y => Ok(()),
                _ => Err("bitwise ops are lowered for two inputs of one static shape".into()),
            }
        }
        OpaqueEw::BitwiseNot if int(a.0) => Ok(()),
        OpaqueEw::BitwiseNot => Err("BitwiseNot takes an integer tensor".into()),
        _ if a.0 == Some(DType::F32) => Ok(()),
        _ => Err(format!("{:?} inputs are not supported (f32 only)", a.0)),
    }
}

/// Lowers an [`OpaqueEw`] node.
pub(crate) fn lower_opaque(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let op = opaque_elementwise(io.op()).ok_or("not a lowered opaque elementwise op")?;
    let out = io.output(0)?.clone();
    let x = io.input(0)?.clone();
    match op {
        OpaqueEw::Selu(alpha, gamma) => map_scalar(cx, io, &out, &[&x], &move |cx, l, a| {
            let e = math::exp(cx, l, a[0]);
            let one = cx.fconst(l, 1.0);
            let em1 = cx.b.ins().fsub(e, one);
            let al = cx.fconst(l, alpha);
            let neg = cx.b.ins().fmul(em1, al);
            let z = cx.fconst(l, 0.0);
            let gt = cx.fcmp(FloatCC::GreaterThan, a[0], z);
            let v = cx.select(l, gt, a[0], neg);
            let g = cx.fconst(l, gamma);
            Ok(cx.b.ins().fmul(v, g))
        }),
        OpaqueEw::Celu(alpha) => map_scalar(cx, io, &out, &[&x], &move |cx, l, a| {
            let al = cx.fconst(l, alpha);
            let q = cx.b.ins().fdiv(a[0], al);
            let e = math::exp(cx, l, q);
            let one = cx.fconst(l, 1.0);
            let em1 = cx.b.ins().fsub(e, one);
            let neg = cx.b.ins().fmul(em1, al);
            let z = cx.fconst(l, 0.0);
            let pos = cx.b.ins().fmax(a[0], z);
            let neg = cx.b.ins().fmin(neg, z);
            Ok(cx.b.ins().fadd(pos, neg))
        }),
        OpaqueEw::ThresholdedRelu(alpha) => map_scalar(cx, io, &out, &[&x], &move |cx, l, a| {
            let al = cx.fconst(l, alpha);
            let z = cx.fconst(l, 0.0);
            let gt = cx.fcmp(FloatCC::GreaterThan, a[0], al);
            Ok(cx.select(l, gt, a[0], z))
        }),
        OpaqueEw::IsInf(pos, neg) => map_scalar(cx, io, &out, &[&x], &move |cx, l, a| {
            let inf = cx.fconst(l, f32::INFINITY);
            let ninf = cx.fconst(l, f32::NEG_INFINITY);
            let p = cx.b.ins().fcmp(FloatCC::Equal, a[0], inf);
            let n = cx.b.ins().fcmp(FloatCC::Equal, a[0], ninf);
            let f = cx.b.ins().iconst(types::I8, 0);
            let p = if pos { p } else { f };
            let n = if neg { n } else { f };
            Ok(cx.b.ins().bor(p, n))
        }),
        OpaqueEw::Bitwise(k) => {
            let y = io.input(1)?.clone();
            map_scalar(cx, io, &out, &[&x, &y], &move |cx, _, a| {
                Ok(match k {
                    0 => cx.b.ins().band(a[0], a[1]),
                    1 => cx.b.ins().bor(a[0], a[1]),
                    _ => cx.b.ins().bxor(a[0], a[1]),
                })
            })
        }
        OpaqueEw::BitwiseNot => {
            map_scalar(cx, io, &out, &[&x], &|cx, _, a| Ok(cx.b.ins().bnot(a[0])))
        }
    }
}

/// Lowers every elementwise op.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let out = io.output(0)?.clone();
    let x = io.input(0)?.clone();
    let dt = x.dtype;
    let float = matches!(dt, DType::F32 | DType::F64);
    let signed = matches!(dt, DType::I32 | DType::I64 | DType::I8 | DType::I16);
    let un = |cx: &mut Ctx, f: &Body| map(cx, io, &out, &[&x], f);
    match io.op() {
        Op::Relu(_) => un(cx, &|cx, l, a| {
            let z = cx.fconst(l, 0.0);
            Ok(cx.b.ins().fmax(a[0], z))
        }),
        Op::Sigmoid(_) => un(cx, &|cx, l, a| Ok(math::sigmoid(cx, l, a[0]))),
        Op::Tanh(_) => un(cx, &|cx, l, a| Ok(math::tanh(cx, l, a[0]))),
        Op::Erf(_) => un(cx, &|cx, l, a| Ok(math::erf(cx, l, a[0]))),
        Op::Exp(_) if dt == DType::F64 => {
            map_scalar(cx, io, &out, &[&x], &|cx, _, a| Ok(math::exp_f64(cx, a[0])))
        }
        Op::Exp(_) => un(cx, &|cx, l, a| Ok(math::exp(cx, l, a[0]))),
        Op::Sin(_) => un(cx, &|cx, l, a| Ok(math::sincos(cx, l, a[0], false))),
        Op::Cos(_) => un(cx, &|cx, l, a| Ok(math::sincos(cx, l, a[0], true))),
        Op::Log(_) if dt == DType::F64 => {
            map_scalar(cx, io, &out, &[&x], &|cx, _, a| Ok(math::log_f64(cx, a[0])))
        }
        Op::Log(_) => un(cx, &|cx, l, a| Ok(math::log(cx, l, a[0]))),
        Op::Sqrt(_) => un(cx, &|cx, _, a| Ok(cx.b.ins().sqrt(a[0]))),
        Op::Reciprocal(_) => un(cx, &|cx, l, a| {
            let one = cx.fconst(l, 1.0);
            Ok(cx.b.ins().fdiv(one, a[0]))
        }),
        Op::Neg(_) => un(cx, &|cx, _, a| {
            Ok(if is_float(cx, a[0]) {
                cx.b.ins().fneg(a[0])
            } else {
                cx.b.ins().ineg(a[0])
            })
        }),
        Op::Abs(_) => un(cx, &|cx, _, a| {
            Ok(if is_float(cx, a[0]) {
                cx.b.ins().fabs(a[0])
            } else {
                cx.b.ins().iabs(a[0])
            })
        }),
        Op::Sign(_) => un(cx, &|cx, l, a| {
            if is_float(cx, a[0]) {
                let z = cx.fconst(l, 0.0);
                let one = cx.fconst(l, 1.0);
                let m1 = cx.fconst(l, -1.0);
                let gt = cx.fcmp(FloatCC::GreaterThan, a[0], z);
                let lt = cx.fcmp(FloatCC::LessThan, a[0], z);
                let s = cx.select(l, lt, m1, z);
                let s = cx.select(l, gt, one, s);
                // NaN stays NaN.
                let nan = cx.fcmp(FloatCC::Unordered, a[0], a[0]);
                Ok(cx.select(l, nan, a[0], s))
            } else {
                let ty = cx.b.func.dfg.value_type(a[0]);
                let z = cx.b.ins().iconst(ty, 0);
                let one = cx.b.ins().iconst(ty, 1);
                let m1 = cx.b.ins().iconst(ty, -1);
                let gt = cx.b.ins().icmp(IntCC::SignedGreaterThan, a[0], z);
                let lt = cx.b.ins().icmp(IntCC::SignedLessThan, a[0], z);
                let s = cx.b.ins().select(lt, m1, z);
                Ok(cx.b.ins().select(gt, one, s))
            }
        }),
        Op::Softplus(_) => un(cx, &|cx, l, a| {
            // max(x, 0) + log(1 + exp(-|x|)): no overflow for large x.
            let z = cx.fconst(l, 0.0);
            let one = cx.fconst(l, 1.0);
            let pos = cx.b.ins().fmax(a[0], z);
            let ax = cx.b.ins().fabs(a[0]);
            let nax = cx.b.ins().fneg(ax);
            let e = math::exp(cx, l, nax);
            let s = cx.b.ins().fadd(one, e);
            let lg = math::log(cx, l, s);
            Ok(cx.b.ins().fadd(pos, lg))
        }),
        Op::Softsign(_) => un(cx, &|cx, l, a| {
            let one = cx.fconst(l, 1.0);
            let ax = cx.b.ins().fabs(a[0]);
            let d = cx.b.ins().fadd(one, ax);
            Ok(cx.b.ins().fdiv(a[0], d))
        }),
        Op::Floor(_) => un(cx, &|cx, _, a| Ok(cx.b.ins().floor(a[0]))),
        Op::Ceil(_) => un(cx, &|cx, _, a| Ok(cx.b.ins().ceil(a[0]))),
        Op::Round(_) => un(cx, &|cx, _, a| Ok(cx.b.ins().nearest(a[0]))),
        Op::LeakyRelu(o) => {
            let alpha = o.alpha;
            un(cx, &move |cx, l, a| {
                let z = cx.fconst(l, 0.0);
                let al = cx.fconst(l, alpha);
                let neg = cx.b.ins().fmul(a[0], al);
                let ge = cx.fcmp(FloatCC::GreaterThanOrEqual, a[0], z);
                Ok(cx.select(l, ge, a[0], neg))
            })
        }
        Op::Elu(o) => {
            let alpha = o.alpha;
            un(cx, &move |cx, l, a| {
                let z = cx.fconst(l, 0.0);
                let one = cx.fconst(l, 1.0);
                let al = cx.fconst(l, alpha);
                let e = math::exp(cx, l, a[0]);
                let em1 = cx.b.ins().fsub(e, one);
                let neg = cx.b.ins().fmul(em1, al);
                let gt = cx.fcmp(FloatCC::GreaterThan, a[0], z);
                Ok(cx.select(l, gt, a[0], neg))
            })
        }
        Op::HardSigmoid(o) => {
            let (alpha, beta) = (o.alpha, o.beta);
            un(cx, &move |cx, l, a| {
                let al = cx.fconst(l, alpha);
                let be = cx.fconst(l, beta);
                let v = cx.fma(a[0], al, be);
                let z = cx.fconst(l, 0.0);
                let one = cx.fconst(l, 1.0);
                let v = cx.b.ins().fmin(v, one);
                Ok(cx.b.ins().fmax(v, z))
            })
        }
        Op::HardSwish(_) => un(cx, &|cx, l, a| {
            let al = cx.fconst(l, 1.0 / 6.0);
            let be = cx.fconst(l, 0.5);
            let v = cx.fma(a[0], al, be);
            let z = cx.fconst(l, 0.0);
            let one = cx.fconst(l, 1.0);
            let v = cx.b.ins().fmin(v, one);
            let v = cx.b.ins().fmax(v, z);
            Ok(cx.b.ins().fmul(a[0], v))
        }),
        Op::Gelu(o) => {
            let tanh_approx = o.approximate == "tanh";
            un(cx, &move |cx, l, a| {
                let half = cx.fconst(l, 0.5);
                let one = cx.fconst(l, 1.0);
                let inner = if tanh_approx {
                    let c = cx.fconst(l, 0.044_715);
                    let k = cx.fconst(l, (2.0f64 / std::f64::consts::PI).sqrt() as f32);
                    let x2 = cx.b.ins().fmul(a[0], a[0]);
                    let x3 = cx.b.ins().fmul(x2, a[0]);
                    let s = cx.fma(x3, c, a[0]);
                    let s = cx.b.ins().fmul(s, k);
                    math::tanh(cx, l, s)
                } else {
                    let k = cx.fconst(l, std::f32::consts::FRAC_1_SQRT_2);
                    let s = cx.b.ins().fmul(a[0], k);
                    math::erf(cx, l, s)
                };
                let t = cx.b.ins().fadd(one, inner);
                let hx = cx.b.ins().fmul(a[0], half);
                Ok(cx.b.ins().fmul(hx, t))
            })
        }
        Op::Clip(_) => {
            let lo = if io.opt_input(1).is_some() {
                Some(const_scalar(io, 1).ok_or("Clip's min must be a constant scalar")?)
            } else {
                None
            };
            let hi = if io.opt_input(2).is_some() {
                Some(const_scalar(io, 2).ok_or("Clip's max must be a constant scalar")?)
            } else {
                None
            };
            // Integer bounds exactly (a u64 or i64 bound does not survive f64).
            let int_bound = |i: usize| {
                io.konst(i)
                    .and_then(|t| t.to_i64_vec())
                    .and_then(|v| v.first().copied())
            };
            let (ilo, ihi) = (int_bound(1), int_bound(2));
            if !float && (lo.is_some() != ilo.is_some() || hi.is_some() != ihi.is_some()) {
                return Err("Clip's bounds must be integer constants".into());
            }
            un(cx, &move |cx, l, a| {
                let mut v = a[0];
                if float {
                    if let Some(lo) = lo {
                        let c = cx.fconst(l, lo as f32);
                        v = cx.b.ins().fmax(v, c);
                    }
                    if let Some(hi) = hi {
                        let c = cx.fconst(l, hi as f32);
                        v = cx.b.ins().fmin(v, c);
                    }
                } else {
                    let ty = cx.b.func.dfg.value_type(v);
                    if let Some(lo) = ilo {
                        let c = cx.b.ins().iconst(ty, lo);
                        v = if signed {
                            cx.b.ins().smax(v, c)
                        } else {
                            cx.b.ins().umax(v, c)
                        };
                    }
                    if let Some(hi) = ihi {
                        let c = cx.b.ins().iconst(ty, hi);
                        v = if signed {
                            cx.b.ins().smin(v, c)
                        } else {
                            cx.b.ins().umin(v, c)
                        };
                    }
                }
                Ok(v)
            })
        }
        Op::IsNaN(_) => un(cx, &|cx, _, a| {
            Ok(cx.b.ins().fcmp(FloatCC::Unordered, a[0], a[0]))
        }),
        Op::Not(_) => un(cx, &|cx, _, a| Ok(cx.b.ins().bxor_imm_s(a[0], 1))),
        Op::Cast(c) if by_element(dt, c.to) => cast_packed(cx, io, &x, &out, c.saturate != 0),
        Op::Cast(c) => {
            let (from, to, sat) = (dt, c.to, c.saturate != 0);
            un(cx, &move |cx, _, a| {
                cast_saturating(cx, a[0], from, to, sat)
            })
        }
        Op::Identity(_) | Op::Dropout(_) => un(cx, &|_, _, a| Ok(a[0])),
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Min(_) | Op::Max(_)
            if is_half(dt) =>
        {
            // Half floats through f32: one f32 operation on two half values, rounded once
            // to half, is the correctly rounded half result (f32 has more than twice the
            // precision plus two bits), so this is half arithmetic, not an approximation.
            let ins: Vec<Operand> = io.ins.iter().flatten().cloned().collect();
            let refs: Vec<&Operand> = ins.iter().collect();
            let op = io.op().clone();
            map(cx, io, &out, &refs, &move |cx, _, a| {
                let f: Vec<Value> = a.iter().map(|v| half_to_f32(cx, *v, dt)).collect();
                let mut acc = f[0];
                for v in &f[1..] {
                    acc = match &op {
                        Op::Min(_) => cx.b.ins().fmin(acc, *v),
                        Op::Max(_) => cx.b.ins().fmax(acc, *v),
                        op => arith(cx, op, acc, *v, true, false)?,
                    };
                }
                Ok(f32_to_half(cx, acc, dt))
            })
        }
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) => {
            let y = io.input(1)?.clone();
            let op = io.op().clone();
            map(cx, io, &out, &[&x, &y], &move |cx, _, a| {
                arith(cx, &op, a[0], a[1], float, signed)
            })
        }
        Op::Mod(o) => {
            let y = io.input(1)?.clone();
            let fmod = o.fmod != 0;
            map_scalar(cx, io, &out, &[&x, &y], &move |cx, _, a| {
                Ok(if float {
                    float_mod(cx, a[0], a[1], fmod)
                } else if signed {
                    int_mod(cx, a[0], a[1], fmod)
                } else {
                    uint_mod(cx, a[0], a[1])
                })
            })
        }
        Op::Pow(_) if !float => {
            // Integer base: the result has the base's dtype (ONNX: numpy's power, cast back).
            let y = io.input(1)?.clone();
            let (xdt, ydt) = (dt, y.dtype);
            map_scalar(cx, io, &out, &[&x, &y], &move |cx, _, a| {
                if ydt.is_int() {
                    let e = cast(cx, a[1], ydt, DType::I64)?;
                    return Ok(int_pow(cx, a[0], e, ydt.bits() as u32, signed));
                }
                // A float exponent: exact when it is an integer, else e^(y ln x) truncated.
                let yf = cast(cx, a[1], ydt, DType::F64)?;
                let e = cx.b.ins().fcvt_to_sint_sat(types::I64, yf);
                let back = cx.b.ins().fcvt_from_sint(types::F64, e);
                let integral = cx.b.ins().fcmp(FloatCC::Equal, back, yf);
                let exact = int_pow(cx, a[0], e, 64, signed);
                let xf = cast(cx, a[0], xdt, DType::F64)?;
                let lx = math::log_f64(cx, xf);
                let t = cx.b.ins().fmul(yf, lx);
                let p = math::exp_f64(cx, t);
                let real = cast(cx, p, DType::F64, xdt)?;
                Ok(cx.b.ins().select(integral, exact, real))
            })
        }
        Op::Pow(_) => {
            let y = io.input(1)?.clone();
            match const_scalar(io, 1) {
                Some(1.0) => un(cx, &|_, _, a| Ok(a[0])),
                Some(2.0) => un(cx, &|cx, _, a| Ok(cx.b.ins().fmul(a[0], a[0]))),
                Some(3.0) => un(cx, &|cx, _, a| {
                    let s = cx.b.ins().fmul(a[0], a[0]);
                    Ok(cx.b.ins().fmul(s, a[0]))
                }),
                Some(0.5) => un(cx, &|cx, _, a| Ok(cx.b.ins().sqrt(a[0]))),
                Some(-1.0) => un(cx, &|cx, l, a| {
                    let one = cx.fconst(l, 1.0);
                    Ok(cx.b.ins().fdiv(one, a[0]))
                }),
                _ if y.dtype == DType::F32 => map(cx, io, &out, &[&x, &y], &|cx, l, a| {
                    Ok(math::pow(cx, l, a[0], a[1]))
                }),
                _ if pow_exponent_supported(y.dtype) => {
                    // An integer exponent, converted to f32 as ONNX's reference does.
                    let ydt = y.dtype;
                    map_scalar(cx, io, &out, &[&x, &y], &move |cx, _, a| {
                        let e = cast(cx, a[1], ydt, DType::F32)?;
                        Ok(math::pow(cx, Lanes::One, a[0], e))
                    })
                }
                _ => Err(format!("Pow with a {} exponent is not supported", y.dtype)),
            }
        }
        Op::PRelu(_) => {
            let s = io.input(1)?.clone();
            map(cx, io, &out, &[&x, &s], &|cx, l, a| {
                let z = cx.fconst(l, 0.0);
                let neg = cx.b.ins().fmul(a[0], a[1]);
                let ge = cx.fcmp(FloatCC::GreaterThanOrEqual, a[0], z);
                Ok(cx.select(l, ge, a[0], neg))
            })
        }
        Op::Equal(_)
        | Op::Less(_)
        | Op::Greater(_)
        | Op::LessOrEqual(_)
        | Op::GreaterOrEqual(_) => {
            let y = io.input(1)?.clone();
            let op = io.op().clone();
            map(cx, io, &out, &[&x, &y], &move |cx, _, a| {
                let (fc, ic) = match op {
                    Op::Equal(_) => (FloatCC::Equal, IntCC::Equal),
                    Op::Less(_) => (FloatCC::LessThan, IntCC::SignedLessThan),
                    Op::Greater(_) => (FloatCC::GreaterThan, IntCC::SignedGreaterThan),
                    Op::LessOrEqual(_) => (FloatCC::LessThanOrEqual, IntCC::SignedLessThanOrEqual),
                    _ => (FloatCC::GreaterThanOrEqual, IntCC::SignedGreaterThanOrEqual),
                };
                let ic = if signed { ic } else { ic.unsigned() };
                Ok(if is_float(cx, a[0]) {
                    cx.b.ins().fcmp(fc, a[0], a[1])
                } else {
                    cx.b.ins().icmp(ic, a[0], a[1])
                })
            })
        }
        Op::And(_) | Op::Or(_) | Op::Xor(_) => {
            let y = io.input(1)?.clone();
            let op = io.op().clone();
            map(cx, io, &out, &[&x, &y], &move |cx, _, a| {
                Ok(match op {
                    Op::And(_) => cx.b.ins().band(a[0], a[1]),
                    Op::Or(_) => cx.b.ins().bor(a[0], a[1]),
                    _ => cx.b.ins().bxor(a[0], a[1]),
                })
            })
        }
        Op::Where(_) => {
            let a1 = io.input(1)?.clone();
            let a2 = io.input(2)?.clone();
            map(cx, io, &out, &[&x, &a1, &a2], &|cx, _, a| {
                let c = cx.b.ins().icmp_imm_s(IntCC::NotEqual, a[0], 0);
                Ok(cx.b.ins().select(c, a[1], a[2]))
            })
        }
        Op::Min(_) | Op::Max(_) | Op::Sum(_) | Op::Mean(_) => {
            let ins: Vec<Operand> = io.ins.iter().flatten().cloned().collect();
            let refs: Vec<&Operand> = ins.iter().collect();
            let op = io.op().clone();
            let n = refs.len();
            map(cx, io, &out, &refs, &move |cx, l, a| {
                let mut acc = a[0];
                for v in &a[1..] {
                    acc = match (&op, float) {
                        (Op::Min(_), true) => cx.b.ins().fmin(acc, *v),
                        (Op::Max(_), true) => cx.b.ins().fmax(acc, *v),
                        (Op::Min(_), false) if signed => cx.b.ins().smin(acc, *v),
                        (Op::Max(_), false) if signed => cx.b.ins().smax(acc, *v),
                        (Op::Min(_), false) => cx.b.ins().umin(acc, *v),
                        (Op::Max(_), false) => cx.b.ins().umax(acc, *v),
                        (_, true) => cx.b.ins().fadd(acc, *v),
                        (_, false) => cx.b.ins().iadd(acc, *v),
                    };
                }
                if matches!(op, Op::Mean(_)) {
                    if float {
                        let k = cx.fconst(l, n as f32);
                        acc = cx.b.ins().fdiv(acc, k);
                    } else {
                        acc = safe_div(cx, acc, None, n as i64);
                    }
                }
                Ok(acc)
            })
        }
        op => Err(format!("{} is not an elementwise op", op.op_type())),
    }
}

/// `a - trunc(a / b) * b` (fmod) or the remainder with the divisor's sign; the quotient is
/// truncated without `trunc` (which needs SSE4.1 or a libm call): exact below 2^23.
fn float_mod(cx: &mut Ctx, a: Value, b: Value, fmod: bool) -> Value {
    let q = cx.b.ins().fdiv(a, b);
    let qi = cx.b.ins().fcvt_to_sint_sat(types::I64, q);
    let qt = cx.b.ins().fcvt_from_sint(types::F32, qi);
    let aq = cx.b.ins().fabs(q);
    let big = cx.b.ins().f32const(8_388_608.0);
    let is_big = cx.b.ins().fcmp(FloatCC::GreaterThanOrEqual, aq, big);
    let qt = cx.b.ins().select(is_big, q, qt);
    let p = cx.b.ins().fmul(qt, b);
    let r = cx.b.ins().fsub(a, p);
    if fmod {
        return r;
    }
    // Python-style: move a non-zero remainder to the divisor's sign.
    let zero = cx.b.ins().f32const(0.0);
    let rn = cx.b.ins().fcmp(FloatCC::LessThan, r, zero);
    let bn = cx.b.ins().fcmp(FloatCC::LessThan, b, zero);
    let nz = cx.b.ins().fcmp(FloatCC::NotEqual, r, zero);
    let differ = cx.b.ins().bxor(rn, bn);
    let fix = cx.b.ins().band(differ, nz);
    let rb = cx.b.ins().fadd(r, b);
    cx.b.ins().select(fix, rb, r)
}

/// Integer remainder that never traps (a zero divisor gives 0), C or Python sign convention.
fn int_mod(cx: &mut Ctx, a: Value, b: Value, fmod: bool) -> Value {
    let ty = cx.b.func.dfg.value_type(a);
    let zero = cx.b.ins().iconst(ty, 0);
    let one = cx.b.ins().iconst(ty, 1);
    let is_zero = cx.b.ins().icmp(IntCC::Equal, b, zero);
    let is_m1 = cx.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
    let bad = cx.b.ins().bor(is_zero, is_m1);
    let sb = cx.b.ins().select(bad, one, b);
    let r = cx.b.ins().srem(a, sb);
    let r = cx.b.ins().select(bad, zero, r);
    if fmod {
        return r;
    }
    let rn = cx.b.ins().icmp(IntCC::SignedLessThan, r, zero);
    let bn = cx.b.ins().icmp(IntCC::SignedLessThan, b, zero);
    let nz = cx.b.ins().icmp(IntCC::NotEqual, r, zero);
    let differ = cx.b.ins().bxor(rn, bn);
    let fix = cx.b.ins().band(differ, nz);
    let rb = cx.b.ins().iadd(r, b);
    cx.b.ins().select(fix, rb, r)
}

/// Unsigned remainder (both Mod conventions agree); a zero divisor gives 0.
fn uint_mod(cx: &mut Ctx, a: Value, b: Value) -> Value {
    let ty = cx.b.func.dfg.value_type(a);
    let zero = cx.b.ins().iconst(ty, 0);
    let one = cx.b.ins().iconst(ty, 1);
    let is_zero = cx.b.ins().icmp(IntCC::Equal, b, zero);
    let sb = cx.b.ins().select(is_zero, one, b);
    let r = cx.b.ins().urem(a, sb);
    cx.b.ins().select(is_zero, zero, r)
}

/// Integer division that never traps: a zero divisor gives 0 and `MIN / -1` wraps.
fn safe_div(cx: &mut Ctx, a: Value, b: Option<Value>, k: i64) -> Value {
    let ty = cx.b.func.dfg.value_type(a);
    let b = match b {
        Some(b) => b,
        None => cx.b.ins().iconst(ty, k),
    };
    let zero = cx.b.ins().iconst(ty, 0);
    let one = cx.b.ins().iconst(ty, 1);
    let is_zero = cx.b.ins().icmp(IntCC::Equal, b, zero);
    let is_m1 = cx.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
    let safe_b = cx.b.ins().select(is_zero, one, b);
    let safe_b = cx.b.ins().select(is_m1, one, safe_b);
    let q = cx.b.ins().sdiv(a, safe_b);
    let neg = cx.b.ins().ineg(a);
    let q = cx.b.ins().select(is_m1, neg, q);
    cx.b.ins().select(is_zero, zero, q)
}

fn arith(cx: &mut Ctx, op: &Op, a: Value, b: Value, float: bool, signed: bool) -> R<Value> {
    Ok(match (op, float) {
        (Op::Add(_), true) => cx.b.ins().fadd(a, b),
        (Op::Sub(_), true) => cx.b.ins().fsub(a, b),
        (Op::Mul(_), true) => cx.b.ins().fmul(a, b),
        (Op::Div(_), true) => cx.b.ins().fdiv(a, b),
        (Op::Add(_), false) => cx.b.ins().iadd(a, b),
        (Op::Sub(_), false) => cx.b.ins().isub(a, b),
        (Op::Mul(_), false) => cx.b.ins().imul(a, b),
        (Op::Div(_), false) if signed => safe_div(cx, a, Some(b), 0),
        (Op::Div(_), false) => {
            // Unsigned: division by zero yields 0.
            let ty = cx.b.func.dfg.value_type(a);
            let zero = cx.b.ins().iconst(ty, 0);
            let one = cx.b.ins().iconst(ty, 1);
            let is_zero = cx.b.ins().icmp(IntCC::Equal, b, zero);
            let safe_b = cx.b.ins().select(is_zero, one, b);
            let q = cx.b.ins().udiv(a, safe_b);
            cx.b.ins().select(is_zero, zero, q)
        }
        (op, _) => return Err(format!("{} is not arithmetic", op.op_type())),
    })
}

/// ONNX Cast between the supported dtypes (float → int truncates and saturates; NaN → 0).
pub(crate) fn cast(cx: &mut Ctx, v: Value, from: DType, to: DType) -> R<Value> {
    cast_saturating(cx, v, from, to, true)
}

/// [`cast`] with ONNX's `saturate` for 8-bit float targets (overflow to the largest finite
/// value, or else to infinity/NaN).
pub(crate) fn cast_saturating(
    cx: &mut Ctx,
    v: Value,
    from: DType,
    to: DType,
    saturate: bool,
) -> R<Value> {
    if from == to {
        return Ok(v);
    }
    // 8-bit floats go through f32 (which holds every f8 value exactly).
    if super::float8::is_f8(from) {
        let f = super::float8::decode(cx, v, from)?;
        return cast_saturating(cx, f, DType::F32, to, saturate);
    }
    if super::float8::is_f8(to) {
        let f = if from == DType::F32 {
            v
        } else if from == DType::F64 {
            cx.b.ins().fdemote(types::F32, v)
        } else {
            cast(cx, v, from, DType::F32)?
        };
        return super::float8::encode(cx, f, to, saturate);
    }
    // Half floats go through f32: f16 and bf16 are exactly representable in it, and f32 →
    // half rounds once (to nearest even), as ONNX's reference does.
    if matches!(from, DType::F16 | DType::BF16) {
        let f = if from == DType::F16 {
            super::half::f16_to_f32(cx, v)
        } else {
            super::half::bf16_to_f32(cx, v)
        };
        return cast(cx, f, DType::F32, to);
    }
    if matches!(to, DType::F16 | DType::BF16) {
        let f = if from == DType::F64 {
            // One rounding (f64 → half) would need its own routine; through f32 the double
            // rounding differs only in ties created by the first rounding.
            cx.b.ins().fdemote(types::F32, v)
        } else {
            cast(cx, v, from, DType::F32)?
        };
        return Ok(if to == DType::F16 {
            super::half::f32_to_f16(cx, f)
        } else {
            super::half::f32_to_bf16(cx, f)
        });
    }
    let fk = cast_kind(from).ok_or("unsupported cast source")?;
    let tk = cast_kind(to).ok_or("unsupported cast target")?;
    let tty = clif_ty(to).ok_or("unsupported cast target")?;
    let fty = cx.b.func.dfg.value_type(v);
    Ok(match (fk, tk) {
        _ if from == to => v,
        (0, 0) => {
            if tty.bits() > fty.bits() {
                cx.b.ins().fpromote(tty, v)
            } else {
                cx.b.ins().fdemote(tty, v)
            }
        }
        (0, 3) => {
            let z = if fty == types::F64 {
                cx.b.ins().f64const(0.0)
            } else {
                cx.b.ins().f32const(0.0)
            };
            cx.b.ins().fcmp(FloatCC::NotEqual, v, z)
        }
        (0, 1) => {
            let w = cx.b.ins().fcvt_to_sint_sat(types::I64, v);
            narrow(cx, w, tty)
        }
        (0, 2) => {
            let w = cx.b.ins().fcvt_to_uint_sat(types::I64, v);
            narrow(cx, w, tty)
        }
        (1, 0) => {
            let w = widen(cx, v, true);
            cx.b.ins().fcvt_from_sint(tty, w)
        }
        (2 | 3, 0) => {
            let w = widen(cx, v, false);
            cx.b.ins().fcvt_from_uint(tty, w)
        }
        (_, 3) => cx.b.ins().icmp_imm_s(IntCC::NotEqual, v, 0),
        (k, _) => {
            let w = widen(cx, v, k == 1);
            narrow(cx, w, tty)
        }
    })
}

fn widen(cx: &mut Ctx, v: Value, signed: bool) -> Value {
    let ty = cx.b.func.dfg.value_type(v);
    if ty == types::I64 {
        v
    } else if signed {
        cx.b.ins().sextend(types::I64, v)
    } else {
        cx.b.ins().uextend(types::I64, v)
    }
}

fn narrow(cx: &mut Ctx, v: Value, ty: types::Type) -> Value {
    if ty == types::I64 {
        v
    } else {
        cx.b.ins().ireduce(ty, v)
    }
}

/// `CastLike(x, like)`: Cast to the dtype of `like`.
pub(crate) fn cast_like(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let x = io.input(0)?.clone();
    let out = io.output(0)?.clone();
    let (from, to) = (x.dtype, out.dtype);
    let sat = match io.op() {
        Op::Opaque(o) => !o
            .attrs
            .iter()
            .any(|(n, v)| n == "saturate" && matches!(v, smelt_ir::Attr::Int(0))),
        _ => true,
    };
    if by_element(from, to) {
        return cast_packed(cx, io, &x, &out, sat);
    }
    map(cx, io, &out, &[&x], &move |cx, _, a| {
        cast_saturating(cx, a[0], from, to, sat)
    })
}
