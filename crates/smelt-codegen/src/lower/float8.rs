//! 8-bit float Casts (f8e4m3fn, f8e4m3fnuz, f8e5m2, f8e5m2fnuz ↔ f32), one element at a time.
//!
//! Decoding is a 256-entry table in the weights object (the values of
//! [`DType::f8_value`], exact in f32). Encoding rounds to nearest even on the f32 bits, the
//! way `half.rs` narrows to f16: an f32 addition rounds subnormal results, an integer add of
//! half an ulp (minus one, plus the kept lsb) rounds normal ones. `saturate` (ONNX's default)
//! clamps finite overflow and infinities to the largest finite value first; without it they
//! become infinity (f8e5m2) or NaN (the others, which have no infinity). The FNUZ forms have
//! no negative zero: a result rounding to zero is +0.

use super::{Ctx, R};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::DType;

/// One 8-bit float format.
struct Format {
    /// Mantissa bits.
    m: i64,
    /// Exponent bias.
    bias: i64,
    /// Largest finite code (sign clear) and its value.
    max_code: i64,
    max: f32,
    /// What overflow without saturation and NaN become (sign clear for NaN).
    overflow: i64,
    nan: i64,
    /// No negative zero; 0x80 is the NaN.
    fnuz: bool,
}

fn format(d: DType) -> Option<Format> {
    Some(match d {
        DType::F8E4M3FN => Format {
            m: 3,
            bias: 7,
            max_code: 0x7e,
            max: 448.0,
            overflow: 0x7f,
            nan: 0x7f,
            fnuz: false,
        },
        DType::F8E4M3FNUZ => Format {
            m: 3,
            bias: 8,
            max_code: 0x7f,
            max: 240.0,
            overflow: 0x80,
            nan: 0x80,
            fnuz: true,
        },
        DType::F8E5M2 => Format {
            m: 2,
            bias: 15,
            max_code: 0x7b,
            max: 57344.0,
            overflow: 0x7c,
            nan: 0x7e,
            fnuz: false,
        },
        DType::F8E5M2FNUZ => Format {
            m: 2,
            bias: 16,
            max_code: 0x7f,
            max: 57344.0,
            overflow: 0x80,
            nan: 0x80,
            fnuz: true,
        },
        _ => return None,
    })
}

/// Whether `d` is one of the 8-bit floats this module converts.
pub(crate) fn is_f8(d: DType) -> bool {
    format(d).is_some()
}

/// An 8-bit float code (an `i8`) to its f32 value.
pub(crate) fn decode(cx: &mut Ctx, code: Value, d: DType) -> R<Value> {
    let table: Vec<f32> = (0..=255u8)
        .map(|c| d.f8_value(c).map(|v| v as f32))
        .collect::<Option<_>>()
        .ok_or("not an 8-bit float")?;
    let t = cx.add_f32s(&table);
    let i = cx.b.ins().uextend(types::I64, code);
    let at = cx.index(t, i, 4);
    Ok(cx.load(types::F32, at, 0))
}

/// An f32 value to the 8-bit float code (an `i8`) nearest to it, ties to even.
pub(crate) fn encode(cx: &mut Ctx, v: Value, d: DType, saturate: bool) -> R<Value> {
    let f = format(d).ok_or("not an 8-bit float")?;
    let bits = cx.b.ins().bitcast(types::I32, super::bc(), v);
    let sign = cx.b.ins().band_imm_u(bits, 0x8000_0000);
    let a = cx.b.ins().bxor(bits, sign);
    let is_nan =
        cx.b.ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThan, a, 0x7f80_0000);
    let a = if saturate {
        let max = cx.b.ins().iconst(types::I32, i64::from(f.max.to_bits()));
        cx.b.ins().umin(a, max)
    } else {
        a
    };
    // Subnormal results: add a power of two whose ulp is the smallest subnormal.
    let magic_bits = (151 - f.bias - f.m) << 23;
    let magic = cx.b.ins().f32const(f32::from_bits(magic_bits as u32));
    let af = cx.b.ins().bitcast(types::F32, super::bc(), a);
    let sum = cx.b.ins().fadd(af, magic);
    let sum = cx.b.ins().bitcast(types::I32, super::bc(), sum);
    let small = cx.b.ins().iadd_imm_s(sum, -magic_bits);
    // Normal results: re-bias, add half an ulp minus one plus the kept lsb, truncate.
    let shift = 23 - f.m;
    let odd = cx.b.ins().ushr_imm_u(a, shift);
    let odd = cx.b.ins().band_imm_u(odd, 1);
    let n =
        cx.b.ins()
            .iadd_imm_s(a, ((f.bias - 127) << 23) + (1 << (shift - 1)) - 1);
    let n = cx.b.ins().iadd(n, odd);
    let normal = cx.b.ins().ushr_imm_u(n, shift);
    let is_small =
        cx.b.ins()
            .icmp_imm_u(IntCC::UnsignedLessThan, a, (128 - f.bias) << 23);
    let o = cx.b.ins().select(is_small, small, normal);
    let over =
        cx.b.ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThan, o, f.max_code);
    let overflow = cx.b.ins().iconst(types::I32, f.overflow);
    let o = cx.b.ins().select(over, overflow, o);
    // The sign goes on every code but the FNUZ NaN (0x80) and, in FNUZ, zero.
    let s = cx.b.ins().ushr_imm_u(sign, 24);
    let s = if f.fnuz {
        let keep = cx.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, o, 0x80);
        let nonzero = cx.b.ins().icmp_imm_u(IntCC::NotEqual, o, 0);
        let keep = cx.b.ins().band(keep, nonzero);
        let zero = cx.b.ins().iconst(types::I32, 0);
        cx.b.ins().select(keep, s, zero)
    } else {
        s
    };
    let o = cx.b.ins().bor(o, s);
    let nan = cx.b.ins().iconst(types::I32, f.nan);
    let o = cx.b.ins().select(is_nan, nan, o);
    Ok(cx.b.ins().ireduce(types::I8, o))
}
