//! The reverse of `import::legacy`: writes a typed op in the form its model's opset expects,
//! turning constant inputs back into the attributes old opsets took, and says which opset an
//! op needs at least.

use smelt_ir::{Attr, Op, Tensor};

/// The lowest default-domain opset in which the typed op exists with the semantics (and the
/// inputs/attributes) it has.
pub fn min_opset(op: &Op) -> i64 {
    match op {
        Op::Gelu(_) => 20,
        Op::HardSwish(_) => 14,
        Op::LayerNormalization(_) => 17,
        Op::Shape(s) if s.start != 0 || s.end.is_some() => 15,
        Op::Split(s) if s.num_outputs.is_some() => 18,
        Op::QuantizeLinear(q) if q.block_size != 0 || q.output_dtype != 0 => 21,
        Op::QuantizeLinear(q) if q.precision != 0 => 23,
        Op::DequantizeLinear(q) if q.block_size != 0 || q.output_dtype != 0 => 21,
        Op::QuantizeLinear(q) if q.axis != 1 || q.saturate != 1 => 13,
        Op::DequantizeLinear(q) if q.axis != 1 => 13,
        Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => 10,
        Op::ReduceMean(r) if r.noop_with_empty_axes != 0 => 18,
        Op::ReduceMax(r) if r.noop_with_empty_axes != 0 => 18,
        Op::ReduceMin(r) if r.noop_with_empty_axes != 0 => 18,
        Op::ReduceProd(r) if r.noop_with_empty_axes != 0 => 18,
        Op::ReduceL2(r) if r.noop_with_empty_axes != 0 => 18,
        Op::ReduceL1(r) if r.noop_with_empty_axes != 0 => 18,
        Op::ReduceSumSquare(r) if r.noop_with_empty_axes != 0 => 18,
        Op::ReduceLogSumExp(r) if r.noop_with_empty_axes != 0 => 18,
        Op::ReduceSum(r) if r.noop_with_empty_axes != 0 => 13,
        Op::Reshape(r) if r.allowzero != 0 => 14,
        Op::Trilu(_) => 14,
        Op::Cast(c) if c.saturate != 1 => 19,
        Op::LSTM(l) if l.layout != 0 => 14,
        Op::GRU(l) if l.layout != 0 => 14,
        Op::Resize(r)
            if r.antialias != 0 || r.axes.is_some() || r.keep_aspect_ratio_policy != "stretch" =>
        {
            18
        }
        Op::Resize(_) => 11,
        Op::Pad(p) if p.mode == "wrap" => 19,
        Op::Range(_) | Op::GatherElements(_) => 11,
        Op::Mod(_) | Op::IsNaN(_) => 10,
        Op::ConstantOfShape(_) | Op::Where(_) | Op::Sign(_) => 9,
        Op::Expand(_) => 8,
        Op::Round(_)
        | Op::Softsign(_)
        | Op::Softplus(_)
        | Op::LessOrEqual(_)
        | Op::GreaterOrEqual(_) => match op {
            Op::Round(_) => 11,
            Op::LessOrEqual(_) | Op::GreaterOrEqual(_) => 12,
            _ => 1,
        },
        Op::Sin(_) | Op::Cos(_) => 7,
        _ => 1,
    }
}

/// Written form of a node: attributes and how many leading inputs to keep.
pub struct Written {
    /// Attributes to write (added to the op's own).
    pub attrs: Vec<(String, Attr)>,
    /// Inputs to keep (a prefix of the node's inputs), others became attributes.
    pub keep_inputs: usize,
    /// When set, the op must be written with this op_type attribute list untouched.
    pub override_attrs: Option<Vec<(String, Attr)>>,
}

/// A constant input as ints.
fn ints(t: Option<&Tensor>) -> Option<Vec<i64>> {
    t?.to_i64_vec()
}

