//! The passes on the fixtures, judged by independent references: onnxruntime's committed logits
//! and labels, and tract running the rewritten ONNX model.

mod common;

use smelt::passes::{PassCtx, Pipeline, RunOptions};
use smelt_ir::{Model, Op};
use smelt_verify::TractModel;

fn run_passes(m: &mut Model, spec: &str) {
    let runner = smelt::runner::TractRunner::for_model(m);
    let loader = smelt::runner::FileLoader;
    let mut cx = PassCtx::with(Some(&runner), Some(&loader));
    let opts = RunOptions {
        verify_ir: true,
        ..RunOptions::default()
    };
    Pipeline::parse(spec)
        .unwrap()
        .run(&mut m.graph, &mut cx, &opts)
        .map_err(|e| e.error.to_string())
        .unwrap();
}

fn load(name: &str) -> Model {
    smelt_onnx::load_model(&common::fixtures().join(name).join("model.onnx")).unwrap()
}

/// tract's outputs of `m` (exported) on every digits test image.
fn logits_on_test_set(m: &Model, dims: &[usize]) -> (Vec<smelt_ir::Tensor>, Vec<i64>) {
    let bytes = smelt_onnx::model_to_bytes(m).unwrap();
    let (xs, ys) = common::digits_test(dims);
    let tm = TractModel::load_bytes(&bytes, &xs[..1]).unwrap();
    (
        xs.iter()
            .map(|x| tm.run(std::slice::from_ref(x)).unwrap().remove(0))
            .collect(),
        ys,
    )
}

fn max_abs_vs_reference(outs: &[smelt_ir::Tensor], reference: &str) -> f64 {
    let r = smelt_onnx::read_tensor_file(&common::fixtures().join(reference))
        .unwrap()
        .1;
    let refs = common::samples(&r, &[1, 10]);
    outs.iter()
        .zip(&refs)
        .map(|(a, b)| smelt_verify::compare(a, b, smelt_verify::Tolerance::EXACT).max_abs)
        .fold(0.0, f64::max)
}

fn accuracy(outs: &[smelt_ir::Tensor], ys: &[i64]) -> f64 {
    outs.iter()
        .zip(ys)
        .filter(|(o, y)| common::argmax(o) as i64 == **y)
        .count() as f64
        / ys.len() as f64
}

fn q_or_dq_on_constants(m: &Model) -> (usize, usize) {
    let g = &m.graph;
    let (mut q, mut dq) = (0, 0);
    for id in g.node_ids() {
        let on_const = g
            .node_input(id, 0)
            .is_some_and(|v| g.const_value(v).is_some());
        match g.node(id).op {
            Op::QuantizeLinear(_) if on_const => q += 1,
            Op::DequantizeLinear(_) if on_const => dq += 1,
            _ => {}
        }
    }
    (q, dq)
}

#[test]
fn fold_turns_weight_qdq_pairs_into_int8_storage_exactly() {
    let mut m = load("digits_mlp_qdq_wpair");
    let before = smelt_onnx::model_to_bytes(&m).unwrap().len();
    run_passes(&mut m, "fold");
    assert_eq!(
        q_or_dq_on_constants(&m).0,
        0,
        "a QuantizeLinear on a constant remains"
    );
    let after = smelt_onnx::model_to_bytes(&m).unwrap().len();
    let original = std::fs::metadata(common::fixtures().join("digits_mlp_qdq_wpair/model.onnx"))
        .unwrap()
        .len() as usize;
    assert!(
        after < original && after < before,
        "{after} bytes vs {original}"
    );
    let (outs, _) = logits_on_test_set(&m, &[1, 64]);
    let err = max_abs_vs_reference(&outs, "digits_mlp_qdq/test_outputs.pb");
    assert!(
        err <= 1e-4,
        "max abs error vs the QDQ model's logits: {err}"
    );
}

#[test]
fn fold_dequantize_evaluates_every_qdq_on_constants() {
    let mut m = load("digits_mlp_qdq");
    run_passes(&mut m, "fold(dequantize=true)");
    assert_eq!(q_or_dq_on_constants(&m), (0, 0));
    let (outs, _) = logits_on_test_set(&m, &[1, 64]);
    let err = max_abs_vs_reference(&outs, "digits_mlp_qdq/test_outputs.pb");
    assert!(
        err <= 1e-4,
        "max abs error vs the QDQ model's logits: {err}"
    );
}

