//! Transcendental functions in Cranelift IR, for one lane or four: no libm call, so that the
//! generated code needs no libc.
//!
//! | function | method | measured accuracy (tests, vs Rust's `f32`/`f64` functions) |
//! |---|---|---|
//! | `exp` | Cody–Waite reduction by ln 2, Cephes `expf` degree-6 polynomial, 2^n built from bits in two halves (so denormal results and results near `f32::MAX` are right) | ≤ 2 ulp on [-87, 88]; `inf` above 88.7228, 0 below -104 |
//! | `log` | mantissa/exponent split from bits, Cephes `logf` degree-9 polynomial on [√½, √2) | ≤ 2 ulp for normal and denormal inputs; `-inf` at 0, NaN below 0 |
//! | `tanh` | odd polynomial (Cephes `tanhf`) below 0.625, `1 - 2/(exp(2x)+1)` above | ≤ 3 ulp |
//! | `erf` | rational minimax approximation on [-4, 4] (odd degree-13 over even degree-8, Eigen's `generic_fast_erf_float` coefficients), ±1 outside | ≤ 8 ulp (the worst near |x| = 3.9, where erf ≈ 1: absolute error < 5e-7) |
//! | `sigmoid` | `1 / (1 + exp(-x))` | ≤ 3 ulp |
//! | `sin`, `cos` | reduction by π/4 in three parts (Cephes `sinf`/`cosf`), degree-7/8 polynomials per quadrant | absolute error ≤ 2e-7 for |x| ≤ 100; meant for |x| < 8192 |
//!
//! | `exp_f64` (one lane) | reduction by ln 2 in two parts (fdlibm's split), degree-13 Taylor polynomial on \|r\| ≤ ln2/2, 2^n from bits in two halves | relative error < 1e-15 on [-700, 700]; `inf` above 709.78, 0 below -745.2 |
//! | `log_f64` (one lane) | mantissa/exponent split from bits, `2 atanh((m-1)/(m+1))` series (11 terms) on [√½, √2] | relative error < 1e-15; `-inf` at 0, NaN below 0 |
//!
//! NaN inputs give NaN. The exact figures are asserted by this crate's tests.

// Coefficients are written as published (Cephes, Eigen), not truncated to f32 digits.
#![allow(clippy::excessive_precision)]

use super::{bc, Ctx, Lanes};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

fn ity(l: Lanes) -> types::Type {
    l.ty(types::I32)
}
fn fty(l: Lanes) -> types::Type {
    l.ty(types::F32)
}

/// Horner evaluation `((c0*x + c1)*x + c2)...` with the first coefficient the highest power.
fn horner(cx: &mut Ctx, l: Lanes, x: Value, coeffs: &[f32]) -> Value {
    let mut acc = cx.fconst(l, coeffs[0]);
    for c in &coeffs[1..] {
        let k = cx.fconst(l, *c);
        acc = cx.fma(acc, x, k);
    }
    acc
}

/// Bits of a float (as i32 lanes).
fn bits(cx: &mut Ctx, l: Lanes, x: Value) -> Value {
    cx.b.ins().bitcast(ity(l), bc(), x)
}
/// A float from its bits.
fn from_bits(cx: &mut Ctx, l: Lanes, x: Value) -> Value {
    cx.b.ins().bitcast(fty(l), bc(), x)
}

/// `2^n` for integer lanes `n` in [-126, 127].
fn pow2i(cx: &mut Ctx, l: Lanes, n: Value) -> Value {
    let bias = cx.i32const(l, 127);
    let e = cx.b.ins().iadd(n, bias);
    let sh = cx.b.ins().iconst(types::I32, 23);
    let b = cx.b.ins().ishl(e, sh);
    from_bits(cx, l, b)
}

/// `x` rounded to the nearest integer (ties to even), for |x| < 2^22; no SSE4.1 needed.
fn round_small(cx: &mut Ctx, l: Lanes, x: Value) -> Value {
    let magic = cx.fconst(l, 12_582_912.0); // 1.5 * 2^23
    let t = cx.b.ins().fadd(x, magic);
    cx.b.ins().fsub(t, magic)
}

