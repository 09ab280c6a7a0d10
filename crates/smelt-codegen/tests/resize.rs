//! Resize against the ONNX coordinate formulas evaluated in the test.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op, Tensor};

fn resize_op(mode: &str, coord: &str, nearest: &str) -> Op {
    Op::Resize(ops::Resize {
        antialias: 0,
        axes: None,
        coordinate_transformation_mode: coord.into(),
        cubic_coeff_a: -0.75,
        exclude_outside: 0,
        extrapolation_value: 0.0,
        keep_aspect_ratio_policy: "stretch".into(),
        mode: mode.into(),
        nearest_mode: nearest.into(),
    })
}

#[test]
fn nearest_and_bilinear() {
    let (h, w) = (3usize, 4usize);
    let x = rand(h * w, 51, -1.0, 1.0);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[1, 1, h, w]);
    let sc = g.cf32(&[4], &[1.0, 1.0, 2.0, 1.5]);
    let n = g.node_n(
        resize_op("nearest", "asymmetric", "floor"),
        &[Some(xi), None, Some(sc)],
        1,
    )[0];
    let sizes = g.konst(Tensor::from_vec(vec![4], &[1i64, 1, 5, 7]).unwrap());
    let l = g.node_n(
        resize_op("linear", "half_pixel", "round_prefer_floor"),
        &[Some(xi), None, None, Some(sizes)],
        1,
    )[0];
    let a = g.node_n(
        resize_op("linear", "align_corners", "round_prefer_floor"),
        &[Some(xi), None, None, Some(sizes)],
        1,
    )[0];
    let gr = g.finish(&[n, l, a]);
    let out = run(&gr, &[t32(&[1, 1, h, w], &x)]);
    assert_eq!(out[0].dims(), &[1, 1, 6, 6]);
    let mut want = vec![];
    for i in 0..6 {
        for j in 0..6 {
            let si = ((i as f64) / 2.0).floor() as usize;
            let sj = ((j as f64) / 1.5).floor() as usize;
            want.push(x[si.min(h - 1) * w + sj.min(w - 1)]);
        }
    }
    assert_eq!(f32s(&out[0]), want);
    // Bilinear with edge clamping.
    let bil = |coord: &dyn Fn(usize, usize, usize) -> f64| {
        let mut v = vec![];
        for i in 0..5 {
            for j in 0..7 {
                let yi = coord(i, h, 5).clamp(0.0, (h - 1) as f64);
                let xj = coord(j, w, 7).clamp(0.0, (w - 1) as f64);
                let (y0, x0) = (yi.floor() as usize, xj.floor() as usize);
                let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                let (fy, fx) = (yi - y0 as f64, xj - x0 as f64);
                let p = |a: usize, b: usize| x[a * w + b] as f64;
                let r = p(y0, x0) * (1.0 - fy) * (1.0 - fx)
                    + p(y0, x1) * (1.0 - fy) * fx
                    + p(y1, x0) * fy * (1.0 - fx)
                    + p(y1, x1) * fy * fx;
                v.push(r as f32);
            }
        }
        v
    };
    let half = bil(&|o, n_in, n_out| (o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5);
    close(&f32s(&out[1]), &half, 1e-5, 1e-6);
    let ac = bil(&|o, n_in, n_out| o as f64 * (n_in - 1) as f64 / (n_out - 1) as f64);
    close(&f32s(&out[2]), &ac, 1e-5, 1e-6);
}