#[test]
fn quantize_int8_shrinks_mlp_and_cnn_and_keeps_accuracy() {
    for (name, dims, base_acc) in [
        ("digits_mlp", vec![1, 64], 0.974),
        ("digits_cnn", vec![1, 1, 8, 8], 0.992),
    ] {
        let mut m = load(name);
        run_passes(&mut m, "fold,quantize");
        let size = smelt_onnx::model_to_bytes(&m).unwrap().len() as f64;
        let original = std::fs::metadata(common::fixtures().join(name).join("model.onnx"))
            .unwrap()
            .len() as f64;
        assert!(
            size <= 0.35 * original,
            "{name}: {size} bytes is more than 0.35x {original}"
        );
        let (outs, ys) = logits_on_test_set(&m, &dims);
        let acc = accuracy(&outs, &ys);
        assert!(
            acc >= base_acc - 0.005,
            "{name}: accuracy {acc} dropped more than 0.5 points from {base_acc}"
        );
    }
}

#[test]
fn quantize_int4_blocks_shrink_below_a_fifth_and_dequantize_for_tract() {
    let mut m = load("digits_mlp");
    run_passes(&mut m, "quantize(bits=4,block=32)");
    let size = smelt_onnx::model_to_bytes(&m).unwrap().len() as f64;
    let original = std::fs::metadata(common::fixtures().join("digits_mlp/model.onnx"))
        .unwrap()
        .len() as f64;
    assert!(
        size <= 0.2 * original,
        "{size} bytes is more than 0.2x {original}"
    );
    // tract has no int4: the same model with its weights dequantized runs there.
    run_passes(&mut m, "fold(dequantize=true)");
    let (outs, ys) = logits_on_test_set(&m, &[1, 64]);
    let acc = accuracy(&outs, &ys);
    assert!(acc >= 0.974 - 0.015, "accuracy {acc}");
}

#[test]
fn light_models_fold_to_graphs_without_shape_constants_and_keep_their_outputs() {
    let Some(shared) = common::shared() else {
        eprintln!("skipped: ../shared/onnx-light-models is absent");
        return;
    };
    for name in [
        "bvlc_alexnet",
        "densenet121",
        "inception_v1",
        "inception_v2",
        "resnet50",
        "shufflenet",
        "squeezenet",
        "vgg19",
        "zfnet512",
    ] {
        let dir = shared.join("onnx-light-models").join(name);
        let mut m = smelt_onnx::load_model(&dir.join("model.onnx")).unwrap();
        run_passes(&mut m, "fold");
        let left: Vec<String> = m
            .graph
            .node_ids()
            .into_iter()
            .filter(|id| {
                matches!(m.graph.node(*id).op, Op::ConstantOfShape(_) | Op::Shape(_))
                    || m.graph.node(*id).op.op_type() == "Constant"
            })
            .map(|id| m.graph.display_node_name(id))
            .collect();
        assert!(left.is_empty(), "{name}: {left:?} left after fold");
        let data = dir.join("test_data_set_0");
        let inputs = common::read_numbered(&data, "input");
        let expected = common::read_numbered(&data, "output");
        let out = smelt_verify::run_tract_bytes(&smelt_onnx::model_to_bytes(&m).unwrap(), &inputs)
            .unwrap();
        for c in smelt_verify::compare_all(&out, &expected, smelt_verify::Tolerance::EXACT) {
            assert!(c.ok(), "{name}: {c:?}");
        }
    }
}