/// Writes `op` at `opset`. `consts[i]` is the constant behind input `i`, if it is one;
/// `n_inputs` the node's explicit inputs. Errors name what cannot be expressed.
pub fn denormalize(
    op: &Op,
    opset: i64,
    consts: &[Option<&Tensor>],
    n_inputs: usize,
) -> Result<Written, String> {
    let mut w = Written {
        attrs: vec![],
        keep_inputs: n_inputs,
        override_attrs: None,
    };
    let need = |i: usize, what: &str| -> Result<Vec<i64>, String> {
        ints(consts.get(i).copied().flatten())
            .ok_or_else(|| format!("{what} must be a constant to be written at opset {opset}"))
    };
    let present = |i: usize| i < n_inputs && consts.len() > i;
    match op {
        Op::Reshape(_) if opset < 5 => {
            w.attrs
                .push(("shape".into(), Attr::Ints(need(1, "the shape")?)));
            w.keep_inputs = 1;
        }
        Op::Squeeze(_) | Op::Unsqueeze(_) if opset < 13 => {
            if n_inputs > 1 {
                w.attrs.push(("axes".into(), Attr::Ints(need(1, "axes")?)));
            }
            w.keep_inputs = 1;
        }
        Op::ReduceMean(_)
        | Op::ReduceMax(_)
        | Op::ReduceMin(_)
        | Op::ReduceProd(_)
        | Op::ReduceL2(_)
        | Op::ReduceL1(_)
        | Op::ReduceSumSquare(_)
        | Op::ReduceLogSumExp(_)
            if opset < 18 =>
        {
            if n_inputs > 1 {
                w.attrs.push(("axes".into(), Attr::Ints(need(1, "axes")?)));
            }
            w.keep_inputs = 1;
        }
        Op::ReduceSum(_) if opset < 13 => {
            if n_inputs > 1 {
                w.attrs.push(("axes".into(), Attr::Ints(need(1, "axes")?)));
            }
            w.keep_inputs = 1;
        }
        Op::Split(_) if opset < 13 => {
            if n_inputs > 1 {
                w.attrs
                    .push(("split".into(), Attr::Ints(need(1, "split")?)));
            }
            w.keep_inputs = 1;
        }
        Op::Slice(_) if opset < 10 => {
            w.attrs
                .push(("starts".into(), Attr::Ints(need(1, "starts")?)));
            w.attrs.push(("ends".into(), Attr::Ints(need(2, "ends")?)));
            if present(3) {
                w.attrs.push(("axes".into(), Attr::Ints(need(3, "axes")?)));
            }
            if present(4) && need(4, "steps")?.iter().any(|s| *s != 1) {
                return Err(format!(
                    "Slice steps other than 1 need opset 10 (model has {opset})"
                ));
            }
            w.keep_inputs = 1;
        }
        Op::Pad(p) if opset < 11 => {
            w.attrs.push(("pads".into(), Attr::Ints(need(1, "pads")?)));
            if present(2) {
                let v = consts
                    .get(2)
                    .copied()
                    .flatten()
                    .and_then(|t| t.to_f64_vec())
                    .and_then(|v| v.first().copied())
                    .ok_or_else(|| format!("the pad value must be a constant at opset {opset}"))?;
                w.attrs.push(("value".into(), Attr::Float(v as f32)));
            }
            if present(3) {
                return Err(format!("Pad axes need opset 18 (model has {opset})"));
            }
            let _ = p;
            w.keep_inputs = 1;
        }
        Op::Clip(_) if opset < 11 => {
            for (i, k) in [(1, "min"), (2, "max")] {
                if present(i) {
                    let v = consts
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|t| t.to_f64_vec())
                        .and_then(|v| v.first().copied())
                        .ok_or_else(|| format!("Clip {k} must be a constant at opset {opset}"))?;
                    w.attrs.push((k.into(), Attr::Float(v as f32)));
                }
            }
            w.keep_inputs = 1;
        }
        Op::TopK(_) if opset < 10 => {
            let k = need(1, "K")?;
            w.attrs
                .push(("k".into(), Attr::Int(k.first().copied().unwrap_or(0))));
            w.keep_inputs = 1;
        }
        Op::Dropout(_) if opset < 12 => {
            w.keep_inputs = 1;
        }
        Op::Softmax(s) if opset < 13 => {
            // Old softmax flattens at `axis`; equal to ours only on the last axis, which the
            // importer guaranteed and passes keep. Always write the axis: the default differs.
            w.override_attrs = Some(vec![("axis".into(), Attr::Int(s.axis))]);
        }
        Op::LogSoftmax(s) if opset < 13 => {
            w.override_attrs = Some(vec![("axis".into(), Attr::Int(s.axis))]);
        }
        Op::ConstantOfShape(c) if c.value.is_none() => {
            // The spec's default is a float32 zero; say so explicitly, since some consumers
            // (tract 0.23) assume another type when the attribute is absent.
            if let Ok(z) = Tensor::from_vec(vec![1], &[0.0f32]) {
                w.attrs.push(("value".into(), Attr::Tensor(z)));
            }
        }
        _ => {}
    }
    // Trailing absent inputs are not written.
    Ok(w)
}
