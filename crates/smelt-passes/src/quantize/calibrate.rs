//! `quantize(calib=X, max_error=E)`: per-layer sensitivity on a calibration batch, and the
//! choice of the layers to keep in float.
//!
//! The batch is one tensor whose first dim is the sample count; a sample is reshaped to the
//! graph's (single) input when the element counts agree. The error of a quantized graph is
//! `max |y_q - y| / max |y|` over every output element of every sample, `y` being the float
//! graph's outputs (run with the context's [`crate::Runner`]). Each layer's sensitivity is the
//! error when it alone is quantized. With `max_error`, all layers are quantized, then the most
//! sensitive ones are put back in float one by one until the error is at most `max_error`.

use super::{Quantize, Target};
use crate::pass::{PassCtx, PassError, Runner};
use smelt_ir::{Graph, NodeId, Tensor};
use std::collections::HashSet;

fn fail(msg: impl Into<String>) -> PassError {
    PassError::Runner {
        pass: "quantize".into(),
        msg: msg.into(),
    }
}

/// The samples of a batch, each as the graph's input list.
fn samples(g: &Graph, x: &Tensor) -> Result<Vec<Vec<Tensor>>, PassError> {
    let ins = g.inputs();
    let [input] = ins.as_slice() else {
        return Err(fail(format!(
            "calibration needs a graph with one input, this one has {}",
            ins.len()
        )));
    };
    let v = g.value(*input);
    let (Some(dims), Some(dt)) = (v.ty.static_dims(), v.ty.dtype()) else {
        return Err(fail(format!("input `{}` has no static shape", v.name)));
    };
    if dt != x.dtype() {
        return Err(fail(format!(
            "calibration data is {}, input `{}` takes {dt}",
            x.dtype(),
            v.name
        )));
    }
    let per: usize = dims.iter().product();
    let n = x.dims().first().copied().unwrap_or(0);
    if n == 0 || x.len() != n * per || dt.bits() % 8 != 0 {
        return Err(fail(format!(
            "calibration data of shape {:?} does not hold samples of input `{}` {:?}",
            x.dims(),
            v.name,
            dims
        )));
    }
    let es = dt.bits() / 8;
    let bytes = x.bytes().unwrap_or_default();
    (0..n)
        .map(|k| {
            let chunk = bytes[k * per * es..(k + 1) * per * es].to_vec();
            Tensor::from_bytes(dt, dims.clone(), chunk)
                .map(|t| vec![t])
                .map_err(|e| fail(e.to_string()))
        })
        .collect()
}

fn run_all(r: &dyn Runner, g: &Graph, xs: &[Vec<Tensor>]) -> Result<Vec<Vec<f64>>, PassError> {
    xs.iter()
        .map(|x| {
            let outs = r.run(g, x).map_err(fail)?;
            Ok(outs
                .iter()
                .flat_map(|t| t.to_f64_vec().unwrap_or_default())
                .collect())
        })
        .collect()
}

/// Measures every target's sensitivity and returns the nodes to keep in float.
pub(super) fn choose(
    q: &Quantize,
    g: &Graph,
    cx: &mut PassCtx,
    path: &str,
    targets: &[Target],
) -> Result<HashSet<NodeId>, PassError> {
    let runner = cx
        .runner()
        .ok_or_else(|| fail("calib= needs a runner (the JIT or tract) to run the model"))?;
    let x = cx
        .load_tensor(path)
        .map_err(|e| fail(format!("calib={path}: {e}")))?;
    let xs = samples(g, &x)?;
    let reference = run_all(runner, g, &xs)?;
    let ymax = reference.iter().flatten().fold(0f64, |a, v| a.max(v.abs()));
    let error_of = |keep: &HashSet<NodeId>| -> Result<f64, PassError> {
        let mut h = g.clone();
        let chosen: Vec<Target> = targets
            .iter()
            .copied()
            .filter(|t| !keep.contains(&t.node))
            .collect();
        q.apply(&mut h, &chosen)?;
        let got = run_all(runner, &h, &xs)?;
        let mut worst = 0f64;
        for (a, b) in got.iter().zip(&reference) {
            if a.len() != b.len() {
                return Err(fail("the quantized graph's outputs differ in size"));
            }
            for (p, r) in a.iter().zip(b) {
                let d = (p - r).abs();
                worst = if d.is_nan() {
                    f64::INFINITY
                } else {
                    worst.max(d)
                };
            }
        }
        Ok(if ymax > 0.0 { worst / ymax } else { worst })
    };
    let all: HashSet<NodeId> = targets.iter().map(|t| t.node).collect();
    let mut sens = vec![];
    for t in targets {
        let mut others = all.clone();
        others.remove(&t.node);
        let e = error_of(&others)?;
        cx.note(format!(
            "layer `{}`: error {e:.3e} when quantized alone",
            g.display_node_name(t.node)
        ));
        sens.push((t.node, e));
    }
    let mut keep = HashSet::new();
    let mut e = error_of(&keep)?;
    if let Some(max) = q.max_error {
        sens.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = vec![];
        for (node, _) in &sens {
            if e <= max {
                break;
            }
            keep.insert(*node);
            kept.push(format!("`{}`", g.display_node_name(*node)));
            e = error_of(&keep)?;
        }
        if !kept.is_empty() {
            cx.note(format!(
                "kept in float to meet max_error={max:e}: {}",
                kept.join(", ")
            ));
        }
        if e > max {
            return Err(fail(format!(
                "max_error={max:e} not met even with every layer in float (error {e:.3e})"
            )));
        }
    }
    cx.note(format!(
        "model error on {} calibration samples with {} of {} layers quantized: {e:.3e}",
        xs.len(),
        targets.len() - keep.len(),
        targets.len()
    ));
    Ok(keep)
}