/// The JIT runs the quantized weights (int8, and int4 in blocks) and agrees with tract
/// on the ONNX output: the same predictions for int8, logits within 1e-4 of the dequantized
/// model for int4.
#[test]
fn jit_runs_quantized_weights_like_tract() {
    for (name, dims, spec) in [
        ("digits_mlp", vec![1, 64], "fold,quantize"),
        ("digits_cnn", vec![1, 1, 8, 8], "fold,quantize"),
        ("digits_mlp", vec![1, 64], "fold,quantize(bits=4,block=32)"),
        (
            "digits_cnn",
            vec![1, 1, 8, 8],
            "fold,quantize(bits=4,block=32)",
        ),
    ] {
        let mut m = load(name);
        run_passes(&mut m, spec);
        let (xs, _) = common::digits_test(&dims);
        let opts = smelt::codegen::jit::Options {
            input_shapes: vec![("input".into(), dims.clone())],
            ..Default::default()
        };
        let refused = smelt::check_native(&m);
        assert!(
            refused.is_empty(),
            "{name} {spec}: check refuses {refused:?}"
        );
        // With a symbolic batch (bound only at compile time), check and compilation agree too.
        let mut sym = m.clone();
        let input = sym.graph.inputs()[0];
        let mut shape = vec![smelt_ir::Dim::Sym("batch".into())];
        shape.extend(dims[1..].iter().map(|d| smelt_ir::Dim::Known(*d as u64)));
        sym.graph.set_value_type(
            input,
            smelt_ir::Type::Tensor(smelt_ir::TensorType {
                dtype: Some(smelt_ir::DType::F32),
                shape: Some(shape),
            }),
        );
        let refused = smelt::check_native(&sym);
        assert!(
            refused.is_empty(),
            "{name} {spec}, batch: check refuses {refused:?}"
        );
        smelt::compile_jit(&sym, &opts).unwrap_or_else(|e| panic!("{name} {spec}, batch: {e}"));
        let mut cm = smelt::compile_jit(&m, &opts).unwrap_or_else(|e| panic!("{name} {spec}: {e}"));
        let mut reference = m.clone();
        if spec.contains("bits=4") {
            // tract has no int4: it runs the same weights dequantized.
            run_passes(&mut reference, "fold(dequantize=true)");
        }
        let (tract_out, _) = logits_on_test_set(&reference, &dims);
        let mut same = 0;
        let mut worst = 0.0f64;
        for (x, t) in xs.iter().zip(&tract_out) {
            let j = cm.run(&[x.into()]).unwrap().remove(0);
            same += usize::from(common::argmax(&j) == common::argmax(t));
            worst = worst.max(smelt_verify::compare(&j, t, smelt_verify::Tolerance::EXACT).max_abs);
        }
        eprintln!("{name} {spec}: {same}/500 same predictions, max abs {worst:.2e}");
        assert_eq!(same, xs.len(), "{name} {spec}");
        assert!(worst <= 1e-4, "{name} {spec}: max abs {worst}");
    }
}

/// `quantize(calib=…, max_error=E)` on digits_mlp with tract as the runner: the error measured
/// with tract afterwards (max |y_q − y| / max |y| over the 200 calibration images) is within E,
/// and a larger E keeps fewer layers in float.
#[test]
fn calibrated_quantize_meets_its_budget_measured_with_tract() {
    let calib = common::fixtures().join("digits_calib/x.pb");
    let original = load("digits_mlp");
    let x = smelt_onnx::read_tensor_file(&calib).unwrap().1;
    let xs = common::samples(&x, &[1, 64]);
    let run_all = |m: &Model| -> Vec<f64> {
        let tm = TractModel::load_bytes(&smelt_onnx::model_to_bytes(m).unwrap(), &xs[..1]).unwrap();
        xs.iter()
            .flat_map(|x| {
                tm.run(std::slice::from_ref(x)).unwrap()[0]
                    .to_f64_vec()
                    .unwrap()
            })
            .collect()
    };
    let y = run_all(&original);
    let y_max = y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let float_gemms = |m: &Model| {
        m.graph
            .node_ids()
            .into_iter()
            .filter(|id| matches!(m.graph.node(*id).op, Op::Gemm(_)))
            .filter(|id| {
                m.graph
                    .node_input(*id, 1)
                    .is_some_and(|w| m.graph.const_value(w).is_some())
            })
            .count()
    };
    let mut kept = vec![];
    for e in [0.0025, 0.05] {
        let mut m = original.clone();
        run_passes(
            &mut m,
            &format!("quantize(calib={},max_error={e})", calib.display()),
        );
        let yq = run_all(&m);
        let err = y
            .iter()
            .zip(&yq)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
            / y_max;
        eprintln!(
            "max_error={e}: measured {err:.8}, {} Gemm(s) kept float",
            float_gemms(&m)
        );
        assert!(err <= e, "max_error={e}: measured {err}");
        kept.push(float_gemms(&m));
    }
    assert!(
        kept[1] < kept[0],
        "a larger budget keeps fewer layers float: {kept:?}"
    );
}
