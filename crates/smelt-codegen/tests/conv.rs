//! Conv against a direct f64 convolution written in the test.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op};

struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    m: usize,
    kh: usize,
    kw: usize,
    s: [usize; 2],
    d: [usize; 2],
    pads: [usize; 4], // top, left, bottom, right
    group: usize,
    bias: bool,
}

/// Reference: out[n][m][oh][ow] = b[m] + Σ x[n][g*cpg+ci][oh*s-p+kh*d][ow*s-p+kw*d] w[m][ci][kh][kw].
fn reference(cs: &Case, x: &[f32], wt: &[f32], b: &[f32]) -> (Vec<f32>, usize, usize) {
    let oh = (cs.h + cs.pads[0] + cs.pads[2] - (cs.kh - 1) * cs.d[0] - 1) / cs.s[0] + 1;
    let ow = (cs.w + cs.pads[1] + cs.pads[3] - (cs.kw - 1) * cs.d[1] - 1) / cs.s[1] + 1;
    let cpg = cs.c / cs.group;
    let mpg = cs.m / cs.group;
    let mut out = vec![0f32; cs.n * cs.m * oh * ow];
    for n in 0..cs.n {
        for m in 0..cs.m {
            let g = m / mpg;
            for y in 0..oh {
                for z in 0..ow {
                    let mut acc = if cs.bias { b[m] as f64 } else { 0.0 };
                    for ci in 0..cpg {
                        for a in 0..cs.kh {
                            for e in 0..cs.kw {
                                let ih = (y * cs.s[0] + a * cs.d[0]) as i64 - cs.pads[0] as i64;
                                let iw = (z * cs.s[1] + e * cs.d[1]) as i64 - cs.pads[1] as i64;
                                if ih < 0 || iw < 0 || ih >= cs.h as i64 || iw >= cs.w as i64 {
                                    continue;
                                }
                                let xi = ((n * cs.c + g * cpg + ci) * cs.h + ih as usize) * cs.w
                                    + iw as usize;
                                let wi = ((m * cpg + ci) * cs.kh + a) * cs.kw + e;
                                acc += x[xi] as f64 * wt[wi] as f64;
                            }
                        }
                    }
                    out[((n * cs.m + m) * oh + y) * ow + z] = acc as f32;
                }
            }
        }
    }
    (out, oh, ow)
}

fn run_case(cs: &Case, one_d: bool, auto_pad: Option<&str>) {
    let cpg = cs.c / cs.group;
    let x = rand(cs.n * cs.c * cs.h * cs.w, 21, -1.0, 1.0);
    let wt = rand(cs.m * cpg * cs.kh * cs.kw, 22, -1.0, 1.0);
    let b = rand(cs.m, 23, -1.0, 1.0);
    let (want, oh, ow) = reference(cs, &x, &wt, &b);
    let mut g = G::new();
    let (xd, wd): (Vec<usize>, Vec<usize>) = if one_d {
        (vec![cs.n, cs.c, cs.w], vec![cs.m, cpg, cs.kw])
    } else {
        (vec![cs.n, cs.c, cs.h, cs.w], vec![cs.m, cpg, cs.kh, cs.kw])
    };
    let xi = g.input("x", DType::F32, &xd);
    let wi = g.cf32(&wd, &wt);
    let mut ins = vec![xi, wi];
    if cs.bias {
        ins.push(g.cf32(&[cs.m], &b));
    }
    let (strides, dil, pads) = if one_d {
        (
            vec![cs.s[1] as i64],
            vec![cs.d[1] as i64],
            vec![cs.pads[1] as i64, cs.pads[3] as i64],
        )
    } else {
        (
            cs.s.iter().map(|v| *v as i64).collect(),
            cs.d.iter().map(|v| *v as i64).collect(),
            cs.pads.iter().map(|v| *v as i64).collect(),
        )
    };
    let y = g.node(
        Op::Conv(ops::Conv {
            auto_pad: auto_pad.unwrap_or("NOTSET").into(),
            dilations: Some(dil),
            group: cs.group as i64,
            kernel_shape: None,
            pads: if auto_pad.is_some() { None } else { Some(pads) },
            strides: Some(strides),
        }),
        &ins,
    );
    let gr = g.finish(&[y]);
    let out = run(&gr, &[t32(&xd, &x)]);
    let od: Vec<usize> = if one_d {
        vec![cs.n, cs.m, ow]
    } else {
        vec![cs.n, cs.m, oh, ow]
    };
    assert_eq!(out[0].dims(), od.as_slice());
    close(&f32s(&out[0]), &want, 1e-5, 1e-5);
}

