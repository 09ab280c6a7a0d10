//! `fold` tests: small hand-built graphs, checked against hand-computed values.

use super::*;
use crate::pipeline::{Pipeline, RunOptions};
use crate::testutil::{op, B};
use smelt_ir::{Attr, DType};

fn run_fold(g: &mut Graph, f: Fold) -> (Changed, Vec<String>) {
    let p = Pipeline::new(vec![Box::new(f)]);
    let opts = RunOptions {
        verify_ir: true,
        ..RunOptions::default()
    };
    let r = p.run(g, &mut PassCtx::new(), &opts).unwrap();
    let pr = &r.passes[0];
    (Changed::count(pr.rewrites), pr.notes.clone())
}

fn check_with(mut g: Graph, f: Fold, expect: &str) -> Vec<String> {
    let before = crate::cost::graph_stats(&g);
    let (_, notes) = run_fold(&mut g, f.clone());
    // An exact rewrite never makes the graph costlier.
    let after = crate::cost::graph_stats(&g);
    assert!(after.nodes <= before.nodes, "{before:?} -> {after:?}");
    assert!(after.flops <= before.flops, "{before:?} -> {after:?}");
    assert_eq!(g.to_text().trim(), expect.trim(), "\n{}", g.to_text());
    // A second run finds nothing left to do.
    let (again, _) = run_fold(&mut g, f);
    assert_eq!(again, Changed::NONE);
    notes
}

fn check(g: Graph, expect: &str) -> Vec<String> {
    check_with(g, Fold::default(), expect)
}

fn check_not_applicable(mut g: Graph) {
    let before = g.to_text();
    let (c, _) = run_fold(&mut g, Fold::default());
    assert_eq!(c, Changed::NONE);
    assert_eq!(g.to_text(), before);
}

#[test]
fn shape_chain_folds_into_a_constant_reshape_target() {
    // Reshape(x, [x.shape[1], -1]) for x: f32[2,3] is a Reshape to [3, -1].
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2, 3]);
    let s = b.op("s", op("Shape", &[]), &[x]);
    let one = b.c("one", &[], &[1i64]);
    let d1 = b.op("d1", op("Gather", &[]), &[s, one]);
    let axes = b.c("axes", &[1], &[0i64]);
    let d1u = b.op("d1u", op("Unsqueeze", &[]), &[d1, axes]);
    let m1 = b.c("m1", &[1], &[-1i64]);
    let shape = b.op("shape", op("Concat", &[("axis", Attr::Int(0))]), &[d1u, m1]);
    let y = b.op("y", op("Reshape", &[]), &[x, shape]);
    check(
        b.finish(&[y]),
        r#"
graph t(x: f32[2,3]) -> (y: f32[3,2]) {
  %shape = const i64[2] [3, -1]
  %y = Reshape(%x, %shape) : f32[3,2]
  return %y
}"#,
    );
}

#[test]
fn no_op_reshape_cast_and_transpose_go() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2, 3]);
    let sh = b.c("sh", &[2], &[2i64, 3]);
    let r = b.op("r", op("Reshape", &[]), &[x, sh]);
    let c = b.op("c", op("Cast", &[("to", Attr::Int(1))]), &[r]);
    let t = b.op(
        "t",
        op("Transpose", &[("perm", Attr::Ints(vec![0, 1]))]),
        &[c],
    );
    let y = b.op("y", op("Relu", &[]), &[t]);
    check(
        b.finish(&[y]),
        r#"
graph t(x: f32[2,3]) -> (y: f32[2,3]) {
  %y = Relu(%x) : f32[2,3]
  return %y
}"#,
    );
}

