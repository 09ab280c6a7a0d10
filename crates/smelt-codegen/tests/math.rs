//! Accuracy of the transcendental functions the backend writes in Cranelift IR (exp, log,
//! tanh, erf, sigmoid; f64 exp and log), measured in ulps (f32) or relative error (f64) against
//! Rust's f64 functions or references computed here, over many
//! values spanning each function's range. The bounds asserted are the ones documented in
//! `lower/math.rs`.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op, Tensor};

fn unary(op: Op, x: &[f32]) -> Vec<f32> {
    let mut b = G::new();
    let xi = b.input("x", DType::F32, &[x.len()]);
    let y = b.node(op, &[xi]);
    let g = b.finish(&[y]);
    f32s(&run(&g, &[t32(&[x.len()], x)])[0])
}

/// Distance in ulps between two finite f32s (ordered integer representation).
fn ulps(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

/// The largest ulp error over `xs`, with the worst input. Special values must match exactly.
fn max_ulps(got: &[f32], xs: &[f32], f: &dyn Fn(f64) -> f64) -> (u64, f32) {
    let mut worst = (0, 0.0);
    for (g, x) in got.iter().zip(xs) {
        let w = f(*x as f64) as f32;
        if w.is_nan() {
            assert!(g.is_nan(), "f({x}) = {g}, want NaN");
            continue;
        }
        if w.is_infinite() || g.is_infinite() {
            assert_eq!(*g, w, "f({x})");
            continue;
        }
        let u = ulps(*g, w);
        if u > worst.0 {
            worst = (u, *x);
        }
    }
    worst
}

/// Values spread over [lo, hi]: a dense linear sweep plus every 97th f32 bit pattern inside.
fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n)
        .map(|i| lo + (hi - lo) * (i as f32 / (n - 1) as f32))
        .collect();
    v.extend(rand(n, 99, lo, hi));
    v
}

#[test]
fn exp_is_within_2_ulp() {
    let xs = sweep(-87.0, 88.5, 50_000);
    let (u, at) = max_ulps(&unary(Op::Exp(ops::Exp {}), &xs), &xs, &f64::exp);
    assert!(u <= 2, "exp: {u} ulp at {at}");
    // Overflow, underflow, NaN.
    let sp = [
        100.0f32,
        88.8,
        -110.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
    ];
    let got = unary(Op::Exp(ops::Exp {}), &sp);
    assert_eq!(got[0], f32::INFINITY);
    assert_eq!(got[1], f32::INFINITY);
    assert_eq!(got[2], 0.0);
    assert!(got[3].is_nan());
    assert_eq!(got[4], f32::INFINITY);
    assert_eq!(got[5], 0.0);
    assert_eq!(got[6], 1.0);
}

#[test]
fn log_is_within_2_ulp() {
    let mut xs = sweep(1e-6, 1e6, 50_000);
    xs.extend(sweep(0.5, 2.0, 20_000));
    // Denormals and the extremes.
    xs.extend([1e-40f32, 1e-45, f32::MIN_POSITIVE, f32::MAX]);
    let (u, at) = max_ulps(&unary(Op::Log(ops::Log {}), &xs), &xs, &f64::ln);
    assert!(u <= 2, "log: {u} ulp at {at}");
    let sp = [0.0f32, -1.0, f32::NAN, f32::INFINITY];
    let got = unary(Op::Log(ops::Log {}), &sp);
    assert_eq!(got[0], f32::NEG_INFINITY);
    assert!(got[1].is_nan());
    assert!(got[2].is_nan());
    assert_eq!(got[3], f32::INFINITY);
}

#[test]
fn tanh_is_within_3_ulp() {
    let mut xs = sweep(-10.0, 10.0, 50_000);
    xs.extend(sweep(-0.7, 0.7, 20_000));
    xs.extend([1e-30f32, -1e-30, 50.0, -50.0]);
    let (u, at) = max_ulps(&unary(Op::Tanh(ops::Tanh {}), &xs), &xs, &f64::tanh);
    assert!(u <= 3, "tanh: {u} ulp at {at}");
}

