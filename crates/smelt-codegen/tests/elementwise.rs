//! Elementwise ops against references computed independently in the test.

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

#[test]
fn relu_neg_abs_and_friends() {
    let x = [-2.5f32, -1.0, -0.0, 0.0, 0.5, 3.0, 7.25];
    let want: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
    close(&unary(Op::Relu(ops::Relu {}), &x), &want, 0.0, 0.0);
    let want: Vec<f32> = x.iter().map(|v| -v).collect();
    close(&unary(Op::Neg(ops::Neg {}), &x), &want, 0.0, 0.0);
    let want: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    close(&unary(Op::Abs(ops::Abs {}), &x), &want, 0.0, 0.0);
    let want: Vec<f32> = x
        .iter()
        .map(|v| if *v >= 0.0 { *v } else { 0.1 * v })
        .collect();
    close(
        &unary(Op::LeakyRelu(ops::LeakyRelu { alpha: 0.1 }), &x),
        &want,
        1e-6,
        0.0,
    );
    let want: Vec<f32> = x.iter().map(|v| (0.2 * v + 0.5).clamp(0.0, 1.0)).collect();
    close(
        &unary(
            Op::HardSigmoid(ops::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            }),
            &x,
        ),
        &want,
        1e-6,
        1e-7,
    );
    let want: Vec<f32> = x
        .iter()
        .map(|v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0))
        .collect();
    close(
        &unary(Op::HardSwish(ops::HardSwish {}), &x),
        &want,
        1e-6,
        1e-7,
    );
    let want: Vec<f32> = x.iter().map(|v| v.abs().sqrt()).collect();
    let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    close(&unary(Op::Sqrt(ops::Sqrt {}), &xa), &want, 1e-7, 0.0);
}

#[test]
fn transcendental_ops_match_std() {
    let x = rand(1003, 7, -9.0, 9.0);
    let check = |op: Op, f: &dyn Fn(f64) -> f64, tol: f32| {
        let got = unary(op, &x);
        let want: Vec<f32> = x.iter().map(|v| f(*v as f64) as f32).collect();
        close(&got, &want, tol, 1e-7);
    };
    check(Op::Exp(ops::Exp {}), &|v| v.exp(), 1e-6);
    check(
        Op::Sigmoid(ops::Sigmoid {}),
        &|v| 1.0 / (1.0 + (-v).exp()),
        1e-6,
    );
    check(Op::Tanh(ops::Tanh {}), &|v| v.tanh(), 1e-6);
    check(
        Op::Softplus(ops::Softplus {}),
        &|v| (1.0 + v.exp()).ln(),
        1e-6,
    );
    let got = unary(
        Op::Gelu(ops::Gelu {
            approximate: "none".into(),
        }),
        &x,
    );
    let want: Vec<f32> = x
        .iter()
        .map(|v| (0.5 * *v as f64 * (1.0 + erf64(*v as f64 / 2f64.sqrt()))) as f32)
        .collect();
    close(&got, &want, 1e-5, 1e-6);
    // 1 + erf(x/√2) cancels for x << 0: the f32 formula has an absolute error near 1e-7.
    let got = unary(
        Op::Gelu(ops::Gelu {
            approximate: "tanh".into(),
        }),
        &x,
    );
    let want: Vec<f32> = x
        .iter()
        .map(|v| {
            let v = *v as f64;
            let k = (2.0 / std::f64::consts::PI).sqrt();
            (0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())) as f32
        })
        .collect();
    close(&got, &want, 1e-5, 1e-6);
    let xp: Vec<f32> = x.iter().map(|v| v.abs() + 1e-3).collect();
    let got = unary(Op::Log(ops::Log {}), &xp);
    let want: Vec<f32> = xp.iter().map(|v| (*v as f64).ln() as f32).collect();
    close(&got, &want, 1e-6, 1e-7);
}