#[test]
fn arithmetic_range_cast_and_constant_of_shape_fold() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[3]);
    let a = b.c("a", &[3], &[1f32, 2., 3.]);
    let ten = b.c("ten", &[1], &[10f32]);
    let sum = b.op("sum", op("Add", &[]), &[a, ten]);
    let y = b.op("y", op("Mul", &[]), &[x, sum]);
    // Range(0, 5, 2) = [0, 2, 4] as f32, plus ConstantOfShape([3], 1.5).
    let s0 = b.c("s0", &[], &[0i64]);
    let s1 = b.c("s1", &[], &[5i64]);
    let s2 = b.c("s2", &[], &[2i64]);
    let r = b.op("r", op("Range", &[]), &[s0, s1, s2]);
    let rf = b.op("rf", op("Cast", &[("to", Attr::Int(1))]), &[r]);
    let sh = b.c("sh", &[1], &[3i64]);
    let v = Attr::Tensor(smelt_ir::Tensor::from_vec(vec![1], &[1.5f32]).unwrap());
    let ones = b.op("ones", op("ConstantOfShape", &[("value", v)]), &[sh]);
    let k = b.op("k", op("Add", &[]), &[rf, ones]);
    let z = b.op("z", op("Add", &[]), &[y, k]);
    check(
        b.finish(&[z]),
        r#"
graph t(x: f32[3]) -> (z: f32[3]) {
  %sum = const f32[3] [11.0, 12.0, 13.0]
  %k = const f32[3] [1.5, 3.5, 5.5]
  %y = Mul(%x, %sum) : f32[3]
  %z = Add(%y, %k) : f32[3]
  return %z
}"#,
    );
}

fn qdq_graph() -> Graph {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[4]);
    let w = b.c("w", &[4], &[1.25f32, -0.75, 0.25, 100.0]);
    let s = b.c("s", &[], &[0.5f32]);
    let z = b.c("z", &[], &[1i8]);
    let wq = b.op("wq", op("QuantizeLinear", &[]), &[w, s, z]);
    let wd = b.op("wd", op("DequantizeLinear", &[]), &[wq, s, z]);
    let y = b.op("y", op("Mul", &[]), &[x, wd]);
    b.finish(&[y])
}

#[test]
fn quantize_linear_on_a_constant_becomes_int8_storage() {
    // w / 0.5 = [2.5, -1.5, 0.5, 200] -> half to even [2, -2, 0, 200] -> + 1 -> saturate.
    check(
        qdq_graph(),
        r#"
graph t(x: f32[4]) -> (y: f32[4]) {
  %s = const f32[] [0.5]
  %z = const i8[] [1]
  %wq = const i8[4] [3, -1, 1, 127]
  %wd = DequantizeLinear(%wq, %s, %z) : f32[4]
  %y = Mul(%x, %wd) : f32[4]
  return %y
}"#,
    );
}

#[test]
fn dequantize_true_evaluates_qdq_into_float_constants() {
    // (q - 1) * 0.5 for q = [3, -1, 1, 127].
    check_with(
        qdq_graph(),
        Fold {
            dequantize: true,
            ..Fold::default()
        },
        r#"
graph t(x: f32[4]) -> (y: f32[4]) {
  %wd = const f32[4] [1.0, -1.0, 0.0, 63.0]
  %y = Mul(%x, %wd) : f32[4]
  return %y
}"#,
    );
}

#[test]
fn batchnorm_folds_into_conv() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[1, 1, 3, 3]);
    let w = b.c("w", &[2, 1, 1, 1], &[2f32, 3.]);
    let bias = b.c("bias", &[2], &[1f32, 0.]);
    let conv = b.op("conv", op("Conv", &[]), &[x, w, bias]);
    let sc = b.c("scale", &[2], &[1f32, 2.]);
    let bb = b.c("B", &[2], &[0.5f32, 0.]);
    let mean = b.c("mean", &[2], &[1f32, 1.]);
    let var = b.c("var", &[2], &[3f32, 0.]);
    let bn = b.op(
        "bn",
        op("BatchNormalization", &[("epsilon", Attr::Float(1.0))]),
        &[conv, sc, bb, mean, var],
    );
    let y = b.op("y", op("Relu", &[]), &[bn]);
    // s = scale / sqrt(var + 1) = [0.5, 2]; t = B - mean * s = [0, -2];
    // W' = W * s = [1, 6]; b' = bias * s + t = [0.5, -2].
    check(
        b.finish(&[y]),
        r#"
graph t(x: f32[1,1,3,3]) -> (y: f32[1,2,3,3]) {
  %w_bn = const f32[2,1,1,1] [1.0, 6.0]
  %w_bn_bias = const f32[2] [0.5, -2.0]
  %bn = Conv(%x, %w_bn, %w_bn_bias) : f32[1,2,3,3]
  %y = Relu(%bn) : f32[1,2,3,3]
  return %y
}"#,
    );
}