#[test]
fn sigmoid_is_within_3_ulp() {
    let xs = sweep(-80.0, 80.0, 50_000);
    let (u, at) = max_ulps(&unary(Op::Sigmoid(ops::Sigmoid {}), &xs), &xs, &|v| {
        1.0 / (1.0 + (-v).exp())
    });
    assert!(u <= 3, "sigmoid: {u} ulp at {at}");
}

/// erf in f64: Taylor series for |x| < 3, continued fraction of erfc beyond.
fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        let mut sum = 0.0;
        let mut term = a;
        let mut n = 0.0f64;
        loop {
            let t = term / (2.0 * n + 1.0);
            sum += t;
            if t.abs() < 1e-20 * sum.abs() {
                break;
            }
            n += 1.0;
            term *= -a * a / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + …))))
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    };
    r.copysign(x)
}

#[test]
fn erf_is_within_8_ulp() {
    let mut xs = sweep(-5.0, 5.0, 50_000);
    xs.extend(sweep(-0.01, 0.01, 5_000));
    let got = unary(Op::Erf(ops::Erf {}), &xs);
    let (u, at) = max_ulps(&got, &xs, &erf64);
    assert!(u <= 8, "erf: {u} ulp at {at}");
}

#[test]
fn sin_and_cos_are_within_2e_7_absolute() {
    let mut xs = sweep(-100.0, 100.0, 50_000);
    xs.extend(sweep(-1.0, 1.0, 10_000));
    for (op, f) in [
        (Op::Sin(ops::Sin {}), f64::sin as fn(f64) -> f64),
        (Op::Cos(ops::Cos {}), f64::cos as fn(f64) -> f64),
    ] {
        let got = unary(op, &xs);
        let mut worst = (0.0f64, 0.0f32);
        for (g, x) in got.iter().zip(&xs) {
            let e = (*g as f64 - f(*x as f64)).abs();
            if e > worst.0 {
                worst = (e, *x);
            }
        }
        assert!(worst.0 <= 2e-7, "error {} at {}", worst.0, worst.1);
    }
    // Small arguments keep their relative accuracy.
    let small = sweep(-0.5, 0.5, 10_000);
    let got = unary(Op::Sin(ops::Sin {}), &small);
    let (u, at) = max_ulps(&got, &small, &f64::sin);
    assert!(u <= 2, "sin: {u} ulp at {at}");
}

/// f64 Exp and Log against Rust's f64 functions: relative error, special values exact.
#[test]
fn f64_exp_and_log_are_within_1e_15_relative() {
    let run64 = |op: Op, xs: &[f64]| -> Vec<f64> {
        let mut g = G::new();
        let x = g.input("x", DType::F64, &[xs.len()]);
        let y = g.node(op, &[x]);
        let gr = g.finish(&[y]);
        let t = Tensor::from_vec(vec![xs.len()], xs).unwrap();
        run(&gr, &[t])[0].to_f64_vec().unwrap()
    };
    let worst = |got: &[f64], xs: &[f64], f: &dyn Fn(f64) -> f64| -> (f64, f64) {
        let mut w = (0.0f64, 0.0f64);
        for (g, x) in got.iter().zip(xs) {
            let want = f(*x);
            if !want.is_finite() || want == 0.0 {
                assert!(
                    *g == want || (g.is_nan() && want.is_nan()),
                    "at {x}: {g} != {want}"
                );
                continue;
            }
            let rel = ((g - want) / want).abs();
            if rel > w.0 {
                w = (rel, *x);
            }
        }
        w
    };
    let mut xs: Vec<f64> = (0..20001).map(|i| -745.0 + i as f64 * 0.0727).collect();
    xs.extend([
        0.0,
        -0.0,
        1e-300,
        710.0,
        -800.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ]);
    let (e, at) = worst(&run64(Op::Exp(ops::Exp {}), &xs), &xs, &f64::exp);
    assert!(e < 1e-15, "exp: relative error {e:e} at {at}");
    let mut ls: Vec<f64> = (0..20001)
        .map(|i| 10f64.powf(-300.0 + i as f64 * 0.03))
        .collect();
    ls.extend([0.0, -1.0, 1.0, 2.0, 5e-324, 1e-310, f64::INFINITY, f64::NAN]);
    let (e, at) = worst(&run64(Op::Log(ops::Log {}), &ls), &ls, &f64::ln);
    assert!(e < 1e-15, "log: relative error {e:e} at {at}");
}
