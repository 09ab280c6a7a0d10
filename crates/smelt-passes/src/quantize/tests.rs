//! `quantize` tests: hand-computed scales and int8 values.

use super::*;
use crate::testutil::{op, B};
use smelt_ir::Attr;

fn run(g: &mut Graph, q: Quantize) -> Changed {
    let c = q.run(g, &mut PassCtx::new()).unwrap();
    smelt_ir::verify(g).unwrap();
    c
}

fn check(mut g: Graph, q: Quantize, expect: &str) {
    run(&mut g, q);
    assert_eq!(g.to_text().trim(), expect.trim(), "\n{}", g.to_text());
}

fn check_not_applicable(mut g: Graph, q: Quantize) {
    let before = g.to_text();
    assert_eq!(run(&mut g, q), Changed::NONE);
    assert_eq!(g.to_text(), before);
}

fn gemm(trans_b: bool, w: &[f32], wdims: &[usize]) -> Graph {
    let mut b = B::new();
    let k = if trans_b { wdims[1] } else { wdims[0] };
    let x = b.input("x", DType::F32, &[1, k]);
    let w = b.c("w", wdims, w);
    let n = if trans_b { wdims[0] } else { wdims[1] };
    let bias = b.c("b", &[n], &vec![0.25f32; n]);
    let y = b.op(
        "y",
        op("Gemm", &[("transB", Attr::Int(trans_b as i64))]),
        &[x, w, bias],
    );
    b.finish(&[y])
}

#[test]
fn gemm_weights_become_per_row_int8() {
    // transB=1: rows are output channels. Row 0 max |w| = 127 -> scale 1;
    // row 1 max 254 -> scale 2. w / scale, half to even: [127, -4, 2], [127, 0, -2].
    check(
        gemm(true, &[127., -3.5, 2.5, 254., 1., -5.], &[2, 3]),
        Quantize::default(),
        r#"
graph t(x: f32[1,3]) -> (y: f32[1,2]) {
  %b = const f32[2] [0.25, 0.25]
  %w_q = const i8[2,3] [127, -4, 2, 127, 0, -2]
  %w_scale = const f32[2] [1.0, 2.0]
  %w_zero_point = const i8[2] [0, 0]
  %w_dq = DequantizeLinear(%w_q, %w_scale, %w_zero_point) {axis=0} : f32[2,3]
  %y = Gemm(%x, %w_dq, %b) {transB=1} : f32[1,2]
  return %y
}"#,
    );
}

#[test]
fn matmul_weights_are_per_column_and_shared_weights_quantize_once() {
    // MatMul [in=2, out=2]: columns are output channels (axis 1, the default, so not
    // printed); column maxima 127 and 254: [127, -63.5] -> [127, -64], [254, 3] -> [127, 2].
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[1, 2]);
    let w = b.c("w", &[2, 2], &[127f32, 254., -63.5, 3.]);
    let y1 = b.op("y1", op("MatMul", &[]), &[x, w]);
    let y2 = b.op("y2", op("MatMul", &[]), &[y1, w]);
    check(
        b.finish(&[y2]),
        Quantize::default(),
        r#"
graph t(x: f32[1,2]) -> (y2: f32[1,2]) {
  %w_q = const i8[2,2] [127, 127, -64, 2]
  %w_scale = const f32[2] [1.0, 2.0]
  %w_zero_point = const i8[2] [0, 0]
  %w_dq = DequantizeLinear(%w_q, %w_scale, %w_zero_point) : f32[2,2]
  %y1 = MatMul(%x, %w_dq) : f32[1,2]
  %y2 = MatMul(%y1, %w_dq) : f32[1,2]
  return %y2
}"#,
    );
}

#[test]
fn asymmetric_per_tensor_uint8() {
    // min -1, max 2: scale 3/255, zero point round(1 / scale) = 85; the ends map to 0 and 255.
    let mut g = gemm(false, &[-1., 0., 1., 2.], &[2, 2]);
    run(
        &mut g,
        Quantize {
            per_channel: false,
            symmetric: false,
            ..Quantize::default()
        },
    );
    let by = g.values_by_name();
    let q = g.const_value(by["w_q"]).unwrap();
    assert_eq!(q.dtype(), DType::U8);
    let qv = q.to_i64_vec().unwrap();
    assert_eq!((qv[0], qv[1], qv[3]), (0, 85, 255));
    let z = g.const_value(by["w_zero_point"]).unwrap();
    assert_eq!((z.dims(), z.to_i64_vec().unwrap()), (&[][..], vec![85]));
    let s = g.const_value(by["w_scale"]).unwrap().to_f32_vec().unwrap();
    assert_eq!(s, vec![3.0f32 / 255.0]);
}