fn bn_params(b: &mut B) -> [ValueId; 4] {
    [
        b.c("scale", &[2], &[1f32, 2.]),
        b.c("B", &[2], &[0.5f32, 0.]),
        b.c("mean", &[2], &[1f32, 1.]),
        b.c("var", &[2], &[3f32, 0.]),
    ]
}

#[test]
fn batchnorm_folds_into_gemm_and_matmul() {
    // Gemm with transB=1, beta=2: W rows scale by s = [0.5, 2]; C' = 2 * C * s + t
    // = [2 * 1 * 0.5 + 0, 2 * 1 * 2 - 2] = [1, 2].
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[1, 2]);
    let w = b.c("w", &[2, 2], &[1f32, 2., 3., 4.]);
    let c = b.c("c", &[2], &[1f32, 1.]);
    let gemm = b.op(
        "gemm",
        op(
            "Gemm",
            &[("transB", Attr::Int(1)), ("beta", Attr::Float(2.0))],
        ),
        &[x, w, c],
    );
    let [sc, bb, mean, var] = bn_params(&mut b);
    let bn = b.op(
        "bn",
        op("BatchNormalization", &[("epsilon", Attr::Float(1.0))]),
        &[gemm, sc, bb, mean, var],
    );
    check(
        b.finish(&[bn]),
        r#"
graph t(x: f32[1,2]) -> (bn: f32[1,2]) {
  %w_bn = const f32[2,2] [0.5, 1.0, 6.0, 8.0]
  %w_bn_bias = const f32[2] [1.0, 2.0]
  %bn = Gemm(%x, %w_bn, %w_bn_bias) {transB=1} : f32[1,2]
  return %bn
}"#,
    );
    // MatMul: W [in, out] columns scale by s; t is added after.
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[1, 2]);
    let w = b.c("w", &[2, 2], &[1f32, 2., 3., 4.]);
    let mm = b.op("mm", op("MatMul", &[]), &[x, w]);
    let [sc, bb, mean, var] = bn_params(&mut b);
    let bn = b.op(
        "bn",
        op("BatchNormalization", &[("epsilon", Attr::Float(1.0))]),
        &[mm, sc, bb, mean, var],
    );
    let y = b.op("y", op("Relu", &[]), &[bn]);
    check(
        b.finish(&[y]),
        r#"
graph t(x: f32[1,2]) -> (y: f32[1,2]) {
  %w_bn = const f32[2,2] [0.5, 4.0, 1.5, 8.0]
  %w_bn_bias = const f32[2] [0.0, -2.0]
  %mm_bn = MatMul(%x, %w_bn) : f32[1,2]
  %bn = Add(%mm_bn, %w_bn_bias) : f32[1,2]
  %y = Relu(%bn) : f32[1,2]
  return %y
}"#,
    );
}

#[test]
fn batchnorm_stays_when_the_conv_output_has_another_user() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[1, 1, 3, 3]);
    let w = b.c("w", &[2, 1, 1, 1], &[2f32, 3.]);
    let conv = b.op("conv", op("Conv", &[]), &[x, w]);
    let [sc, bb, mean, var] = bn_params(&mut b);
    let bn = b.op(
        "bn",
        op("BatchNormalization", &[]),
        &[conv, sc, bb, mean, var],
    );
    let y = b.op("y", op("Add", &[]), &[bn, conv]);
    check_not_applicable(b.finish(&[y]));
}

#[test]
fn identity_and_dropout_go_and_outputs_keep_their_names() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let r = b.op("r", op("Relu", &[]), &[x]);
    let i1 = b.op("i1", op("Identity", &[]), &[r]);
    let d = b.op("d", op("Dropout", &[]), &[i1]);
    let out = b.op("out", op("Identity", &[]), &[d]);
    check(
        b.finish(&[out]),
        r#"
graph t(x: f32[2]) -> (out: f32[2]) {
  %out = Relu(%x) : f32[2]
  return %out
}"#,
    );
    // An output fed straight by an input keeps its Identity.
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let out = b.op("out", op("Identity", &[]), &[x]);
    check_not_applicable(b.finish(&[out]));
}