/// `e^x`.
pub(crate) fn exp(cx: &mut Ctx, l: Lanes, x: Value) -> Value {
    const HI: f32 = 88.722_84;
    const LO: f32 = -104.0;
    let hi = cx.fconst(l, HI);
    let lo = cx.fconst(l, LO);
    let xc = cx.b.ins().fmin(x, hi);
    let xc = cx.b.ins().fmax(xc, lo);
    let log2e = cx.fconst(l, std::f32::consts::LOG2_E);
    let t = cx.b.ins().fmul(xc, log2e);
    let n = round_small(cx, l, t);
    let c1 = cx.fconst(l, -0.693_359_375);
    let c2 = cx.fconst(l, 2.121_944_4e-4);
    let r = cx.fma(n, c1, xc);
    let r = cx.fma(n, c2, r);
    let p = horner(
        cx,
        l,
        r,
        &[
            1.987_569_2e-4,
            1.398_2e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            5.000_000_1e-1,
        ],
    );
    let r2 = cx.b.ins().fmul(r, r);
    let one = cx.fconst(l, 1.0);
    let rp1 = cx.b.ins().fadd(r, one);
    let y = cx.fma(p, r2, rp1);
    // 2^n as 2^(n>>1) * 2^(n - n>>1): each half is a normal float for n in [-150, 128].
    let ni = cx.b.ins().fcvt_to_sint_sat(ity(l), n);
    let one_i = cx.b.ins().iconst(types::I32, 1);
    let h1 = cx.b.ins().sshr(ni, one_i);
    let h2 = cx.b.ins().isub(ni, h1);
    let s1 = pow2i(cx, l, h1);
    let s2 = pow2i(cx, l, h2);
    let y = cx.b.ins().fmul(y, s1);
    let y = cx.b.ins().fmul(y, s2);
    let inf = cx.fconst(l, f32::INFINITY);
    let over = cx.fcmp(FloatCC::GreaterThan, x, hi);
    cx.select(l, over, inf, y)
}

/// Natural logarithm.
pub(crate) fn log(cx: &mut Ctx, l: Lanes, x: Value) -> Value {
    // Denormals: scale into the normal range first.
    let min_norm = cx.fconst(l, f32::MIN_POSITIVE);
    let tiny = cx.fcmp(FloatCC::LessThan, x, min_norm);
    let two23 = cx.fconst(l, 8_388_608.0);
    let xs = cx.b.ins().fmul(x, two23);
    let xs = cx.select(l, tiny, xs, x);
    let m23 = cx.i32const(l, -23);
    let z0 = cx.i32const(l, 0);
    let eadj = cx.select(l, tiny, m23, z0);
    let b = bits(cx, l, xs);
    let sh = cx.b.ins().iconst(types::I32, 23);
    let eb = cx.b.ins().ushr(b, sh);
    let ff = cx.i32const(l, 0xff);
    let eb = cx.b.ins().band(eb, ff);
    let bias = cx.i32const(l, -126);
    let e = cx.b.ins().iadd(eb, bias);
    let e = cx.b.ins().iadd(e, eadj);
    let mant_mask = cx.i32const(l, 0x807f_ffff_u32 as i32);
    let half_bits = cx.i32const(l, 0x3f00_0000);
    let mb = cx.b.ins().band(b, mant_mask);
    let mb = cx.b.ins().bor(mb, half_bits);
    let m = from_bits(cx, l, mb); // in [0.5, 1)
    let sqrthf = cx.fconst(l, std::f32::consts::FRAC_1_SQRT_2);
    let lt = cx.fcmp(FloatCC::LessThan, m, sqrthf);
    let one_i = cx.i32const(l, 1);
    let e_minus = cx.b.ins().isub(e, one_i);
    let e = cx.select(l, lt, e_minus, e);
    let one = cx.fconst(l, 1.0);
    let m2 = cx.b.ins().fadd(m, m);
    let a = cx.b.ins().fsub(m2, one);
    let bb = cx.b.ins().fsub(m, one);
    let m = cx.select(l, lt, a, bb);
    let z = cx.b.ins().fmul(m, m);
    let p = horner(
        cx,
        l,
        m,
        &[
            7.037_683_6e-2,
            -1.151_461e-1,
            1.167_699_9e-1,
            -1.242_014_1e-1,
            1.424_932_3e-1,
            -1.666_805_8e-1,
            2.000_071_4e-1,
            -2.499_999_4e-1,
            3.333_333e-1,
        ],
    );
    let pm = cx.b.ins().fmul(p, m);
    let y = cx.b.ins().fmul(pm, z);
    let ef = cx.b.ins().fcvt_from_sint(fty(l), e);
    let c2 = cx.fconst(l, -2.121_944_4e-4);
    let y = cx.fma(ef, c2, y);
    let mhalf = cx.fconst(l, -0.5);
    let y = cx.fma(z, mhalf, y);
    let r = cx.b.ins().fadd(m, y);
    let c1 = cx.fconst(l, 0.693_359_375);
    let r = cx.fma(ef, c1, r);
    // Special values.
    let inf = cx.fconst(l, f32::INFINITY);
    let is_inf = cx.fcmp(FloatCC::Equal, x, inf);
    let r = cx.select(l, is_inf, inf, r);
    let zero = cx.fconst(l, 0.0);
    let ninf = cx.fconst(l, f32::NEG_INFINITY);
    let is_zero = cx.fcmp(FloatCC::Equal, x, zero);
    let r = cx.select(l, is_zero, ninf, r);
    let nan = cx.fconst(l, f32::NAN);
    let bad = cx.fcmp(FloatCC::UnorderedOrLessThan, x, zero);
    cx.select(l, bad, nan, r)
}