/// erf in f64 by its Taylor series (|x| <= 4) or 1 (beyond: erfc(4) < f32 resolution at 1).
pub fn erf64(x: f64) -> f64 {
    if x.abs() > 4.5 {
        return x.signum();
    }
    let mut sum = 0.0;
    let mut term = x; // x^(2n+1) (-1)^n / n!
    let mut n = 0.0;
    while term.abs() > 1e-30 || n < 5.0 {
        sum += term / (2.0 * n + 1.0);
        n += 1.0;
        term *= -x * x / n;
        if n > 200.0 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn broadcasting_binary_ops() {
    // [2,3,4] op [3,1] op-scalar broadcasting, shapes of numpy.
    let a = rand(24, 1, -2.0, 2.0);
    let bv = rand(3, 2, 0.5, 2.0);
    for (k, op) in [
        Op::Add(ops::Add {}),
        Op::Sub(ops::Sub {}),
        Op::Mul(ops::Mul {}),
        Op::Div(ops::Div {}),
        Op::Max(ops::Max {}),
        Op::Min(ops::Min {}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut g = G::new();
        let x = g.input("a", DType::F32, &[2, 3, 4]);
        let y = g.input("b", DType::F32, &[3, 1]);
        let z = g.node(op, &[x, y]);
        let gr = g.finish(&[z]);
        let out = run(&gr, &[t32(&[2, 3, 4], &a), t32(&[3, 1], &bv)]);
        assert_eq!(out[0].dims(), &[2, 3, 4]);
        let got = f32s(&out[0]);
        let mut want = vec![];
        for i in 0..2 {
            for j in 0..3 {
                for l in 0..4 {
                    let p = a[i * 12 + j * 4 + l];
                    let q = bv[j];
                    want.push(match k {
                        0 => p + q,
                        1 => p - q,
                        2 => p * q,
                        3 => p / q,
                        4 => p.max(q),
                        _ => p.min(q),
                    });
                }
            }
        }
        close(&got, &want, 1e-6, 0.0);
    }
}

#[test]
fn where_and_comparisons_carry_bool_masks() {
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[5]);
    let y = g.input("y", DType::F32, &[1]);
    let m = g.node(Op::Less(ops::Less {}), &[x, y]);
    let w = g.node(Op::Where(ops::Where {}), &[m, x, y]);
    let e = g.node(Op::Equal(ops::Equal {}), &[x, y]);
    let gr = g.finish(&[w, e]);
    let xv = [1.0f32, 5.0, -2.0, 3.0, 4.0];
    let out = run(&gr, &[t32(&[5], &xv), t32(&[1], &[3.0])]);
    assert_eq!(f32s(&out[0]), vec![1.0, 3.0, -2.0, 3.0, 3.0]);
    assert_eq!(out[1].dtype(), DType::Bool);
    assert_eq!(out[1].bytes().unwrap(), &[0, 0, 0, 1, 0]);
}

#[test]
fn variadic_sum_mean_and_clip_and_pow() {
    let mut g = G::new();
    let a = g.input("a", DType::F32, &[2, 3]);
    let b = g.input("b", DType::F32, &[3]);
    let c = g.input("c", DType::F32, &[2, 1]);
    let s = g.node(Op::Sum(ops::Sum {}), &[a, b, c]);
    let m = g.node(Op::Mean(ops::Mean {}), &[a, b, c]);
    let lo = g.konst(Tensor::scalar(0.0f32));
    let hi = g.konst(Tensor::scalar(2.0f32));
    let cl = g.node(Op::Clip(ops::Clip {}), &[s, lo, hi]);
    let two = g.konst(Tensor::scalar(2.0f32));
    let p = g.node(Op::Pow(ops::Pow {}), &[a, two]);
    let e = g.konst(Tensor::scalar(1.5f32));
    let p2 = g.node(Op::Pow(ops::Pow {}), &[b, e]);
    let gr = g.finish(&[s, m, cl, p, p2]);
    let av = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let bv = [0.5f32, -1.0, 2.0];
    let cv = [10.0f32, -10.0];
    let out = run(&gr, &[t32(&[2, 3], &av), t32(&[3], &bv), t32(&[2, 1], &cv)]);
    let mut sum = vec![];
    for i in 0..2 {
        for j in 0..3 {
            sum.push(av[i * 3 + j] + bv[j] + cv[i]);
        }
    }
    close(&f32s(&out[0]), &sum, 1e-6, 0.0);
    let mean: Vec<f32> = sum.iter().map(|v| v / 3.0).collect();
    close(&f32s(&out[1]), &mean, 1e-6, 0.0);
    let clip: Vec<f32> = sum.iter().map(|v| v.clamp(0.0, 2.0)).collect();
    close(&f32s(&out[2]), &clip, 0.0, 0.0);
    let sq: Vec<f32> = av.iter().map(|v| v * v).collect();
    close(&f32s(&out[3]), &sq, 0.0, 0.0);
    let p15: Vec<f32> = bv.iter().map(|v| v.powf(1.5)).collect();
    close(&f32s(&out[4]), &p15, 1e-5, 0.0);
}

#[test]
fn integer_arithmetic_and_casts() {
    let mut g = G::new();
    let a = g.input("a", DType::I64, &[4]);
    let b = g.input("b", DType::I64, &[4]);
    let d = g.node(Op::Div(ops::Div {}), &[a, b]);
    let f = g.node(
        Op::Cast(ops::Cast {
            to: DType::F32,
            saturate: 1,
        }),
        &[d],
    );
    let gr = g.finish(&[d, f]);
    let av = [7i64, -7, 9, 5];
    let bv = [2i64, 2, 0, -1];
    let ta = Tensor::from_vec(vec![4], &av).unwrap();
    let tb = Tensor::from_vec(vec![4], &bv).unwrap();
    let out = run(&gr, &[ta, tb]);
    // Truncating division; a zero divisor gives 0 rather than a trap.
    assert_eq!(out[0].to_i64_vec().unwrap(), vec![3, -3, 0, -5]);
    assert_eq!(f32s(&out[1]), vec![3.0, -3.0, 0.0, -5.0]);
}

#[test]
fn mod_follows_the_divisor_or_the_dividend() {
    let mut g = G::new();
    let a = g.input("a", DType::I64, &[6]);
    let b = g.input("b", DType::I64, &[6]);
    let m0 = g.node(Op::Mod(ops::Mod { fmod: 0 }), &[a, b]);
    let m1 = g.node(Op::Mod(ops::Mod { fmod: 1 }), &[a, b]);
    let x = g.input("x", DType::F32, &[4]);
    let y = g.input("y", DType::F32, &[4]);
    let f1 = g.node(Op::Mod(ops::Mod { fmod: 1 }), &[x, y]);
    let gr = g.finish(&[m0, m1, f1]);
    let av = [7i64, -7, 7, -7, 5, 3];
    let bv = [3i64, 3, -3, -3, 0, -1];
    let xv = [5.5f32, -5.5, 5.5, 1e3];
    let yv = [2.0f32, 2.0, -2.0, 0.7];
    let out = run(
        &gr,
        &[
            Tensor::from_vec(vec![6], &av).unwrap(),
            Tensor::from_vec(vec![6], &bv).unwrap(),
            t32(&[4], &xv),
            t32(&[4], &yv),
        ],
    );
    // Python's % (sign of the divisor) and C's fmod (sign of the dividend); x % 0 gives 0.
    assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, 2, -2, -1, 0, 0]);
    assert_eq!(out[1].to_i64_vec().unwrap(), vec![1, -1, 1, -1, 0, 0]);
    let want: Vec<f32> = xv.iter().zip(&yv).map(|(a, b)| a % b).collect();
    close(&f32s(&out[2]), &want, 1e-4, 1e-5);
}