#[test]
fn if_on_a_constant_condition_is_inlined() {
    let mut then_b = B::new();
    let xc = then_b
        .g
        .add_capture("xt", smelt_ir::Type::tensor(DType::F32, &[2]));
    let t = then_b.op("t", op("Relu", &[]), &[xc]);
    then_b.g.set_outputs(vec![t]).unwrap();
    let mut else_b = B::new();
    let xc = else_b
        .g
        .add_capture("xe", smelt_ir::Type::tensor(DType::F32, &[2]));
    let e = else_b.op("e", op("Neg", &[]), &[xc]);
    else_b.g.set_outputs(vec![e]).unwrap();
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let cond = b.c("cond", &[], &[true]);
    let iff = Op::If(smelt_ir::ops::If {
        then_branch: Box::new(then_b.g),
        else_branch: Box::new(else_b.g),
    });
    let y = b.op("y", iff, &[cond, x]);
    let z = b.op("z", op("Abs", &[]), &[y]);
    check(
        b.finish(&[z]),
        r#"
graph t(x: f32[2]) -> (z: f32[2]) {
  %y = Relu(%x) : f32[2]
  %z = Abs(%y) : f32[2]
  return %z
}"#,
    );
}

#[test]
fn equal_constants_and_equal_nodes_are_merged_and_dead_code_goes() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let c1 = b.c("c1", &[2], &[1f32, 2.]);
    let c2 = b.c("c2", &[2], &[1f32, 2.]);
    let _unused = b.c("unused", &[1], &[0f32]);
    let a1 = b.op("a1", op("Add", &[]), &[x, c1]);
    let a2 = b.op("a2", op("Add", &[]), &[x, c2]);
    let dead = b.op("dead", op("Exp", &[]), &[x]);
    let _ = dead;
    let y = b.op("y", op("Mul", &[]), &[a1, a2]);
    check(
        b.finish(&[y]),
        r#"
graph t(x: f32[2]) -> (y: f32[2]) {
  %c1 = const f32[2] [1.0, 2.0]
  %a1 = Add(%x, %c1) : f32[2]
  %y = Mul(%a1, %a1) : f32[2]
  return %y
}"#,
    );
}

#[test]
fn size_guard_leaves_large_values_and_says_so() {
    let build = || {
        let mut b = B::new();
        let x = b.input("x", DType::F32, &[1000]);
        let sh = b.c("sh", &[1], &[1000i64]);
        let big = b.op("big", op("ConstantOfShape", &[]), &[sh]);
        let y = b.op("y", op("Add", &[]), &[x, big]);
        b.finish(&[y])
    };
    let mut g = build();
    let (c, notes) = run_fold(
        &mut g,
        Fold {
            max_bytes: 100,
            ..Fold::default()
        },
    );
    assert_eq!(c, Changed::NONE);
    assert_eq!(
        notes,
        vec!["left `big` (ConstantOfShape) unfolded: its value would take 4000 bytes, over max_bytes=100"]
    );
    // A value larger than the limit but smaller than what it replaces still folds.
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[30]);
    let w = b.c("w", &[40], &[1f32; 40]);
    let st = b.c("st", &[1], &[0i64]);
    let en = b.c("en", &[1], &[30i64]);
    let s = b.op("s", op("Slice", &[]), &[w, st, en]);
    let y = b.op("y", op("Add", &[]), &[x, s]);
    let mut g = b.finish(&[y]);
    let (c, _) = run_fold(
        &mut g,
        Fold {
            max_bytes: 100,
            ..Fold::default()
        },
    );
    assert!(c.any());
    assert!(!g.to_text().contains("Slice"));
    // With the default limit, the big one folds.
    let mut g = build();
    let (c, _) = run_fold(&mut g, Fold::default());
    assert!(c.any());
    assert!(!g.to_text().contains("ConstantOfShape"));
}

