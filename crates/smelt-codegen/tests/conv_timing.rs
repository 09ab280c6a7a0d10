//! Timing of single-conv graphs with resnet18/mobilenet shapes (ignored; run with
//! `cargo test -p smelt-codegen --test conv_timing -- --ignored --nocapture`).

mod common;
use common::*;
use smelt_codegen::jit::{compile, Options, TensorView};
use smelt_ir::ops;
use smelt_ir::{DType, Op};

#[allow(clippy::too_many_arguments)]
fn time(c: usize, h: usize, m: usize, k: usize, s: usize, p: usize, group: usize) {
    let mut g = G::new();
    let xd = [1, c, h, h];
    let xi = g.input("x", DType::F32, &xd);
    let wd = [m, c / group, k, k];
    let wt = rand(wd.iter().product(), 1, -0.1, 0.1);
    let wi = g.cf32(&wd, &wt);
    let bi = g.cf32(&[m], &rand(m, 2, -0.1, 0.1));
    let y = g.node(
        Op::Conv(ops::Conv {
            auto_pad: "NOTSET".into(),
            dilations: None,
            group: group as i64,
            kernel_shape: None,
            pads: Some(vec![p as i64; 4]),
            strides: Some(vec![s as i64; 2]),
        }),
        &[xi, wi, bi],
    );
    let gr = g.finish(&[y]);
    let mut cm = compile(&gr, &Options::default()).unwrap();
    let x = t32(&xd, &rand(xd.iter().product(), 3, -1.0, 1.0));
    let views = [TensorView::from(&x)];
    let _ = cm.run(&views).unwrap();
    let oh = (h + 2 * p - k) / s + 1;
    let macs = (m * (c / group) * k * k * oh * oh) as f64;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let reps = 10;
        for _ in 0..reps {
            let _ = cm.run(&views).unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    println!(
        "c{c} h{h} m{m} k{k} s{s} p{p} g{group}: {:8.1} us  {:5.1} GFLOP/s",
        best * 1e6,
        2.0 * macs / best / 1e9
    );
}

#[test]
#[ignore]
fn conv_one() {
    time(64, 56, 64, 3, 1, 1, 1);
}

#[test]
#[ignore]
fn conv_timing() {
    time(3, 224, 64, 7, 2, 3, 1);
    time(64, 56, 64, 3, 1, 1, 1);
    time(64, 56, 128, 3, 2, 1, 1);
    time(64, 56, 128, 1, 2, 0, 1);
    time(128, 28, 128, 3, 1, 1, 1);
    time(256, 14, 256, 3, 1, 1, 1);
    time(512, 7, 512, 3, 1, 1, 1);
    time(96, 56, 24, 1, 1, 0, 1);
    time(144, 56, 144, 3, 1, 1, 144);
    time(1, 28, 32, 3, 1, 1, 1);
}