#[test]
fn cast_like_takes_the_second_inputs_dtype() {
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[3]);
    let like = g.konst(Tensor::scalar(0i64));
    let y = g.node(
        Op::Opaque(smelt_ir::OpaqueOp {
            domain: String::new(),
            op_type: "CastLike".into(),
            attrs: vec![],
        }),
        &[x, like],
    );
    let mut gr = g.g;
    gr.set_outputs(vec![y]).unwrap();
    smelt_ir::infer::infer_graph(&mut gr).unwrap();
    let out = run(&gr, &[t32(&[3], &[1.9, -2.7, 3.0])]);
    assert_eq!(out[0].dtype(), DType::I64);
    assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, -2, 3]);
}

/// Pow of an integer base: by an integer exponent it wraps like Rust's `wrapping_pow`; a
/// negative exponent truncates the real result (1, ±1 for base -1, else 0); an integral f32
/// exponent is exact.
#[test]
fn integer_pow() {
    let base: Vec<i32> = vec![3, -2, 7, 1, -1, -1, 5, 0, 2];
    let exp: Vec<i32> = vec![6, 5, 13, -4, -3, -2, -1, 0, 40];
    let mut g = G::new();
    let b = g.input("b", DType::I32, &[base.len()]);
    let e = g.input("e", DType::I32, &[exp.len()]);
    let ef = g.input("ef", DType::F32, &[exp.len()]);
    let p = g.node(Op::Pow(ops::Pow {}), &[b, e]);
    let pf = g.node(Op::Pow(ops::Pow {}), &[b, ef]);
    let gr = g.finish(&[p, pf]);
    let expf: Vec<f32> = exp.iter().map(|v| *v as f32).collect();
    let out = run(
        &gr,
        &[
            Tensor::from_vec(vec![base.len()], &base).unwrap(),
            Tensor::from_vec(vec![exp.len()], &exp).unwrap(),
            Tensor::from_vec(vec![exp.len()], &expf).unwrap(),
        ],
    );
    let want: Vec<i64> = base
        .iter()
        .zip(&exp)
        .map(|(b, e)| {
            if *e >= 0 {
                b.wrapping_pow(*e as u32) as i64
            } else {
                match b {
                    1 => 1,
                    -1 => {
                        if e % 2 == 0 {
                            1
                        } else {
                            -1
                        }
                    }
                    _ => 0,
                }
            }
        })
        .collect();
    assert_eq!(out[0].to_i64_vec().unwrap(), want);
    assert_eq!(out[1].to_i64_vec().unwrap(), want);
}