#[test]
fn folding_a_graph_output_keeps_its_name() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let a = b.c("a", &[2], &[1f32, 2.]);
    let y = b.op("y", op("Neg", &[]), &[a]);
    let z = b.op("z", op("Add", &[]), &[x, y]);
    check(
        b.finish(&[y, z]),
        r#"
graph t(x: f32[2]) -> (y: f32[2], z: f32[2]) {
  %y_const = const f32[2] [-1.0, -2.0]
  %z = Add(%x, %y_const) : f32[2]
  %y = Identity(%y_const) : f32[2]
  return %y, %z
}"#,
    );
}

#[test]
fn nothing_to_fold_on_a_plain_graph() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let w = b.c("w", &[2], &[1f32, 2.]);
    let y = b.op("y", op("Mul", &[]), &[x, w]);
    check_not_applicable(b.finish(&[y]));
}

#[test]
fn known_dims_of_a_partly_symbolic_shape_fold() {
    // x: f32[batch, 64]: Shape -> Gather(1) is 64 and Slice [1:] is [64]; Gather(0) stays.
    let mut b = B::new();
    let ty = smelt_ir::Type::Tensor(smelt_ir::TensorType {
        dtype: Some(DType::F32),
        shape: Some(vec![
            smelt_ir::Dim::Sym("batch".into()),
            smelt_ir::Dim::Known(64),
        ]),
    });
    let x = b.g.add_input("x", ty);
    let s = b.op("s", op("Shape", &[]), &[x]);
    let one = b.c("one", &[], &[1i64]);
    let zero = b.c("zero", &[], &[0i64]);
    let d1 = b.op("d1", op("Gather", &[]), &[s, one]);
    let d0 = b.op("d0", op("Gather", &[]), &[s, zero]);
    let st = b.c("st", &[1], &[1i64]);
    let en = b.c("en", &[1], &[i64::MAX]);
    let tail = b.op("tail", op("Slice", &[]), &[s, st, en]);
    check(
        b.finish(&[d0, d1, tail]),
        r#"
graph t(x: f32[batch,64]) -> (d0: i64[], d1: i64[], tail: i64[1]) {
  %zero = const i64[] [0]
  %d1_const = const i64[] [64]
  %tail_const = const i64[1] [64]
  %s = Shape(%x) : i64[2]
  %d0 = Gather(%s, %zero) : i64[]
  %d1 = Identity(%d1_const) : i64[]
  %tail = Identity(%tail_const) : i64[1]
  return %d0, %d1, %tail
}"#,
    );
}

/// A small CNN with everything fold does: BN after Conv, a Shape -> Reshape chain, Identity,
/// a weight as float -> QuantizeLinear -> DequantizeLinear, a duplicated constant.
fn small_cnn() -> Graph {
    let mut b = B::new();
    let x = b.input("input", DType::F32, &[1, 1, 4, 4]);
    let w: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) / 8.0).collect();
    let w = b.c("conv.weight", &[2, 1, 3, 3], &w);
    let cb = b.c("conv.bias", &[2], &[0.1f32, -0.1]);
    let conv = b.op(
        "conv",
        op("Conv", &[("pads", Attr::Ints(vec![1, 1, 1, 1]))]),
        &[x, w, cb],
    );
    let sc = b.c("bn.weight", &[2], &[1f32, 0.5]);
    let bb = b.c("bn.bias", &[2], &[0f32, 0.25]);
    let mean = b.c("bn.running_mean", &[2], &[0.5f32, -0.5]);
    let var = b.c("bn.running_var", &[2], &[4f32, 0.25]);
    let bn = b.op(
        "bn",
        op("BatchNormalization", &[]),
        &[conv, sc, bb, mean, var],
    );
    let r = b.op("relu", op("Relu", &[]), &[bn]);
    let s = b.op("shape", op("Shape", &[]), &[r]);
    let zero = b.c("zero", &[1], &[0i64]);
    let n = b.op("n", op("Gather", &[]), &[s, zero]);
    let m1 = b.c("minus_one", &[1], &[-1i64]);
    let target = b.op("target", op("Concat", &[("axis", Attr::Int(0))]), &[n, m1]);
    let flat = b.op("flat", op("Reshape", &[]), &[r, target]);
    let fw: Vec<f32> = (0..96)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 16.0)
        .collect();
    let fw = b.c("fc.weight", &[3, 32], &fw);
    let fs = b.c("fc.weight_scale", &[3], &[0.03f32, 0.02, 0.025]);
    let fz = b.c("fc.weight_zero_point", &[3], &[0i8, 0, 0]);
    let q = b.op(
        "fc.weight_q",
        op("QuantizeLinear", &[("axis", Attr::Int(0))]),
        &[fw, fs, fz],
    );
    let dq = b.op(
        "fc.weight_dq",
        op("DequantizeLinear", &[("axis", Attr::Int(0))]),
        &[q, fs, fz],
    );
    let fb = b.c("fc.bias", &[3], &[0.1f32, -0.1, 0.1]);
    let fb2 = b.c("fc.bias_copy", &[3], &[0.1f32, -0.1, 0.1]);
    let fc = b.op(
        "fc",
        op("Gemm", &[("transB", Attr::Int(1))]),
        &[flat, dq, fb],
    );
    let plus = b.op("plus", op("Add", &[]), &[fc, fb2]);
    let out = b.op("logits", op("Identity", &[]), &[plus]);
    b.finish(&[out])
}