/// `|t|` with the sign of `s` (for `t >= 0`).
fn with_sign_of(cx: &mut Ctx, l: Lanes, t: Value, s: Value) -> Value {
    let tb = bits(cx, l, t);
    let sb = bits(cx, l, s);
    let sign = cx.i32const(l, i32::MIN);
    let sgn = cx.b.ins().band(sb, sign);
    let r = cx.b.ins().bor(tb, sgn);
    from_bits(cx, l, r)
}

/// Hyperbolic tangent.
pub(crate) fn tanh(cx: &mut Ctx, l: Lanes, x: Value) -> Value {
    let ax = cx.b.ins().fabs(x);
    let z = cx.b.ins().fmul(x, x);
    let p = horner(
        cx,
        l,
        z,
        &[
            -5.704_988_7e-3,
            2.063_908_9e-2,
            -5.373_971_6e-2,
            1.333_144_2e-1,
            -3.333_328_2e-1,
        ],
    );
    let pz = cx.b.ins().fmul(p, z);
    let small = cx.fma(pz, x, x);
    let two_ax = cx.b.ins().fadd(ax, ax);
    let e = exp(cx, l, two_ax);
    let one = cx.fconst(l, 1.0);
    let two = cx.fconst(l, 2.0);
    let ep1 = cx.b.ins().fadd(e, one);
    let q = cx.b.ins().fdiv(two, ep1);
    let t = cx.b.ins().fsub(one, q);
    let large = with_sign_of(cx, l, t, x);
    let lim = cx.fconst(l, 0.625);
    let is_small = cx.fcmp(FloatCC::LessThan, ax, lim);
    cx.select(l, is_small, small, large)
}

/// The error function.
pub(crate) fn erf(cx: &mut Ctx, l: Lanes, x: Value) -> Value {
    let p4 = cx.fconst(l, 4.0);
    let m4 = cx.fconst(l, -4.0);
    let xc = cx.b.ins().fmin(x, p4);
    let xc = cx.b.ins().fmax(xc, m4);
    let x2 = cx.b.ins().fmul(xc, xc);
    let p = horner(
        cx,
        l,
        x2,
        &[
            -2.726_142_3e-10,
            2.770_681_4e-8,
            -2.101_024e-6,
            -5.692_506_4e-5,
            -7.349_906_3e-4,
            -2.954_6e-3,
            -1.609_603_3e-2,
        ],
    );
    let p = cx.b.ins().fmul(xc, p);
    let q = horner(
        cx,
        l,
        x2,
        &[
            -1.456_607_2e-5,
            -2.133_740_6e-4,
            -1.682_827e-3,
            -7.373_329e-3,
            -1.426_473_9e-2,
        ],
    );
    cx.b.ins().fdiv(p, q)
}

