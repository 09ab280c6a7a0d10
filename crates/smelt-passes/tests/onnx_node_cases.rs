//! The reference evaluator against the ONNX backend tests' expected outputs.
//!
//! `data/onnx_node_cases.json` holds the single-node tests of the ops the evaluator takes
//! (extracted by `data/dump_onnx_node_cases.py` from the ONNX suite: inputs, attributes,
//! expected outputs), so this runs without Python, protobuf or ../shared. Floats are compared
//! at the suite's tolerance (rtol 1e-3, atol 1e-7), integers and bools exactly.

use smelt_ir::{Attr, DType, Op, Tensor};
use smelt_passes::eval::{eval_op, EvalError};

fn tensor(v: &serde_json::Value) -> Tensor {
    let dt = DType::from_code(v["dtype"].as_i64().unwrap() as i32).unwrap();
    let dims: Vec<usize> = v["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let hex = v["hex"].as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    if dt.bits() < 8 {
        // numpy writes packed types one element a byte.
        let vals: Vec<i64> = bytes
            .iter()
            .map(|b| {
                if dt.is_signed_int() {
                    *b as i8 as i64
                } else {
                    *b as i64
                }
            })
            .collect();
        return Tensor::from_i64s(dt, dims, &vals).unwrap();
    }
    Tensor::from_bytes(dt, dims, bytes).unwrap()
}

fn attr(a: &serde_json::Value) -> Attr {
    if let Some(i) = a.get("i") {
        Attr::Int(i.as_i64().unwrap())
    } else if let Some(f) = a.get("f") {
        Attr::Float(f.as_f64().unwrap() as f32)
    } else if let Some(s) = a.get("s") {
        Attr::Str(s.as_str().unwrap().as_bytes().to_vec())
    } else if let Some(v) = a.get("is") {
        Attr::Ints(
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect(),
        )
    } else {
        Attr::Tensor(tensor(&a["t"]))
    }
}

fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() || got.dims() != want.dims() {
        return Err(format!(
            "got {} {:?}, want {} {:?}",
            got.dtype(),
            got.dims(),
            want.dtype(),
            want.dims()
        ));
    }
    if want.dtype().is_float() {
        let (a, b) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let same =
                (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-7 + 1e-3 * y.abs();
            if !same {
                return Err(format!("element {i}: got {x}, want {y}"));
            }
        }
        Ok(())
    } else if got == want {
        Ok(())
    } else {
        Err(format!(
            "got {:?}, want {:?}",
            got.to_i64_vec(),
            want.to_i64_vec()
        ))
    }
}

#[test]
fn evaluator_matches_the_onnx_suite() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/onnx_node_cases.json"
    );
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut passed = 0;
    let mut failures = vec![];
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let attrs = c["attrs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, a)| (k.clone(), attr(a)))
            .collect();
        let op = Op::from_parts(c["op"].as_str().unwrap(), attrs).unwrap();
        let ins: Vec<Option<Tensor>> = c["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (!v.is_null()).then(|| tensor(v)))
            .collect();
        let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
        let n_out = c["n_out"].as_u64().unwrap() as usize;
        let want: Vec<Tensor> = c["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor)
            .collect();
        match eval_op(&op, &refs, n_out) {
            Ok(got) => {
                let r = want
                    .iter()
                    .enumerate()
                    .try_for_each(|(k, w)| match got.get(k) {
                        Some(g) => close(g, w).map_err(|e| format!("output {k}: {e}")),
                        None => Err(format!("output {k} missing")),
                    });
                match r {
                    Ok(()) => passed += 1,
                    Err(e) => failures.push(format!("{name}: {e}")),
                }
            }
            Err(EvalError::Unsupported(m)) | Err(EvalError::Invalid(m)) => {
                failures.push(format!("{name}: {m}"))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed, 566);
}