#[test]
fn snapshot_small_cnn() {
    let mut g = small_cnn();
    let before = g.to_text();
    let r = Pipeline::parse("fold")
        .unwrap()
        .run(
            &mut g,
            &mut PassCtx::new(),
            &RunOptions {
                verify_ir: true,
                ..RunOptions::default()
            },
        )
        .unwrap();
    let text = format!(
        "{before}\n--- fold --->\n\n{}\n{}",
        g.to_text(),
        r.table(false)
    );
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots/smelt-passes")}, {
        insta::assert_snapshot!("fold_small_cnn", text);
    });
}

#[test]
fn subgraphs_are_folded_inside() {
    // An If on a runtime condition: its branches fold on their own.
    let mut then_b = B::new();
    let xc = then_b
        .g
        .add_capture("xt", smelt_ir::Type::tensor(DType::F32, &[2]));
    let a = then_b.c("a", &[2], &[1f32, 2.]);
    let a2 = then_b.op("a2", op("Add", &[]), &[a, a]);
    let t = then_b.op("t", op("Mul", &[]), &[xc, a2]);
    then_b.g.set_outputs(vec![t]).unwrap();
    let mut else_b = B::new();
    let xe = else_b
        .g
        .add_capture("xe", smelt_ir::Type::tensor(DType::F32, &[2]));
    let e = else_b.op("e", op("Identity", &[]), &[xe]);
    let e2 = else_b.op("e2", op("Neg", &[]), &[e]);
    else_b.g.set_outputs(vec![e2]).unwrap();
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let c = b.input("c", DType::Bool, &[]);
    let iff = Op::If(smelt_ir::ops::If {
        then_branch: Box::new(then_b.g),
        else_branch: Box::new(else_b.g),
    });
    let y = b.op("y", iff, &[c, x]);
    let g = b.finish(&[y]);
    let mut g2 = g.clone();
    let (changed, _) = run_fold(&mut g2, Fold::default());
    assert!(changed.any());
    let Op::If(o) = &g2.node(g2.outputs()[0].node).op else {
        panic!("not an If")
    };
    assert_eq!(
        o.then_branch.to_text().trim(),
        "graph t() -> (t: f32[2]) captures(xt: f32[2]) {\n  %a2 = const f32[2] [2.0, 4.0]\n  %t = Mul(%xt, %a2) : f32[2]\n  return %t\n}"
    );
    assert_eq!(
        o.else_branch.to_text().trim(),
        "graph t() -> (e2: f32[2]) captures(xe: f32[2]) {\n  %e2 = Neg(%xe) : f32[2]\n  return %e2\n}"
    );
}