/// `1 / (1 + e^-x)`.
pub(crate) fn sigmoid(cx: &mut Ctx, l: Lanes, x: Value) -> Value {
    let nx = cx.b.ins().fneg(x);
    let e = exp(cx, l, nx);
    let one = cx.fconst(l, 1.0);
    let d = cx.b.ins().fadd(one, e);
    cx.b.ins().fdiv(one, d)
}

/// `x^y` for general `y`: `exp(y log|x|)`, with the sign of an odd integer power of a negative
/// base and NaN for a negative base and a non-integer power; `x^0 = 1`.
pub(crate) fn pow(cx: &mut Ctx, l: Lanes, x: Value, y: Value) -> Value {
    let ax = cx.b.ins().fabs(x);
    let lx = log(cx, l, ax);
    let t = cx.b.ins().fmul(y, lx);
    let r = exp(cx, l, t);
    // Integer-ness and oddness of y (|y| < 2^22 for the odd test; larger floats are even).
    let yr = round_small(cx, l, y);
    let ay = cx.b.ins().fabs(y);
    let big = cx.fconst(l, 4_194_304.0);
    let is_big = cx.fcmp(FloatCC::GreaterThanOrEqual, ay, big);
    let is_int_small = cx.fcmp(FloatCC::Equal, yr, y);
    let half = cx.fconst(l, 0.5);
    let h = cx.b.ins().fmul(y, half);
    let hr = round_small(cx, l, h);
    let even = cx.fcmp(FloatCC::Equal, hr, h);
    let zero = cx.fconst(l, 0.0);
    let neg = cx.fcmp(FloatCC::LessThan, x, zero);
    let nr = cx.b.ins().fneg(r);
    let odd_neg = cx.select(l, even, r, nr);
    let r_neg = {
        let nan = cx.fconst(l, f32::NAN);
        let int_r = cx.select(l, is_big, r, odd_neg);
        let v = cx.select(l, is_int_small, odd_neg, nan);
        cx.select(l, is_big, int_r, v)
    };
    let r = cx.select(l, neg, r_neg, r);
    let one = cx.fconst(l, 1.0);
    let y0 = cx.fcmp(FloatCC::Equal, y, zero);
    cx.select(l, y0, one, r)
}

/// `sin(x)` or `cos(x)`.
pub(crate) fn sincos(cx: &mut Ctx, l: Lanes, x: Value, cos: bool) -> Value {
    let ax = cx.b.ins().fabs(x);
    let fopi = cx.fconst(l, 4.0 * std::f32::consts::FRAC_1_PI);
    let t = cx.b.ins().fmul(ax, fopi);
    let j = cx.b.ins().fcvt_to_sint_sat(ity(l), t);
    // Make j even: (j + 1) & !1.
    let one = cx.i32const(l, 1);
    let j = cx.b.ins().iadd(j, one);
    let not1 = cx.i32const(l, !1);
    let j = cx.b.ins().band(j, not1);
    let y = cx.b.ins().fcvt_from_sint(fty(l), j);
    let dp1 = cx.fconst(l, -0.785_156_25);
    let dp2 = cx.fconst(l, -2.418_756_5e-4);
    let dp3 = cx.fconst(l, -3.774_895e-8);
    let r = cx.fma(y, dp1, ax);
    let r = cx.fma(y, dp2, r);
    let r = cx.fma(y, dp3, r);
    let q = if cos {
        let two = cx.i32const(l, 2);
        cx.b.ins().iadd(j, two)
    } else {
        j
    };
    let z = cx.b.ins().fmul(r, r);
    // cos(r) = 1 - z/2 + z^2 P(z); sin(r) = r + r z Q(z).
    let pc = horner(cx, l, z, &[2.443_315_7e-5, -1.388_731_6e-3, 4.166_664_6e-2]);
    let z2 = cx.b.ins().fmul(z, z);
    let mhalf = cx.fconst(l, -0.5);
    let onef = cx.fconst(l, 1.0);
    let c0 = cx.fma(z, mhalf, onef);
    let cv = cx.fma(pc, z2, c0);
    let ps = horner(cx, l, z, &[-1.951_529_6e-4, 8.332_161e-3, -1.666_665_5e-1]);
    let rz = cx.b.ins().fmul(r, z);
    let sv = cx.fma(ps, rz, r);
    let two_i = cx.i32const(l, 2);
    let four_i = cx.i32const(l, 4);
    let zero_i = cx.i32const(l, 0);
    let q2 = cx.b.ins().band(q, two_i);
    let q4 = cx.b.ins().band(q, four_i);
    let use_cos = cx.b.ins().icmp(
        cranelift_codegen::ir::condcodes::IntCC::NotEqual,
        q2,
        zero_i,
    );
    let flip = cx.b.ins().icmp(
        cranelift_codegen::ir::condcodes::IntCC::NotEqual,
        q4,
        zero_i,
    );
    let v = cx.select(l, use_cos, cv, sv);
    let nv = cx.b.ins().fneg(v);
    let v = cx.select(l, flip, nv, v);
    if cos {
        v
    } else {
        let zero = cx.fconst(l, 0.0);
        let neg = cx.fcmp(FloatCC::LessThan, x, zero);
        let nv = cx.b.ins().fneg(v);
        cx.select(l, neg, nv, v)
    }
}