/// Casts into packed int4/uint2 truncate toward zero and wrap to the type's bits (-9 is 7 in
/// int4, -3 is 1 in uint2), odd element counts included; casts out of them sign- or
/// zero-extend.
#[test]
fn packed_sub_byte_casts() {
    let xs: Vec<f32> = vec![-9.0, -8.0, -1.5, 0.0, 2.7, 7.0, 15.0];
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[xs.len()]);
    let cast = |to| Op::Cast(ops::Cast { to, saturate: 1 });
    let i4 = g.node(cast(DType::I4), &[x]);
    let u2 = g.node(cast(DType::U2), &[x]);
    let back = g.node(cast(DType::F32), &[i4]);
    let u2_8 = g.node(cast(DType::U8), &[u2]);
    let gr = g.finish(&[i4, back, u2_8]);
    let out = run(&gr, &[t32(&[xs.len()], &xs)]);
    let wrap = |v: f32, bits: u32, signed: bool| -> i64 {
        let m = (v.trunc() as i64).rem_euclid(1 << bits);
        if signed && m >= 1 << (bits - 1) {
            m - (1 << bits)
        } else {
            m
        }
    };
    let want4: Vec<i64> = xs.iter().map(|v| wrap(*v, 4, true)).collect();
    assert_eq!(out[0].to_i64_vec().unwrap(), want4);
    let want4f: Vec<f32> = want4.iter().map(|v| *v as f32).collect();
    assert_eq!(f32s(&out[1]), want4f);
    let want2: Vec<i64> = xs.iter().map(|v| wrap(*v, 2, false)).collect();
    assert_eq!(out[2].to_i64_vec().unwrap(), want2);
}

