//! QuantizeLinear / DequantizeLinear against the ONNX formulas evaluated in the test.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op, Tensor};

fn q(x: f32, s: f32, z: i64, lo: i64, hi: i64) -> i64 {
    // round half to even, then saturate
    let v = x / s;
    let r = v.round();
    let r = if (v - v.trunc()).abs() == 0.5 {
        2.0 * (v / 2.0).round()
    } else {
        r
    };
    (r as i64 + z).clamp(lo, hi)
}

#[test]
fn quantize_per_tensor_and_per_axis() {
    let x: Vec<f32> = vec![
        -300.0, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.49, 100.0, 255.0, 1e9, -1e9,
    ];
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[2, 6]);
    let s = g.konst(Tensor::scalar(1.0f32));
    let z = g.konst(Tensor::scalar(-3i8));
    let q8 = g.node(
        Op::QuantizeLinear(ops::QuantizeLinear {
            axis: 1,
            block_size: 0,
            output_dtype: 0,
            precision: 0,
            saturate: 1,
        }),
        &[xi, s, z],
    );
    let sa = g.cf32(&[2], &[0.5, 2.0]);
    let za = g.konst(Tensor::from_vec(vec![2], &[10u8, 128]).unwrap());
    let qa = g.node(
        Op::QuantizeLinear(ops::QuantizeLinear {
            axis: 0,
            block_size: 0,
            output_dtype: 0,
            precision: 0,
            saturate: 1,
        }),
        &[xi, sa, za],
    );
    let dq = g.node(
        Op::DequantizeLinear(ops::DequantizeLinear {
            axis: 0,
            block_size: 0,
            output_dtype: 0,
        }),
        &[qa, sa, za],
    );
    let gr = g.finish(&[q8, qa, dq]);
    let out = run(&gr, &[t32(&[2, 6], &x)]);
    let want8: Vec<i64> = x.iter().map(|v| q(*v, 1.0, -3, -128, 127)).collect();
    assert_eq!(out[0].dtype(), DType::I8);
    assert_eq!(out[0].to_i64_vec().unwrap(), want8);
    let sc = [0.5f32, 2.0];
    let zp = [10i64, 128];
    let wanta: Vec<i64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| q(*v, sc[i / 6], zp[i / 6], 0, 255))
        .collect();
    assert_eq!(out[1].dtype(), DType::U8);
    assert_eq!(out[1].to_i64_vec().unwrap(), wanta);
    let wantd: Vec<f32> = wanta
        .iter()
        .enumerate()
        .map(|(i, v)| (v - zp[i / 6]) as f32 * sc[i / 6])
        .collect();
    assert_eq!(f32s(&out[2]), wantd);
}

#[test]
fn dequantize_int32_bias() {
    let mut g = G::new();
    let b = g.konst(Tensor::from_vec(vec![3], &[-7i32, 0, 123456]).unwrap());
    let s = g.konst(Tensor::scalar(0.001f32));
    let x = g.input("x", DType::F32, &[3]);
    let d = g.node(
        Op::DequantizeLinear(ops::DequantizeLinear {
            axis: 1,
            block_size: 0,
            output_dtype: 0,
        }),
        &[b, s],
    );
    let y = g.node(Op::Add(ops::Add {}), &[x, d]);
    let gr = g.finish(&[y]);
    let out = run(&gr, &[t32(&[3], &[1.0, 2.0, 3.0])]);
    let want: Vec<f32> = [-7i32, 0, 123456]
        .iter()
        .zip([1.0f32, 2.0, 3.0])
        .map(|(b, x)| x + *b as f32 * 0.001)
        .collect();
    assert_eq!(f32s(&out[0]), want);
}