/// Rounds an f64 of magnitude below 2^51 to the nearest integer (ties to even), without the
/// `nearest` instruction (a libcall on x86-64 without SSE4.1).
fn round_f64(cx: &mut Ctx, x: Value) -> Value {
    let magic = cx.b.ins().f64const(6_755_399_441_055_744.0);
    let t = cx.b.ins().fadd(x, magic);
    cx.b.ins().fsub(t, magic)
}

/// 2^n for an i64 `n` in [-1022, 1023], from bits.
fn pow2i_f64(cx: &mut Ctx, n: Value) -> Value {
    let b = cx.b.ins().iadd_imm_s(n, 1023);
    let b = cx.b.ins().ishl_imm_s(b, 52);
    cx.b.ins().bitcast(types::F64, bc(), b)
}

/// e^x in f64 (one lane; see the module table).
pub(crate) fn exp_f64(cx: &mut Ctx, x: Value) -> Value {
    const HI: f64 = 709.782_712_893_384;
    const LO: f64 = -745.2;
    let hi = cx.b.ins().f64const(HI);
    let lo = cx.b.ins().f64const(LO);
    let xc = cx.b.ins().fmin(x, hi);
    let xc = cx.b.ins().fmax(xc, lo);
    let log2e = cx.b.ins().f64const(std::f64::consts::LOG2_E);
    let t = cx.b.ins().fmul(xc, log2e);
    let n = round_f64(cx, t);
    // r = x - n ln2, with ln 2 split so that n * LN2_HI is exact.
    let c1 = cx.b.ins().f64const(-6.931_471_803_691_238_164_90e-1);
    let c2 = cx.b.ins().f64const(-1.908_214_929_270_587_700_02e-10);
    let m = cx.b.ins().fmul(n, c1);
    let r = cx.b.ins().fadd(xc, m);
    let m = cx.b.ins().fmul(n, c2);
    let r = cx.b.ins().fadd(r, m);
    // Taylor series of e^r to degree 13 (|r| <= 0.347: truncation error < 1e-17).
    let mut p = cx.b.ins().f64const(1.0 / 6_227_020_800.0);
    let mut fact = 6_227_020_800.0f64;
    for k in (0..13).rev() {
        fact /= (k + 1) as f64;
        let c = cx.b.ins().f64const(1.0 / fact);
        let pr = cx.b.ins().fmul(p, r);
        p = cx.b.ins().fadd(pr, c);
    }
    // 2^n as 2^(n>>1) * 2^(n - n>>1): each half is a normal f64 for n in [-1076, 1024].
    let ni = cx.b.ins().fcvt_to_sint_sat(types::I64, n);
    let h1 = cx.b.ins().sshr_imm_s(ni, 1);
    let h2 = cx.b.ins().isub(ni, h1);
    let s1 = pow2i_f64(cx, h1);
    let s2 = pow2i_f64(cx, h2);
    let y = cx.b.ins().fmul(p, s1);
    let y = cx.b.ins().fmul(y, s2);
    let inf = cx.b.ins().f64const(f64::INFINITY);
    let over = cx.b.ins().fcmp(FloatCC::GreaterThan, x, hi);
    cx.b.ins().select(over, inf, y)
}