#[test]
fn size_and_inference_dropout_with_explicit_inputs() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2, 3]);
    let ratio = b.c("ratio", &[], &[0.5f32]);
    let train = b.c("train", &[], &[false]);
    let d = b.node(
        "d",
        op("Dropout", &[]),
        &[Some(x), Some(ratio), Some(train)],
        2,
    );
    let d = ValueId::new(d, 0);
    let n = b.op("n", op("Size", &[]), &[d]);
    let nf = b.op("nf", op("Cast", &[("to", Attr::Int(1))]), &[n]);
    let y = b.op("y", op("Mul", &[]), &[d, nf]);
    check(
        b.finish(&[y]),
        r#"
graph t(x: f32[2,3]) -> (y: f32[2,3]) {
  %nf = const f32[] [6.0]
  %y = Mul(%x, %nf) : f32[2,3]
  return %y
}"#,
    );
    // Training mode, or a mask someone reads, keeps the Dropout.
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let d = b.node("d", op("Dropout", &[]), &[Some(x)], 2);
    let y = b.op("y", op("Not", &[]), &[ValueId::new(d, 1)]);
    let z = b.op("z", op("Relu", &[]), &[ValueId::new(d, 0)]);
    check_not_applicable(b.finish(&[y, z]));
}

#[test]
fn folding_the_small_cnn_keeps_every_named_value() {
    // The reference runner runs the graph before and after: the output and every value both
    // graphs name (the BN output now computed by the Conv among them) agree.
    let g = small_cnn();
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin()).collect();
    let x = smelt_ir::Tensor::from_vec(vec![1, 1, 4, 4], &x).unwrap();
    let runner = crate::eval::ReferenceRunner;
    let mut after = g.clone();
    let o = RunOptions {
        verify_ir: true,
        verify_each: Some(crate::VerifyEach {
            runner: &runner,
            inputs: vec![x.clone()],
            rtol: 1e-5,
            atol: 1e-6,
        }),
        ..RunOptions::default()
    };
    let r = Pipeline::parse("fold")
        .unwrap()
        .run(&mut after, &mut PassCtx::new(), &o)
        .unwrap();
    assert_eq!(r.passes[0].verified.as_deref(), Some("ok"));
    let (_, vb) = crate::eval::run_graph(&g, std::slice::from_ref(&x), true).unwrap();
    let (_, va) = crate::eval::run_graph(&after, &[x], true).unwrap();
    let mut compared = 0;
    for (name, a) in &va {
        let Some(b) = vb.get(name) else { continue };
        let (p, q) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        for (u, v) in p.iter().zip(&q) {
            assert!((u - v).abs() <= 1e-6 + 1e-5 * v.abs(), "{name}: {u} vs {v}");
        }
        compared += 1;
    }
    assert!(va.contains_key("bn") && compared >= 10, "{compared}");
}

/// A small deterministic generator (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// A random graph over x: f32[2,3] mixing constant and runtime values, duplicates and
/// identities, shapes of both, with several outputs.
fn random_graph(seed: u64) -> Graph {
    let mut r = Lcg(seed);
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2, 3]);
    let mut vals = vec![x];
    for k in 0..3 {
        let v: Vec<f32> = (0..6).map(|_| r.next(7) as f32 - 3.0).collect();
        vals.push(b.c(&format!("c{k}"), &[2, 3], &v));
    }
    for i in 0..14 {
        let a = vals[r.next(vals.len())];
        let c = vals[r.next(vals.len())];
        let name = format!("v{i}");
        let v = match r.next(9) {
            0 => b.op(&name, op("Add", &[]), &[a, c]),
            1 => b.op(&name, op("Mul", &[]), &[a, c]),
            2 => b.op(&name, op("Sub", &[]), &[a, c]),
            3 => b.op(&name, op("Relu", &[]), &[a]),
            4 => b.op(&name, op("Identity", &[]), &[a]),
            5 => b.op(&name, op("Neg", &[]), &[a]),
            6 => {
                // Reshape through a shape computed from the value's own Shape.
                let s = b.op(&format!("{name}_s"), op("Shape", &[]), &[a]);
                let t = b.op(&format!("{name}_t"), op("Reshape", &[]), &[a, s]);
                b.op(&name, op("Abs", &[]), &[t])
            }
            7 => {
                let t = b.op(&format!("{name}_t"), op("Transpose", &[]), &[a]);
                b.op(&name, op("Transpose", &[]), &[t])
            }
            _ => {
                let d = b.op(&format!("{name}_d"), op("Add", &[]), &[a, c]);
                let e = b.op(&format!("{name}_e"), op("Add", &[]), &[a, c]);
                b.op(&name, op("Sub", &[]), &[d, e])
            }
        };
        vals.push(v);
    }
    let n = vals.len();
    let outs = vec![vals[n - 1], vals[n - 2], vals[4 + r.next(n - 4)]];
    let mut seen = std::collections::HashSet::new();
    let outs: Vec<ValueId> = outs.into_iter().filter(|v| seen.insert(*v)).collect();
    b.finish(&outs)
}