#[test]
fn conv2d_pads_strides_dilations_groups() {
    let cases = [
        // plain 3x3, pad 1, odd width to hit the border and leftover columns
        Case {
            n: 1,
            c: 3,
            h: 9,
            w: 13,
            m: 6,
            kh: 3,
            kw: 3,
            s: [1, 1],
            d: [1, 1],
            pads: [1, 1, 1, 1],
            group: 1,
            bias: true,
        },
        // stride 2, asymmetric pads, no bias, batch 2
        Case {
            n: 2,
            c: 4,
            h: 11,
            w: 20,
            m: 5,
            kh: 3,
            kw: 5,
            s: [2, 2],
            d: [1, 1],
            pads: [0, 2, 1, 1],
            group: 1,
            bias: false,
        },
        // dilation 2, groups 2
        Case {
            n: 1,
            c: 4,
            h: 10,
            w: 19,
            m: 8,
            kh: 3,
            kw: 3,
            s: [1, 1],
            d: [2, 2],
            pads: [2, 2, 2, 2],
            group: 2,
            bias: true,
        },
        // depthwise
        Case {
            n: 1,
            c: 7,
            h: 12,
            w: 17,
            m: 7,
            kh: 3,
            kw: 3,
            s: [1, 1],
            d: [1, 1],
            pads: [1, 1, 1, 1],
            group: 7,
            bias: true,
        },
        // depthwise stride 2
        Case {
            n: 1,
            c: 5,
            h: 9,
            w: 33,
            m: 5,
            kh: 3,
            kw: 3,
            s: [2, 2],
            d: [1, 1],
            pads: [1, 1, 1, 1],
            group: 5,
            bias: true,
        },
        // 1x1 pointwise
        Case {
            n: 1,
            c: 16,
            h: 4,
            w: 24,
            m: 9,
            kh: 1,
            kw: 1,
            s: [1, 1],
            d: [1, 1],
            pads: [0, 0, 0, 0],
            group: 1,
            bias: true,
        },
        // 7x7 stride 2 stem-like, kernel wider than padding allows on small input
        Case {
            n: 1,
            c: 3,
            h: 8,
            w: 8,
            m: 4,
            kh: 7,
            kw: 7,
            s: [2, 2],
            d: [1, 1],
            pads: [3, 3, 3, 3],
            group: 1,
            bias: true,
        },
        // stride 3
        Case {
            n: 1,
            c: 2,
            h: 10,
            w: 40,
            m: 3,
            kh: 2,
            kw: 2,
            s: [3, 3],
            d: [1, 1],
            pads: [0, 0, 0, 0],
            group: 1,
            bias: true,
        },
    ];
    for cs in &cases {
        run_case(cs, false, None);
    }
}

#[test]
fn conv1d_and_auto_pad() {
    let c = Case {
        n: 2,
        c: 3,
        h: 1,
        w: 30,
        m: 5,
        kh: 1,
        kw: 5,
        s: [1, 2],
        d: [1, 1],
        pads: [0, 2, 0, 2],
        group: 1,
        bias: true,
    };
    run_case(&c, true, None);
    // SAME_UPPER, stride 1, 4x4 kernel: total pad 3 → 1 before, 2 after.
    let c = Case {
        n: 1,
        c: 2,
        h: 7,
        w: 9,
        m: 3,
        kh: 4,
        kw: 4,
        s: [1, 1],
        d: [1, 1],
        pads: [1, 1, 2, 2],
        group: 1,
        bias: true,
    };
    run_case(&c, false, Some("SAME_UPPER"));
    // SAME_LOWER puts the extra pad before.
    let c = Case {
        n: 1,
        c: 2,
        h: 7,
        w: 9,
        m: 3,
        kh: 4,
        kw: 4,
        s: [1, 1],
        d: [1, 1],
        pads: [2, 2, 1, 1],
        group: 1,
        bias: true,
    };
    run_case(&c, false, Some("SAME_LOWER"));
}