/// ln x in f64 (one lane; see the module table).
pub(crate) fn log_f64(cx: &mut Ctx, x: Value) -> Value {
    // Denormals: scale into the normal range first.
    let min_norm = cx.b.ins().f64const(f64::MIN_POSITIVE);
    let tiny = cx.b.ins().fcmp(FloatCC::LessThan, x, min_norm);
    let two54 = cx.b.ins().f64const(18_014_398_509_481_984.0);
    let xs = cx.b.ins().fmul(x, two54);
    let xs = cx.b.ins().select(tiny, xs, x);
    let m54 = cx.b.ins().iconst(types::I64, -54);
    let z0 = cx.b.ins().iconst(types::I64, 0);
    let eadj = cx.b.ins().select(tiny, m54, z0);
    let b = cx.b.ins().bitcast(types::I64, bc(), xs);
    let eb = cx.b.ins().ushr_imm_s(b, 52);
    let eb = cx.b.ins().band_imm_s(eb, 0x7ff);
    let e = cx.b.ins().iadd_imm_s(eb, -1023);
    let e = cx.b.ins().iadd(e, eadj);
    let mb = cx.b.ins().band_imm_s(b, 0x000f_ffff_ffff_ffff);
    let mb = cx.b.ins().bor_imm_s(mb, 0x3ff0_0000_0000_0000);
    let m = cx.b.ins().bitcast(types::F64, bc(), mb); // in [1, 2)
    let sqrt2 = cx.b.ins().f64const(std::f64::consts::SQRT_2);
    let big = cx.b.ins().fcmp(FloatCC::GreaterThan, m, sqrt2);
    let half = cx.b.ins().f64const(0.5);
    let mh = cx.b.ins().fmul(m, half);
    let m = cx.b.ins().select(big, mh, m);
    let e1 = cx.b.ins().iadd_imm_s(e, 1);
    let e = cx.b.ins().select(big, e1, e);
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716.
    let one = cx.b.ins().f64const(1.0);
    let num = cx.b.ins().fsub(m, one);
    let den = cx.b.ins().fadd(m, one);
    let sv = cx.b.ins().fdiv(num, den);
    let z = cx.b.ins().fmul(sv, sv);
    let mut p = cx.b.ins().f64const(1.0 / 21.0);
    for k in (0..10).rev() {
        let c = cx.b.ins().f64const(1.0 / (2 * k + 1) as f64);
        let pz = cx.b.ins().fmul(p, z);
        p = cx.b.ins().fadd(pz, c);
    }
    let two_s = cx.b.ins().fadd(sv, sv);
    let lm = cx.b.ins().fmul(two_s, p);
    let ef = cx.b.ins().fcvt_from_sint(types::F64, e);
    let c2 = cx.b.ins().f64const(1.908_214_929_270_587_700_02e-10);
    let t = cx.b.ins().fmul(ef, c2);
    let lm = cx.b.ins().fadd(lm, t);
    let c1 = cx.b.ins().f64const(6.931_471_803_691_238_164_90e-1);
    let t = cx.b.ins().fmul(ef, c1);
    let r = cx.b.ins().fadd(t, lm);
    // Special values.
    let inf = cx.b.ins().f64const(f64::INFINITY);
    let is_inf = cx.b.ins().fcmp(FloatCC::Equal, x, inf);
    let r = cx.b.ins().select(is_inf, inf, r);
    let zero = cx.b.ins().f64const(0.0);
    let ninf = cx.b.ins().f64const(f64::NEG_INFINITY);
    let is_zero = cx.b.ins().fcmp(FloatCC::Equal, x, zero);
    let r = cx.b.ins().select(is_zero, ninf, r);
    let nan = cx.b.ins().f64const(f64::NAN);
    let bad = cx.b.ins().fcmp(FloatCC::UnorderedOrLessThan, x, zero);
    cx.b.ins().select(bad, nan, r)
}
