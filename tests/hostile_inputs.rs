//! No panic on any input: truncated and random bytes, and valid fixtures with fields mutated
//! (dims, dtypes, raw_data lengths, attribute kinds, names, external data paths). Each case
//! must end in a value — a model or an error naming what is wrong — through import, inference,
//! the verifier, the text form and export.

mod common;

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{ModelProto, StringStringEntryProto};
use protobuf::Message;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Everything a user's command does with a model file, up to compiling it natively and running
/// the compiled function on zeros.
fn exercise(bytes: Vec<u8>, dir: &std::path::Path) -> Result<(), String> {
    let m = smelt_onnx::read_model(bytes, Some(dir)).map_err(|e| e.to_string())?;
    let _ = smelt_ir::verify(&m.graph);
    let text = m.to_text();
    let blobs = smelt_ir::text::BlobStore::from_graph(&m.graph);
    let _ = smelt_ir::Model::from_text(&text, &blobs);
    let _ = smelt_onnx::model_to_bytes(&m);
    let _ = smelt::stats::model_stats(&m);
    // The native backend: check, compile and, when it compiles, run on zero inputs of the
    // bound shapes (a wrong plan or lowering would crash here, not just err).
    let _ = smelt::check_native(&m);
    if let Ok(mut cm) = smelt::compile_jit(&m, &Default::default()) {
        let zeros: Vec<smelt_ir::Tensor> = cm
            .inputs()
            .iter()
            .filter_map(|s| smelt_ir::Tensor::zeros(s.dtype, s.dims.clone()).ok())
            .collect();
        let views: Vec<smelt::codegen::jit::TensorView> = zeros.iter().map(Into::into).collect();
        let _ = cm.run(&views);
    }
    Ok(())
}

fn must_not_panic(label: &str, bytes: Vec<u8>, dir: &std::path::Path) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| exercise(bytes, dir))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{label}: panicked: {msg}")
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixture_bytes() -> Vec<(String, Vec<u8>)> {
    common::fixture_models()
        .into_iter()
        .filter(|(n, _, _)| !n.starts_with("digits_ensemble_member_1") && n != "digits_teacher")
        .map(|(n, p, _)| (n, std::fs::read(p).unwrap()))
        .collect()
}

#[test]
fn truncated_and_random_bytes_are_errors_not_panics() {
    let dir = common::fixtures();
    let mut rng = Rng(1);
    for (name, bytes) in fixture_bytes() {
        let step = (bytes.len() / 60).max(1);
        for cut in (0..bytes.len())
            .step_by(step)
            .chain([1, 2, 3, 5, 8, bytes.len() - 1])
        {
            let _ = must_not_panic(&format!("{name} cut at {cut}"), bytes[..cut].to_vec(), &dir);
        }
        for _ in 0..40 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            let _ = must_not_panic(&format!("{name} with flipped bytes"), b, &dir);
        }
    }
    for len in [0usize, 1, 7, 100, 10_000] {
        let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = must_not_panic("random bytes", b, &dir);
    }
}