#[test]
fn relu_and_clip_fuse_into_conv() {
    let x = rand(2 * 6 * 10, 24, -1.0, 1.0);
    let wt = rand(5 * 2 * 9, 25, -1.0, 1.0);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[1, 2, 6, 10]);
    let wi = g.cf32(&[5, 2, 3, 3], &wt);
    let conv = |g: &mut G| {
        g.node(
            Op::Conv(ops::Conv {
                auto_pad: "NOTSET".into(),
                dilations: None,
                group: 1,
                kernel_shape: None,
                pads: Some(vec![1, 1, 1, 1]),
                strides: None,
            }),
            &[xi, wi],
        )
    };
    let c1 = conv(&mut g);
    let r = g.node(Op::Relu(ops::Relu {}), &[c1]);
    // The relu'd value feeds another op, so Relu runs in place and is skipped.
    let two = g.cf32(&[1], &[2.0]);
    let r2 = g.node(Op::Mul(ops::Mul {}), &[r, two]);
    let c2 = conv(&mut g);
    let lo = g.konst(smelt_ir::Tensor::scalar(0.0f32));
    let hi = g.konst(smelt_ir::Tensor::scalar(0.5f32));
    let cl = g.node(Op::Clip(ops::Clip {}), &[c2, lo, hi]);
    let gr = g.finish(&[r2, cl]);
    let out = run(&gr, &[t32(&[1, 2, 6, 10], &x)]);
    let cs = Case {
        n: 1,
        c: 2,
        h: 6,
        w: 10,
        m: 5,
        kh: 3,
        kw: 3,
        s: [1, 1],
        d: [1, 1],
        pads: [1, 1, 1, 1],
        group: 1,
        bias: false,
    };
    let (want, _, _) = reference(&cs, &x, &wt, &[]);
    let w1: Vec<f32> = want.iter().map(|v| v.max(0.0) * 2.0).collect();
    let w2: Vec<f32> = want.iter().map(|v| v.clamp(0.0, 0.5)).collect();
    close(&f32s(&out[0]), &w1, 1e-5, 1e-5);
    close(&f32s(&out[1]), &w2, 1e-5, 1e-5);
}