/// Casts out of the 8- and 4-bit float formats against their published values (OCP FP8 and
/// MX specifications, ONNX's FNUZ variants).
#[test]
fn small_float_decoding() {
    let cases: Vec<(DType, Vec<u8>, Vec<f32>)> = vec![
        (
            DType::F8E4M3FN,
            vec![0x38, 0x7E, 0x01, 0xC0, 0x7F],
            vec![1.0, 448.0, 1.0 / 512.0, -2.0, f32::NAN],
        ),
        (
            DType::F8E4M3FNUZ,
            vec![0x40, 0x7F, 0x80, 0x00],
            vec![1.0, 240.0, f32::NAN, 0.0],
        ),
        (
            DType::F8E5M2,
            vec![0x3C, 0x7B, 0x7C, 0xFC, 0x7D],
            vec![1.0, 57344.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN],
        ),
        (DType::F8E5M2FNUZ, vec![0x40, 0x80], vec![1.0, f32::NAN]),
        (
            DType::F8E8M0,
            vec![0x7F, 0x80, 0x00, 0xFF],
            vec![1.0, 2.0, 2f32.powi(-127), f32::NAN],
        ),
        // Packed two a byte, low nibble first: 0.5, 1, 6, -6.
        (DType::F4E2M1, vec![0x21, 0xF7], vec![0.5, 1.0, 6.0, -6.0]),
    ];
    for (dt, bytes, want) in cases {
        let n = want.len();
        let mut g = G::new();
        let x = g.input("x", dt, &[n]);
        let y = g.node(
            Op::Cast(ops::Cast {
                to: DType::F32,
                saturate: 1,
            }),
            &[x],
        );
        let gr = g.finish(&[y]);
        let t = Tensor::from_bytes(dt, vec![n], bytes).unwrap();
        let got = f32s(&run(&gr, &[t])[0]);
        for (gv, wv) in got.iter().zip(&want) {
            assert!(
                gv == wv || (gv.is_nan() && wv.is_nan()),
                "{dt}: {got:?} != {want:?}"
            );
        }
    }
}

/// Casts into the 8- and 4-bit floats round to nearest even and saturate (or overflow to
/// infinity / NaN), against codes worked out from the formats' definitions.
#[test]
fn small_float_encoding() {
    // (format, saturate, inputs, expected codes)
    let nan = f32::NAN;
    let cases: Vec<(DType, i64, Vec<f32>, Vec<u8>)> = vec![
        (
            DType::F8E4M3FN,
            1,
            vec![1.0, 448.0, 464.0, 465.0, -1e-7, nan, f32::NEG_INFINITY],
            vec![0x38, 0x7E, 0x7E, 0x7E, 0x80, 0x7F, 0xFE],
        ),
        (
            DType::F8E4M3FN,
            0,
            vec![464.0, 465.0, f32::NEG_INFINITY],
            vec![0x7E, 0x7F, 0xFF],
        ),
        (
            DType::F8E5M2,
            0,
            vec![1.125, 1.126, 57344.0, 61440.0, -1e9],
            vec![0x3C, 0x3D, 0x7B, 0x7C, 0xFC],
        ),
        (
            DType::F8E5M2,
            1,
            vec![61440.0, f32::INFINITY],
            vec![0x7B, 0x7B],
        ),
        (
            DType::F8E4M3FNUZ,
            1,
            vec![1.0, -0.0, -1e-9, nan, 1e6],
            vec![0x40, 0x00, 0x00, 0x80, 0x7F],
        ),
        (DType::F8E5M2FNUZ, 0, vec![1.0, 1e9], vec![0x40, 0x80]),
    ];
    for (dt, sat, xs, want) in cases {
        let n = xs.len();
        let mut g = G::new();
        let x = g.input("x", DType::F32, &[n]);
        let y = g.node(
            Op::Cast(ops::Cast {
                to: dt,
                saturate: sat,
            }),
            &[x],
        );
        let gr = g.finish(&[y]);
        let out = run(&gr, &[t32(&[n], &xs)]);
        assert_eq!(
            out[0].bytes().unwrap(),
            want.as_slice(),
            "{dt} saturate={sat}"
        );
    }
    // f4e2m1, packed low nibble first: 0.25 -> 0 and 0.75 -> 1.0 (ties to even), -3.5 -> -4,
    // 9 -> 6 (saturated).
    let xs = vec![0.25f32, 0.75, -3.5, 9.0];
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[4]);
    let y = g.node(
        Op::Cast(ops::Cast {
            to: DType::F4E2M1,
            saturate: 1,
        }),
        &[x],
    );
    let gr = g.finish(&[y]);
    let out = run(&gr, &[t32(&[4], &xs)]);
    assert_eq!(out[0].bytes().unwrap(), &[0x20, 0x7E]);
}