#[test]
fn random_graphs_fold_exactly() {
    let x: Vec<f32> = vec![0.5, -1.5, 2.0, -0.25, 3.0, -2.0];
    let x = smelt_ir::Tensor::from_vec(vec![2, 3], &x).unwrap();
    for seed in 0..200 {
        let g = random_graph(seed);
        let mut h = g.clone();
        let before = crate::cost::graph_stats(&g);
        let (changed, _) = run_fold(&mut h, Fold::default());
        let after = crate::cost::graph_stats(&h);
        // FLOPs compare when the shapes were known before (folding makes shapes known).
        let flops_ok = before.unknown_cost_nodes > 0 || after.flops <= before.flops;
        assert!(
            after.nodes <= before.nodes && flops_ok,
            "seed {seed}: {before:?} -> {after:?}\n{}\n{}",
            g.to_text(),
            h.to_text()
        );
        let (a, _) = crate::eval::run_graph(&g, std::slice::from_ref(&x), false).unwrap();
        let (o, _) = crate::eval::run_graph(&h, std::slice::from_ref(&x), false).unwrap();
        assert_eq!(
            a,
            o,
            "seed {seed}: {changed:?}\n{}\n{}",
            g.to_text(),
            h.to_text()
        );
        let names = |g: &Graph| -> Vec<String> {
            g.outputs()
                .iter()
                .map(|v| g.value(*v).name.clone())
                .collect()
        };
        assert_eq!(
            names(&g),
            names(&h),
            "seed {seed}\n{}\n{}",
            g.to_text(),
            h.to_text()
        );
        let (again, _) = run_fold(&mut h, Fold::default());
        assert_eq!(again, Changed::NONE, "seed {seed}\n{}", h.to_text());
    }
}

#[test]
fn inlined_names_stay_unique_across_sibling_subgraphs() {
    // Two Ifs whose branches both name a value `t1`; inlining the first must not take `t1`
    // in the outer graph while the second still holds it.
    let branch = |cap: &str, out: &str| {
        let mut s = B::new();
        let c =
            s.g.add_capture(cap, smelt_ir::Type::tensor(DType::F32, &[2]));
        let t1 = s.op("t1", op("Relu", &[]), &[c]);
        let t = s.op(out, op("Neg", &[]), &[t1]);
        s.g.set_outputs(vec![t]).unwrap();
        s.g
    };
    let iff = |a: Graph, b: Graph| {
        Op::If(smelt_ir::ops::If {
            then_branch: Box::new(a),
            else_branch: Box::new(b),
        })
    };
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let c = b.input("c", DType::Bool, &[]);
    let yes = b.c("yes", &[], &[true]);
    let y1 = b.op("y1", iff(branch("xa", "ta"), branch("xb", "tb")), &[yes, x]);
    let y2 = b.op("y2", iff(branch("xc", "tc"), branch("xd", "td")), &[c, y1]);
    let mut g = b.finish(&[y2]);
    let (changed, _) = run_fold(&mut g, Fold::default());
    assert!(changed.any());
    let text = g.to_text();
    assert!(text.contains("%t1_1 = Relu(%x)"), "{text}");
    assert!(text.contains("%y1 = Neg(%t1_1)"), "{text}");
}