#[test]
fn dequantized_weights_are_within_half_a_step() {
    let w: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut g = gemm(true, &w, &[3, 4]);
    run(&mut g, Quantize::default());
    crate::fold::Fold {
        dequantize: true,
        ..Default::default()
    }
    .run(&mut g, &mut PassCtx::new())
    .unwrap();
    let by = g.values_by_name();
    let back = g.const_value(by["w_dq"]).unwrap().to_f32_vec().unwrap();
    for r in 0..3 {
        let row = &w[r * 4..r * 4 + 4];
        let step = row.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
        for k in 0..4 {
            assert!((back[r * 4 + k] - row[k]).abs() <= step / 2.0 + 1e-7);
        }
    }
}

#[test]
fn skipped_and_non_constant_weights_stay_float() {
    let g = gemm(true, &[1., 2., 3., 4.], &[2, 2]);
    check_not_applicable(
        g,
        Quantize {
            skip: Some(regex::Regex::new("^y$").unwrap()),
            ..Quantize::default()
        },
    );
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[1, 2]);
    let w = b.input("w", DType::F32, &[2, 2]);
    let y = b.op("y", op("MatMul", &[]), &[x, w]);
    check_not_applicable(b.finish(&[y]), Quantize::default());
}

#[test]
fn snapshot_mlp() {
    let mut b = B::new();
    let x = b.input("input", DType::F32, &[1, 8]);
    let w1: Vec<f32> = (0..64)
        .map(|i| ((i * 5 % 17) as f32 - 8.0) / 10.0)
        .collect();
    let w1 = b.c("fc1.weight", &[8, 8], &w1);
    let b1 = b.c("fc1.bias", &[8], &[0.01f32; 8]);
    let h = b.op("h", op("Gemm", &[("transB", Attr::Int(1))]), &[x, w1, b1]);
    let r = b.op("r", op("Relu", &[]), &[h]);
    let w2: Vec<f32> = (0..32).map(|i| ((i * 3 % 11) as f32 - 5.0) / 7.0).collect();
    let w2 = b.c("fc2.weight", &[8, 4], &w2);
    let y = b.op("logits", op("MatMul", &[]), &[r, w2]);
    let mut g = b.finish(&[y]);
    let before = g.to_text();
    let r = crate::Pipeline::parse("quantize")
        .unwrap()
        .run(
            &mut g,
            &mut PassCtx::new(),
            &crate::RunOptions {
                verify_ir: true,
                ..Default::default()
            },
        )
        .unwrap();
    let text = format!(
        "{before}\n--- quantize --->\n\n{}\n{}",
        g.to_text(),
        r.table(false)
    );
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots/smelt-passes")}, {
        insta::assert_snapshot!("quantize_mlp", text);
    });
}

#[test]
fn int4_blocks_along_the_input_axis() {
    // Gemm transB=1, W [2 out, 4 in], blocks of 2 along the input axis (1):
    // [7, -3.5 | 14, -7] -> scales 1, 2 -> [7, -4 | 7, -4] (half to even);
    // [3.5, -7 | 0, 0]   -> scales 1, 1 -> [4, -7 | 0, 0].
    let mut g = gemm(true, &[7., -3.5, 14., -7., 3.5, -7., 0., 0.], &[2, 4]);
    let q = Quantize {
        bits: 4,
        block: Some(2),
        ..Quantize::default()
    };
    assert_eq!(run(&mut g, q), Changed::count(1));
    let by = g.values_by_name();
    let wq = g.const_value(by["w_q"]).unwrap();
    assert_eq!(wq.dtype(), DType::I4);
    assert_eq!(wq.byte_len(), 4);
    assert_eq!(wq.to_i64_vec().unwrap(), vec![7, -4, 7, -4, 4, -7, 0, 0]);
    let s = g.const_value(by["w_scale"]).unwrap();
    assert_eq!(
        (s.dims(), s.to_f32_vec().unwrap()),
        (&[2usize, 2][..], vec![1., 2., 1., 1.])
    );
    let dq = by["w_dq"].node;
    assert_eq!(
        g.node(dq).op,
        Op::DequantizeLinear(DequantizeLinear {
            axis: 1,
            block_size: 2,
            output_dtype: 0
        })
    );
    // fold(dequantize=true) evaluates the blocked DQ back to floats.
    crate::fold::Fold {
        dequantize: true,
        ..Default::default()
    }
    .run(&mut g, &mut PassCtx::new())
    .unwrap();
    let by = g.values_by_name();
    let back = g.const_value(by["w_dq"]).unwrap().to_f32_vec().unwrap();
    assert_eq!(back, vec![7., -4., 14., -8., 4., -7., 0., 0.]);
}

