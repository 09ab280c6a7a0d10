//! Half-float and 8-bit float Casts. f16/bf16 ↔ f32 against the `half` crate: every one of
//! the 65,536 f16 and bf16 bit patterns widened, and f32 values around every rounding boundary
//! narrowed. f32 → f8 (the four ONNX float8 formats, with and without saturation) against a
//! brute-force nearest-code search.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op, Tensor};

fn cast(x: Tensor, to: DType) -> Tensor {
    let mut b = G::new();
    let xi = b.input("x", x.dtype(), x.dims());
    let y = b.node(Op::Cast(ops::Cast { saturate: 1, to }), &[xi]);
    let g = b.finish(&[y]);
    run(&g, &[x]).remove(0)
}

fn u16s(t: &Tensor) -> Vec<u16> {
    t.bytes()
        .unwrap()
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn all_patterns(dtype: DType) -> Tensor {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    Tensor::from_bytes(dtype, vec![65536], bytes).unwrap()
}

/// Bitwise equality, any NaN matching any NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_f16_and_bf16_pattern_widens_exactly() {
    let got = f32s(&cast(all_patterns(DType::F16), DType::F32));
    for (h, g) in (0..=u16::MAX).zip(&got) {
        let want = half::f16::from_bits(h).to_f32();
        assert!(
            same(*g, want),
            "f16 {h:#06x}: {g} ({:#x}) vs {want}",
            g.to_bits()
        );
    }
    let got = f32s(&cast(all_patterns(DType::BF16), DType::F32));
    for (h, g) in (0..=u16::MAX).zip(&got) {
        let want = half::bf16::from_bits(h).to_f32();
        assert!(same(*g, want), "bf16 {h:#06x}: {g} vs {want}");
    }
}

#[test]
fn f32_narrows_to_nearest_even_half() {
    // Every f16 value, the midpoints to its neighbours, one ulp either side of those, and the
    // specials: the rounding boundaries, subnormals, overflow and NaN.
    let mut x: Vec<f32> = vec![
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        65504.0,
        65519.0,
        65520.0,
        1e10,
        -1e-10,
        1e-8,
        5.96e-8,
        2.98e-8,
        2.99e-8,
        f32::MIN_POSITIVE,
    ];
    for h in 0..0x7c00u16 {
        let a = half::f16::from_bits(h).to_f32();
        let b = half::f16::from_bits(h + 1).to_f32();
        let mid = (a + b) / 2.0;
        for v in [
            a,
            mid,
            f32::from_bits(mid.to_bits() - 1),
            f32::from_bits(mid.to_bits() + 1),
        ] {
            x.push(v);
            x.push(-v);
        }
    }
    let n = x.len();
    let got = u16s(&cast(t32(&[n], &x), DType::F16));
    for (v, g) in x.iter().zip(&got) {
        let want = half::f16::from_f32(*v);
        let ok = *g == want.to_bits() || (v.is_nan() && half::f16::from_bits(*g).is_nan());
        assert!(ok, "{v:e}: {g:#06x} vs {:#06x}", want.to_bits());
    }
    let got = u16s(&cast(t32(&[n], &x), DType::BF16));
    for (v, g) in x.iter().zip(&got) {
        let want = half::bf16::from_f32(*v);
        let ok = *g == want.to_bits() || (v.is_nan() && half::bf16::from_bits(*g).is_nan());
        assert!(ok, "{v:e}: bf16 {g:#06x} vs {:#06x}", want.to_bits());
    }
}

/// The f8 code ONNX's Cast gives `x`, by brute force over the 256 codes (their values from
/// `DType::f8_value`, which matches ml_dtypes for every code): nearest value, ties to the
/// even code; beyond the largest finite value the next step up stands for overflow.
fn f8_reference(d: DType, x: f32, saturate: bool) -> Option<u8> {
    let fnuz = matches!(d, DType::F8E4M3FNUZ | DType::F8E5M2FNUZ);
    if x.is_nan() {
        return None; // any NaN code
    }
    let finite: Vec<(u8, f64)> = (0..=255u8)
        .filter_map(|c| d.f8_value(c).filter(|v| v.is_finite()).map(|v| (c, v)))
        .filter(|(c, _)| !(fnuz && *c == 0x80))
        .collect();
    let max = finite.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let max_code = finite.iter().find(|(_, v)| *v == max).map(|(c, _)| *c)?;
    let neg = x.is_sign_negative();
    let overflow = |neg: bool| -> Option<u8> {
        if saturate {
            Some(max_code | if neg { 0x80 } else { 0 })
        } else if d == DType::F8E5M2 {
            Some(if neg { 0xfc } else { 0x7c })
        } else {
            None
        }
    };
    if x.is_infinite() {
        return overflow(neg);
    }
    let ax = f64::from(x.abs());
    // The step above the largest value (where the exponent would carry on).
    let last_step = max
        - finite
            .iter()
            .map(|(_, v)| *v)
            .filter(|v| *v < max)
            .fold(0.0, f64::max);
    if ax >= max + last_step / 2.0 {
        // At exactly the midpoint, ties go to the even code; max_code is even for E4M3FN
        // (0x7e) and odd for the others, whose next step up is even.
        let tie = ax == max + last_step / 2.0;
        if !(tie && max_code % 2 == 0) {
            return overflow(neg);
        }
    }
    if ax > max && saturate {
        return overflow(neg);
    }
    let mut best = (0u8, f64::INFINITY);
    for &(c, v) in finite.iter().filter(|(c, _)| c & 0x80 == 0) {
        let dist = (v - ax).abs();
        if dist < best.1 || (dist == best.1 && c % 2 == 0) {
            best = (c, dist);
        }
    }
    let code = best.0;
    Some(if neg && !(fnuz && code == 0) {
        code | 0x80
    } else {
        code
    })
}