/// Scatter-form reference of ConvTranspose (2-D; 1-D as h = kh = 1).
#[allow(clippy::too_many_arguments)]
fn convt_ref(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (n, c, h, wd): (usize, usize, usize, usize),
    m: usize,
    (kh, kw): (usize, usize),
    s: [usize; 2],
    d: [usize; 2],
    pb: [usize; 2],
    (oh, ow): (usize, usize),
    group: usize,
) -> Vec<f32> {
    let cpg = c / group;
    let mpg = m / group;
    let mut out = vec![0f64; n * m * oh * ow];
    for ni in 0..n {
        for mi in 0..m {
            for p in 0..oh * ow {
                out[(ni * m + mi) * oh * ow + p] = b[mi] as f64;
            }
        }
        for ci in 0..c {
            let g = ci / cpg;
            for co in 0..mpg {
                for i in 0..h {
                    for j in 0..wd {
                        for a in 0..kh {
                            for e in 0..kw {
                                let y = (i * s[0] + a * d[0]) as i64 - pb[0] as i64;
                                let z = (j * s[1] + e * d[1]) as i64 - pb[1] as i64;
                                if y < 0 || z < 0 || y >= oh as i64 || z >= ow as i64 {
                                    continue;
                                }
                                let xv = x[((ni * c + ci) * h + i) * wd + j] as f64;
                                let wv = w[((ci * mpg + co) * kh + a) * kw + e] as f64;
                                out[((ni * m + g * mpg + co) * oh + y as usize) * ow
                                    + z as usize] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    out.iter().map(|v| *v as f32).collect()
}

#[test]
fn conv_transpose_2d_and_1d() {
    // 2-D: stride 2, pads 1, output_padding 1, dilation (1, 2), groups 2.
    let (n, c, h, w, m, kh, kw) = (1, 4, 3, 4, 6, 3, 2);
    let x = rand(n * c * h * w, 61, -1.0, 1.0);
    let wt = rand(c * (m / 2) * kh * kw, 62, -1.0, 1.0);
    let b = rand(m, 63, -1.0, 1.0);
    let (s, d, p, op) = ([2usize, 2], [1usize, 2], [1usize, 1], [1usize, 1]);
    let oh = s[0] * (h - 1) + op[0] + (kh - 1) * d[0] + 1 - 2 * p[0];
    let ow = s[1] * (w - 1) + op[1] + (kw - 1) * d[1] + 1 - 2 * p[1];
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[n, c, h, w]);
    let wi = g.cf32(&[c, m / 2, kh, kw], &wt);
    let bi = g.cf32(&[m], &b);
    let y = g.node(
        Op::ConvTranspose(ops::ConvTranspose {
            auto_pad: "NOTSET".into(),
            dilations: Some(vec![1, 2]),
            group: 2,
            kernel_shape: None,
            output_padding: Some(vec![1, 1]),
            output_shape: None,
            pads: Some(vec![1, 1, 1, 1]),
            strides: Some(vec![2, 2]),
        }),
        &[xi, wi, bi],
    );
    let gr = g.finish(&[y]);
    let out = run(&gr, &[t32(&[n, c, h, w], &x)]);
    assert_eq!(out[0].dims(), &[n, m, oh, ow]);
    let want = convt_ref(&x, &wt, &b, (n, c, h, w), m, (kh, kw), s, d, p, (oh, ow), 2);
    close(&f32s(&out[0]), &want, 1e-5, 1e-5);

    // 1-D, stride 3, no pads, no bias.
    let (c, w, m, k) = (2, 5, 3, 4);
    let x = rand(c * w, 64, -1.0, 1.0);
    let wt = rand(c * m * k, 65, -1.0, 1.0);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[1, c, w]);
    let wi = g.cf32(&[c, m, k], &wt);
    let y = g.node(
        Op::ConvTranspose(ops::ConvTranspose {
            auto_pad: "NOTSET".into(),
            dilations: None,
            group: 1,
            kernel_shape: None,
            output_padding: None,
            output_shape: None,
            pads: None,
            strides: Some(vec![3]),
        }),
        &[xi, wi],
    );
    let gr = g.finish(&[y]);
    let out = run(&gr, &[t32(&[1, c, w], &x)]);
    let ow = 3 * (w - 1) + k;
    assert_eq!(out[0].dims(), &[1, m, ow]);
    let want = convt_ref(
        &x,
        &wt,
        &vec![0.0; m],
        (1, c, 1, w),
        m,
        (1, k),
        [1, 3],
        [1, 1],
        [0, 0],
        (1, ow),
        1,
    );
    close(&f32s(&out[0]), &want, 1e-5, 1e-5);
}

#[test]
fn conv_with_weights_given_at_run_time() {
    // Groups 2, 5 channels per group (a partial block), pads; weights and bias as inputs.
    let cs = Case {
        n: 2,
        c: 4,
        h: 6,
        w: 9,
        m: 10,
        kh: 3,
        kw: 2,
        s: [1, 2],
        d: [1, 1],
        pads: [1, 0, 1, 1],
        group: 2,
        bias: true,
    };
    let cpg = cs.c / cs.group;
    let x = rand(cs.n * cs.c * cs.h * cs.w, 26, -1.0, 1.0);
    let wt = rand(cs.m * cpg * cs.kh * cs.kw, 27, -1.0, 1.0);
    let b = rand(cs.m, 28, -1.0, 1.0);
    let (want, oh, ow) = reference(&cs, &x, &wt, &b);
    let mut g = G::new();
    let xd = [cs.n, cs.c, cs.h, cs.w];
    let wd = [cs.m, cpg, cs.kh, cs.kw];
    let xi = g.input("x", DType::F32, &xd);
    let wi = g.input("w", DType::F32, &wd);
    let bi = g.input("b", DType::F32, &[cs.m]);
    let y = g.node(
        Op::Conv(ops::Conv {
            auto_pad: "NOTSET".into(),
            dilations: None,
            group: 2,
            kernel_shape: None,
            pads: Some(vec![1, 0, 1, 1]),
            strides: Some(vec![1, 2]),
        }),
        &[xi, wi, bi],
    );
    let gr = g.finish(&[y]);
    let out = run(&gr, &[t32(&xd, &x), t32(&wd, &wt), t32(&[cs.m], &b)]);
    assert_eq!(out[0].dims(), &[cs.n, cs.m, oh, ow]);
    close(&f32s(&out[0]), &want, 1e-5, 1e-5);
}