/// x: f32[1,8] -> three Gemm layers (with Relu); layer `l1` has an outlier weight, so that per
/// tensor its other weights quantize coarsely and it is the most sensitive.
fn three_layers() -> Graph {
    let mut b = B::new();
    let mut h = b.input("x", DType::F32, &[1, 8]);
    for (l, outlier) in [("l1", 40.0f32), ("l2", 1.0), ("l3", 4.0)] {
        let mut w: Vec<f32> = (0..64)
            .map(|i| (((i * 37 + l.len() * 11) % 29) as f32 - 14.0) / 20.0)
            .collect();
        w[5] = outlier;
        let wc = b.c(&format!("{l}.weight"), &[8, 8], &w);
        let bc = b.c(&format!("{l}.bias"), &[8], &[0.05f32; 8]);
        let y = b.op(l, op("Gemm", &[("transB", Attr::Int(1))]), &[h, wc, bc]);
        h = b.op(&format!("{l}.relu"), op("Relu", &[]), &[y]);
    }
    b.finish(&[h])
}

fn calib() -> Tensor {
    let v: Vec<f32> = (0..16 * 8).map(|i| ((i * 13 % 17) as f32) / 17.0).collect();
    Tensor::from_vec(vec![16, 8], &v).unwrap()
}

/// The error measure of the pass, computed here independently.
fn model_error(before: &Graph, after: &Graph) -> f64 {
    let x = calib();
    let mut worst = 0f64;
    let mut ymax = 0f64;
    for k in 0..16 {
        let s = Tensor::from_vec(vec![1, 8], &x.to_f32_vec().unwrap()[k * 8..k * 8 + 8]).unwrap();
        let (a, _) = crate::eval::run_graph(before, std::slice::from_ref(&s), false).unwrap();
        let (b, _) = crate::eval::run_graph(after, &[s], false).unwrap();
        for (p, q) in a[0]
            .to_f64_vec()
            .unwrap()
            .iter()
            .zip(b[0].to_f64_vec().unwrap())
        {
            worst = worst.max((p - q).abs());
            ymax = ymax.max(p.abs());
        }
    }
    worst / ymax
}

fn float_layers(g: &Graph) -> Vec<String> {
    let mut v: Vec<String> = g
        .node_ids()
        .into_iter()
        .filter(|id| matches!(g.node(*id).op, Op::Gemm(_)))
        .filter(|id| {
            g.node_input(*id, 1)
                .and_then(|w| g.const_value(w))
                .is_some()
        })
        .map(|id| g.node(id).name.clone())
        .collect();
    v.sort();
    v
}

fn run_calibrated(max_error: Option<f64>) -> (Graph, Vec<String>) {
    let mut g = three_layers();
    let q = Quantize {
        per_channel: false,
        calib: Some("calib.pb".into()),
        max_error,
        ..Quantize::default()
    };
    let runner = crate::eval::ReferenceRunner;
    let loader = |p: &str| {
        assert_eq!(p, "calib.pb");
        Ok(calib())
    };
    let mut cx = PassCtx::with(Some(&runner), Some(&loader));
    q.run(&mut g, &mut cx).unwrap();
    smelt_ir::verify(&g).unwrap();
    (g, cx.take_notes())
}

#[test]
fn calibration_keeps_the_most_sensitive_layers_float_within_the_budget() {
    let original = three_layers();
    let (all, notes) = run_calibrated(None);
    let e_all = model_error(&original, &all);
    assert!(float_layers(&all).is_empty());
    assert_eq!(notes.len(), 5, "{notes:?}"); // three layers, the model error, the summary
    assert!(notes[0].starts_with("layer `l1`: error "), "{notes:?}");
    // A budget above the all-quantized error keeps nothing float.
    let (g, _) = run_calibrated(Some(e_all * 1.5));
    assert!(float_layers(&g).is_empty());
    // A tighter budget keeps the outlier layer float, and is met.
    let e1 = e_all / 2.0;
    let (g1, notes1) = run_calibrated(Some(e1));
    let kept1 = float_layers(&g1);
    assert!(kept1.contains(&"l1".to_string()), "{kept1:?} {notes1:?}");
    assert!(model_error(&original, &g1) <= e1);
    // A budget of zero keeps every layer float: fewer layers float for a larger budget.
    let (g0, _) = run_calibrated(Some(0.0));
    assert_eq!(float_layers(&g0), vec!["l1", "l2", "l3"]);
    assert!(kept1.len() < 3, "{kept1:?} {notes1:?} {notes:?}");
}

#[test]
fn calibration_without_a_runner_is_refused() {
    let mut g = three_layers();
    let q = Quantize {
        calib: Some("calib.pb".into()),
        ..Quantize::default()
    };
    let e = q.run(&mut g, &mut PassCtx::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pass `quantize`: calib= needs a runner (the JIT or tract) to run the model"
    );
}
