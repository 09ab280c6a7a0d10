//! The native backend (JIT) on whole models, against onnxruntime's committed outputs.

mod common;

use smelt::codegen::jit::TensorView;
use smelt_verify::{compare_all, Tolerance};

#[test]
fn every_fixture_compiles_and_matches_onnxruntime() {
    let mut failures = vec![];
    for (name, path, data) in common::fixture_models() {
        let m = smelt_onnx::load_model(&path).unwrap();
        let inputs = common::read_numbered(&data, "input");
        let expected = if name.starts_with("digits_ensemble_member_") {
            let k = name.trim_start_matches("digits_ensemble_member_");
            vec![
                smelt_onnx::read_tensor_file(&data.join(format!("member_{k}_output_0.pb")))
                    .unwrap()
                    .1,
            ]
        } else {
            common::read_numbered(&data, "output")
        };
        // `smelt check` and compilation agree.
        let unsupported = smelt::check_native(&m);
        let compiled = smelt::compile_jit(&m, &common::jit_options(&m, &inputs));
        assert_eq!(
            unsupported.is_empty(),
            compiled.is_ok(),
            "{name}: check says {unsupported:?}"
        );
        let mut cm = match compiled {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        // The memory plan is real: within 10 % of the peak of live bytes.
        let plan = cm.plan();
        assert!(
            plan.arena_bytes as f64 <= 1.1 * plan.lower_bound as f64,
            "{name}: arena {} > 1.1 x lower bound {}",
            plan.arena_bytes,
            plan.lower_bound
        );
        let views: Vec<TensorView> = inputs.iter().map(Into::into).collect();
        let out = cm.run(&views).unwrap();
        for (k, c) in compare_all(&out, &expected, Tolerance::EXACT)
            .iter()
            .enumerate()
        {
            if !c.ok() {
                failures.push(format!("{name}: output {k}: {c:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The whole digits test set through the JIT, against onnxruntime's logits for every image.
#[test]
fn digits_test_set_logits_match_onnxruntime() {
    for (name, dims) in [
        ("digits_mlp", vec![1, 64]),
        ("digits_cnn", vec![1, 1, 8, 8]),
        ("digits_resnet", vec![1, 1, 8, 8]),
        ("digits_transformer", vec![1, 8, 8]),
    ] {
        let m = smelt_onnx::load_model(&common::fixtures().join(name).join("model.onnx")).unwrap();
        let (xs, _) = common::digits_test(&dims);
        let reference =
            smelt_onnx::read_tensor_file(&common::fixtures().join(name).join("test_outputs.pb"))
                .unwrap()
                .1;
        let refs = common::samples(&reference, &[1, 10]);
        let mut cm = smelt::compile_jit(&m, &common::jit_options(&m, &xs[..1])).unwrap();
        let mut worst = 0.0f64;
        for (x, r) in xs.iter().zip(&refs) {
            let out = cm.run(&[x.into()]).unwrap();
            let c = smelt_verify::compare(&out[0], r, Tolerance::EXACT);
            assert!(c.ok(), "{name}: {c:?}");
            worst = worst.max(c.max_abs);
        }
        eprintln!("{name}: 500 images, max abs error vs onnxruntime {worst:.2e}");
    }
}

/// Real exported models (see tools/export_real_models.py); skipped when absent.
#[test]
fn real_models_on_the_jit() {
    for (name, model, d) in common::real_models() {
        let m = smelt_onnx::load_model(&model).unwrap();
        let sets = common::subdirs(&d, "test_data_set_");
        let first = common::read_numbered(&sets[0], "input");
        let mut cm = smelt::compile_jit(&m, &common::jit_options(&m, &first))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for set in &sets {
            let inputs = common::read_numbered(set, "input");
            let expected = common::read_numbered(set, "output");
            let views: Vec<TensorView> = inputs.iter().map(Into::into).collect();
            let out = cm.run(&views).unwrap();
            for c in compare_all(&out, &expected, Tolerance::EXACT) {
                assert!(c.ok(), "{name} {}: {c:?}", set.display());
            }
        }
        eprintln!("{name}: ok ({} test set(s))", sets.len());
    }
}

/// Small PyTorch exports committed with onnxruntime's outputs (tools/export_small_models.py):
/// a causal decoder whose mask comes from torch.triu at run time (Trilu, a symbolic sequence
/// length bound from the data), an OCR CRNN (bidirectional LSTM), a keyword-spotting Conv1d +
/// GRU net and a tiny ViT, each exported by the TorchScript exporter and by the dynamo one.
/// `smelt check` accepts each before any shape is bound.
#[test]
fn small_pytorch_exports_on_the_jit() {
    let dir = common::root().join("tests/data/small_models");
    for base in ["gpt_tiny", "crnn", "kws", "vit_tiny"] {
        for name in [base.to_string(), format!("dynamo_{base}")] {
            let name = name.as_str();
            let d = dir.join(name);
            let m = smelt_onnx::load_model(&d.join("model.onnx")).unwrap();
            assert_eq!(
                smelt::check_native(&m),
                vec![],
                "{name}: check refuses nodes"
            );
            for set in common::subdirs(&d, "test_data_set_") {
                let inputs = common::read_numbered(&set, "input");
                let expected = common::read_numbered(&set, "output");
                let mut cm = smelt::compile_jit(&m, &common::jit_options(&m, &inputs))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let views: Vec<TensorView> = inputs.iter().map(Into::into).collect();
                let out = cm.run(&views).unwrap();
                for c in compare_all(&out, &expected, Tolerance::EXACT) {
                    assert!(c.ok(), "{name} {}: {c:?}", set.display());
                }
            }
        }
    }
}
