//! f16 and bf16 ↔ f32 conversions in Cranelift IR, one element at a time, without F16C or any
//! call (artifacts need no libc): half-precision tensors are stored as their 16-bit patterns
//! (`i16` in the generated code) and converted at the Cast that reads or writes them.
//!
//! f16 → f32 is exact: the 15 bits below the sign, shifted into an f32's place, are a number
//! 2^112 times too small (normals and subnormals alike), and infinities/NaNs get the all-ones
//! exponent. f32 → f16 rounds to nearest, ties to even, overflow to infinity, NaN to a quiet
//! NaN (F. Giesen's branch-free method, the selects taking the place of branches). bf16 is the
//! top half of an f32: widening is a shift, narrowing rounds to nearest even, NaN stays NaN.

use super::Ctx;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

/// f16 bits (an `i16`) to the f32 value.
pub(crate) fn f16_to_f32(cx: &mut Ctx, h: Value) -> Value {
    let h = cx.b.ins().uextend(types::I32, h);
    let sign = cx.b.ins().band_imm_u(h, 0x8000);
    let sign = cx.b.ins().ishl_imm_u(sign, 16);
    let em = cx.b.ins().band_imm_u(h, 0x7fff);
    let shifted = cx.b.ins().ishl_imm_u(em, 13);
    // Finite: the value of the shifted bits times 2^112 (exact, subnormals included).
    let f = cx.b.ins().bitcast(types::F32, super::bc(), shifted);
    let scale = cx.b.ins().f32const(f32::from_bits(0x7780_0000)); // 2^112
    let finite = cx.b.ins().fmul(f, scale);
    let finite = cx.b.ins().bitcast(types::I32, super::bc(), finite);
    // Infinity / NaN: all-ones exponent, the mantissa (NaN payload) kept.
    let special = cx.b.ins().bor_imm_u(shifted, 0x7f80_0000);
    let is_special =
        cx.b.ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, em, 0x7c00);
    let bits = cx.b.ins().select(is_special, special, finite);
    let bits = cx.b.ins().bor(bits, sign);
    cx.b.ins().bitcast(types::F32, super::bc(), bits)
}

/// An f32 value to f16 bits (an `i16`), rounding to nearest even.
pub(crate) fn f32_to_f16(cx: &mut Ctx, v: Value) -> Value {
    let f = cx.b.ins().bitcast(types::I32, super::bc(), v);
    let sign = cx.b.ins().band_imm_u(f, 0x8000_0000);
    // |v| as bits; from 65520 on (rounding past the largest f16): infinity, or a quiet NaN.
    let a = cx.b.ins().bxor(f, sign);
    let is_nan =
        cx.b.ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThan, a, 0x7f80_0000);
    let inf = cx.b.ins().iconst(types::I32, 0x7c00);
    let qnan = cx.b.ins().iconst(types::I32, 0x7e00);
    let big = cx.b.ins().select(is_nan, qnan, inf);
    // Results below 2^-14 (f16 subnormals and zero): let an f32 addition round the value
    // into the low mantissa bits of a number whose exponent is known, then remove it.
    let magic_bits = 0x3f00_0000i64; // ((127 - 15) + (23 - 10) + 1) << 23
    let magic = cx.b.ins().f32const(f32::from_bits(magic_bits as u32));
    let af = cx.b.ins().bitcast(types::F32, super::bc(), a);
    let sum = cx.b.ins().fadd(af, magic);
    let sum = cx.b.ins().bitcast(types::I32, super::bc(), sum);
    let small = cx.b.ins().iadd_imm_s(sum, -magic_bits);
    // Normal results: re-bias the exponent, round the 13 dropped bits to nearest even.
    let odd = cx.b.ins().ushr_imm_u(a, 13);
    let odd = cx.b.ins().band_imm_u(odd, 1);
    let n = cx.b.ins().iadd_imm_s(a, ((15 - 127) << 23) + 0xfff);
    let n = cx.b.ins().iadd(n, odd);
    let normal = cx.b.ins().ushr_imm_u(n, 13);
    let is_small = cx.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, a, 113 << 23);
    let is_big =
        cx.b.ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, a, 0x4780_0000);
    let o = cx.b.ins().select(is_small, small, normal);
    let o = cx.b.ins().select(is_big, big, o);
    let s = cx.b.ins().ushr_imm_u(sign, 16);
    let o = cx.b.ins().bor(o, s);
    cx.b.ins().ireduce(types::I16, o)
}

/// bf16 bits (an `i16`) to the f32 value (exact).
pub(crate) fn bf16_to_f32(cx: &mut Ctx, h: Value) -> Value {
    let w = cx.b.ins().uextend(types::I32, h);
    let w = cx.b.ins().ishl_imm_u(w, 16);
    cx.b.ins().bitcast(types::F32, super::bc(), w)
}

/// An f32 value to bf16 bits (an `i16`), rounding to nearest even; NaN stays a (quiet) NaN.
pub(crate) fn f32_to_bf16(cx: &mut Ctx, v: Value) -> Value {
    let f = cx.b.ins().bitcast(types::I32, super::bc(), v);
    let odd = cx.b.ins().ushr_imm_u(f, 16);
    let odd = cx.b.ins().band_imm_u(odd, 1);
    let r = cx.b.ins().iadd_imm_s(f, 0x7fff);
    let r = cx.b.ins().iadd(r, odd);
    let rounded = cx.b.ins().ushr_imm_u(r, 16);
    let top = cx.b.ins().ushr_imm_u(f, 16);
    let quiet = cx.b.ins().bor_imm_u(top, 0x40);
    let is_nan =
        cx.b.ins()
            .fcmp(cranelift_codegen::ir::condcodes::FloatCC::Unordered, v, v);
    let o = cx.b.ins().select(is_nan, quiet, rounded);
    cx.b.ins().ireduce(types::I16, o)
}