fn mutate(mp: &mut ModelProto, rng: &mut Rng) -> String {
    let g = mp.graph.mut_or_insert_default();
    let kind = rng.below(12);
    match kind {
        0 if !g.initializer.is_empty() => {
            let i = rng.below(g.initializer.len());
            let t = &mut g.initializer[i];
            let d = [i64::MAX, -1, 1 << 40, 0, 3, i64::MIN][rng.below(6)];
            let j = rng.below(t.dims.len().max(1));
            if t.dims.is_empty() {
                t.dims.push(d);
            } else {
                t.dims[j] = d;
            }
            format!("initializer dims -> {:?}", t.dims)
        }
        1 if !g.initializer.is_empty() => {
            let i = rng.below(g.initializer.len());
            g.initializer[i].data_type = [0, 8, 9, 22, 99, -5, 16, 7][rng.below(8)];
            "initializer data_type".into()
        }
        2 if !g.initializer.is_empty() => {
            let i = rng.below(g.initializer.len());
            let t = &mut g.initializer[i];
            let n = t.raw_data.len();
            t.raw_data.truncate(n.saturating_sub(1 + rng.below(7)));
            "raw_data shortened".into()
        }
        3 if !g.node.is_empty() => {
            let i = rng.below(g.node.len());
            let n = &mut g.node[i];
            if let Some(a) = n.attribute.first_mut() {
                a.type_ = [
                    AttributeType::FLOAT,
                    AttributeType::INTS,
                    AttributeType::STRING,
                    AttributeType::GRAPH,
                    AttributeType::TENSOR,
                ][rng.below(5)]
                .into();
            }
            "attribute kind".into()
        }
        4 if !g.node.is_empty() => {
            let i = rng.below(g.node.len());
            let n = &mut g.node[i];
            if let Some(a) = n.attribute.first_mut() {
                a.ints = vec![-1, i64::MAX, 0];
                a.i = [-1, 0, i64::MAX, i64::MIN][rng.below(4)];
            }
            "attribute values".into()
        }
        5 if !g.node.is_empty() => {
            let i = rng.below(g.node.len());
            let n = &mut g.node[i];
            if !n.input.is_empty() {
                let j = rng.below(n.input.len());
                n.input[j] = ["", "no_such_value", "input"][rng.below(3)].to_string();
            }
            "node input renamed".into()
        }
        6 if !g.node.is_empty() => {
            let i = rng.below(g.node.len());
            let n = &mut g.node[i];
            if !n.output.is_empty() {
                n.output[0] = ["", "input", "logits"][rng.below(3)].to_string();
            }
            "node output renamed".into()
        }
        7 if !g.node.is_empty() => {
            let i = rng.below(g.node.len());
            let n = &mut g.node[i];
            n.input.push("input".into());
            n.input.push("".into());
            "extra inputs".into()
        }
        8 if !g.initializer.is_empty() => {
            let i = rng.below(g.initializer.len());
            let t = &mut g.initializer[i];
            t.data_location = DataLocation::EXTERNAL.into();
            let loc = [
                "../../etc/passwd",
                "/etc/passwd",
                "missing.bin",
                "model.onnx",
                "",
            ][rng.below(5)];
            t.external_data = vec![StringStringEntryProto {
                key: "location".into(),
                value: loc.into(),
                ..Default::default()
            }];
            format!("external data at {loc}")
        }
        9 => {
            if let Some(i) = g.input.first_mut() {
                i.name = ["", "logits", "x"][rng.below(3)].to_string();
            }
            "graph input renamed".into()
        }
        10 if g.node.len() > 1 => {
            let last = g.node.len() - 1;
            g.node.swap(0, last);
            "nodes out of order".into()
        }
        _ => {
            mp.opset_import.clear();
            "opset_import removed".into()
        }
    }
}

#[test]
fn mutated_fixtures_are_errors_not_panics() {
    let dir = common::fixtures();
    let mut rng = Rng(7);
    let mut errors = 0;
    for (name, bytes) in fixture_bytes() {
        let base = ModelProto::parse_from_bytes(&bytes).unwrap();
        for _ in 0..60 {
            let mut mp = base.clone();
            let mut what = vec![];
            for _ in 0..1 + rng.below(3) {
                what.push(mutate(&mut mp, &mut rng));
            }
            let b = mp.write_to_bytes().unwrap();
            if must_not_panic(&format!("{name}: {what:?}"), b, &dir).is_err() {
                errors += 1;
            }
        }
    }
    // The mutations are meant to break things: most of them must be caught as errors.
    assert!(errors > 100, "only {errors} mutated models were refused");
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    let dir = common::fixtures();
    let bytes = std::fs::read(dir.join("digits_mlp/model.onnx")).unwrap();
    let mut mp = ModelProto::parse_from_bytes(&bytes).unwrap();
    let t = &mut mp.graph.mut_or_insert_default().initializer[0];
    t.raw_data.clear();
    t.data_location = DataLocation::EXTERNAL.into();
    t.external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "../../../etc/passwd".into(),
        ..Default::default()
    }];
    let err = smelt_onnx::read_model(mp.write_to_bytes().unwrap(), Some(&dir.join("digits_mlp")))
        .unwrap_err();
    assert!(
        err.to_string().contains("leaves the model's folder"),
        "{err}"
    );
}