#[test]
fn f32_narrows_to_every_f8_format_as_onnx_specifies() {
    for d in [
        DType::F8E4M3FN,
        DType::F8E4M3FNUZ,
        DType::F8E5M2,
        DType::F8E5M2FNUZ,
    ] {
        let mut vals: Vec<f64> = (0..=127u8)
            .filter_map(|c| d.f8_value(c))
            .filter(|v| v.is_finite())
            .collect();
        vals.sort_by(|a, b| a.total_cmp(b));
        let mut x: Vec<f32> = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-30,
            1e30,
        ];
        for w in vals.windows(2) {
            let (a, b) = (w[0] as f32, w[1] as f32);
            let mid = ((w[0] + w[1]) / 2.0) as f32;
            for v in [
                a,
                mid,
                f32::from_bits(mid.to_bits() - 1),
                f32::from_bits(mid.to_bits() + 1),
                b,
            ] {
                x.push(v);
                x.push(-v);
            }
        }
        // Past the largest value: the rounding boundary and beyond.
        let max = *vals.last().unwrap() as f32;
        for k in [1.01f32, 1.03, 1.0625, 1.07, 1.2, 4.0] {
            x.push(max * k);
            x.push(-max * k);
        }
        for saturate in [1, 0] {
            let n = x.len();
            let mut b = G::new();
            let xi = b.input("x", DType::F32, &[n]);
            let y = b.node(Op::Cast(ops::Cast { saturate, to: d }), &[xi]);
            let g = b.finish(&[y]);
            let got = run(&g, &[t32(&[n], &x)]).remove(0);
            let got = got.bytes().unwrap().to_vec();
            for (v, g) in x.iter().zip(&got) {
                match f8_reference(d, *v, saturate == 1) {
                    Some(want) => assert_eq!(
                        *g, want,
                        "{d} saturate={saturate}: {v:e} -> {g:#04x}, want {want:#04x}"
                    ),
                    None => assert!(
                        d.f8_value(*g).unwrap().is_nan(),
                        "{d}: {v:e} -> {g:#04x}, want NaN"
                    ),
                }
            }
        }
    }
}

/// f16 and bf16 Add, Sub, Mul, Div, Min and Max: every result equals the `half` crate's
/// (an f32 operation rounded once, which for these operations is the correctly rounded
/// half-precision result).
#[test]
fn half_arithmetic_is_correctly_rounded() {
    let n = 4096;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 20) as u16
    };
    for dtype in [DType::F16, DType::BF16] {
        let a: Vec<u16> = (0..n).map(|_| next()).collect();
        let b: Vec<u16> = (0..n).map(|_| next()).collect();
        let tensor = |v: &[u16]| {
            let bytes: Vec<u8> = v.iter().flat_map(|h| h.to_le_bytes()).collect();
            Tensor::from_bytes(dtype, vec![n], bytes).unwrap()
        };
        let widen = |h: u16| {
            if dtype == DType::F16 {
                half::f16::from_bits(h).to_f32()
            } else {
                half::bf16::from_bits(h).to_f32()
            }
        };
        let narrow = |f: f32| {
            if dtype == DType::F16 {
                half::f16::from_f32(f).to_bits()
            } else {
                half::bf16::from_f32(f).to_bits()
            }
        };
        let ops: [(Op, BinaryF32); 6] = [
            (Op::Add(ops::Add {}), |x, y| x + y),
            (Op::Sub(ops::Sub {}), |x, y| x - y),
            (Op::Mul(ops::Mul {}), |x, y| x * y),
            (Op::Div(ops::Div {}), |x, y| x / y),
            (Op::Min(ops::Min {}), ieee_min),
            (Op::Max(ops::Max {}), ieee_max),
        ];
        for (op, f) in ops {
            let name = op.op_type().to_string();
            let mut g = G::new();
            let ai = g.input("a", dtype, &[n]);
            let bi = g.input("b", dtype, &[n]);
            let y = g.node(op, &[ai, bi]);
            let gr = g.finish(&[y]);
            let got = u16s(&run(&gr, &[tensor(&a), tensor(&b)]).remove(0));
            for k in 0..n {
                let want = f(widen(a[k]), widen(b[k]));
                let ok = got[k] == narrow(want) || (want.is_nan() && widen(got[k]).is_nan());
                assert!(
                    ok,
                    "{dtype} {name}({:#06x}, {:#06x}) = {:#06x}, want {:#06x}",
                    a[k],
                    b[k],
                    got[k],
                    narrow(want)
                );
            }
        }
    }
}

/// A reference binary operation on f32.
type BinaryF32 = fn(f32, f32) -> f32;

/// IEEE 754-2019 `minimum`: NaN if either is, -0 below +0.
fn ieee_min(x: f32, y: f32) -> f32 {
    if x.is_nan() || y.is_nan() {
        f32::NAN
    } else if x == y {
        if x.is_sign_negative() {
            x
        } else {
            y
        }
    } else if x < y {
        x
    } else {
        y
    }
}

/// IEEE 754-2019 `maximum`: NaN if either is, +0 above -0.
fn ieee_max(x: f32, y: f32) -> f32 {
    if x.is_nan() || y.is_nan() {
        f32::NAN
    } else if x == y {
        if x.is_sign_positive() {
            x
        } else {
            y
        }
    } else if x > y {
        x
    } else {
        y
    }
}
