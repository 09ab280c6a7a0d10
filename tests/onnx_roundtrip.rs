//! ONNX → IR → ONNX keeps every fixture's behaviour: tract on the written model reproduces
//! onnxruntime's expected outputs (rtol 1e-4, atol 1e-5).

mod common;

use smelt_verify::{compare_all, run_tract_bytes, Tolerance};

#[test]
fn every_fixture_round_trips_and_tract_reproduces_its_outputs() {
    let mut failures = vec![];
    for (name, path, data) in common::fixture_models() {
        let model = smelt_onnx::load_model(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        smelt_ir::verify(&model.graph).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = smelt_onnx::model_to_bytes(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs = common::read_numbered(&data, "input");
        let expected: Vec<_> = if name.starts_with("digits_ensemble_member_") {
            let k = name.trim_start_matches("digits_ensemble_member_");
            vec![
                smelt_onnx::read_tensor_file(&data.join(format!("member_{k}_output_0.pb")))
                    .unwrap()
                    .1,
            ]
        } else {
            common::read_numbered(&data, "output")
        };
        match run_tract_bytes(&bytes, &inputs) {
            Ok(out) => {
                let cmp = compare_all(&out, &expected, Tolerance::EXACT);
                if !cmp.iter().all(|c| c.ok()) {
                    failures.push(format!("{name}: {cmp:?}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        // Deterministic bytes.
        assert_eq!(
            bytes,
            smelt_onnx::model_to_bytes(&model).unwrap(),
            "{name}: export is not deterministic"
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
