//! BatchNormalization folded into the Conv, Gemm or MatMul before it.
//!
//! With `s = scale / sqrt(var + epsilon)` and `t = B - mean * s` per channel,
//! `BN(Conv(x, W, b)) = Conv(x, W * s, b * s + t)` (s along W's output-channel axis 0),
//! `BN(Gemm(a, W, C)) = Gemm(a, W * s, beta * C * s + t)` with beta 1 (s along the output
//! axis of W), and `BN(MatMul(a, W)) = Add(MatMul(a, W * s), t)` for a rank-2 result. It
//! applies when the weights and BN's parameters are f32 constants, the weight and the
//! intermediate value have no other user, and BN is in inference mode. The rewritten node's
//! output takes BN's output name.

use super::cin;
use crate::util::{replace_taking_name, use_count};
use smelt_ir::{DType, Graph, GraphError, NodeId, Op, Tensor, Type, Value, ValueId};

fn f32s(t: &Tensor) -> Option<Vec<f32>> {
    (t.dtype() == DType::F32).then(|| t.to_f32_vec()).flatten()
}

fn vec1(g: &Graph, id: NodeId, port: usize, c: usize) -> Option<Vec<f64>> {
    let t = cin(g, id, port)?;
    if t.dims().len() != 1 || t.dims()[0] != c {
        return None;
    }
    Some(f32s(&t)?.into_iter().map(|v| v as f64).collect())
}

fn f32_tensor(dims: Vec<usize>, v: &[f64]) -> Option<Tensor> {
    let f: Vec<f32> = v.iter().map(|x| *x as f32).collect();
    Tensor::from_vec(dims, &f).ok()
}

fn new_const(g: &mut Graph, near: ValueId, suffix: &str, t: Tensor) -> ValueId {
    let base = g.value(near).name.clone();
    let name = crate::util::fresh_name(g, &format!("{base}{suffix}"));
    g.add_const(name, t)
}

/// Folds every BatchNormalization it can; returns how many.
pub(super) fn fold_batchnorms(g: &mut Graph) -> Result<usize, GraphError> {
    let mut n = 0;
    for id in g.node_ids() {
        if !g.contains_node(id) {
            continue;
        }
        if try_fold(g, id)? {
            n += 1;
        }
    }
    Ok(n)
}

fn try_fold(g: &mut Graph, id: NodeId) -> Result<bool, GraphError> {
    let Op::BatchNormalization(bn) = &g.node(id).op else {
        return Ok(false);
    };
    if bn.training_mode != 0 {
        return Ok(false);
    }
    let eps = bn.epsilon as f64;
    let outs = g.node(id).outputs.len();
    if (1..outs).any(|p| use_count(g, ValueId::new(id, p as u32)) > 0) {
        return Ok(false);
    }
    let Some(x) = g.node_input(id, 0) else {
        return Ok(false);
    };
    if x.port != 0 || use_count(g, x) != 1 {
        return Ok(false);
    }
    let p = x.node;
    let Some(scale) = cin(g, id, 1) else {
        return Ok(false);
    };
    if scale.dims().len() != 1 {
        return Ok(false);
    }
    let c = scale.dims()[0];
    let (Some(sc), Some(b), Some(mean), Some(var)) = (
        vec1(g, id, 1, c),
        vec1(g, id, 2, c),
        vec1(g, id, 3, c),
        vec1(g, id, 4, c),
    ) else {
        return Ok(false);
    };
    let s: Vec<f64> = (0..c).map(|i| sc[i] / (var[i] + eps).sqrt()).collect();
    let t: Vec<f64> = (0..c).map(|i| b[i] - mean[i] * s[i]).collect();
    let Some(wv) = g.node_input(p, 1) else {
        return Ok(false);
    };
    let Some(w) = g.const_value(wv).cloned() else {
        return Ok(false);
    };
    if use_count(g, wv) != 1 {
        return Ok(false);
    }
    let Some(wf) = f32s(&w) else {
        return Ok(false);
    };
    let wd = w.dims().to_vec();
    let bn_out = ValueId::new(id, 0);
    let result = match g.node(p).op.clone() {
        Op::Conv(_) => {
            if wd.first() != Some(&c) {
                return Ok(false);
            }
            let bias = match g.node_input(p, 2) {
                None => vec![0.0; c],
                Some(v) => match g.const_value(v).and_then(f32s) {
                    Some(b) if b.len() == c && use_count(g, v) == 1 => {
                        b.into_iter().map(|x| x as f64).collect()
                    }
                    _ => return Ok(false),
                },
            };
            let per = wf.len() / c.max(1);
            let nw: Vec<f64> = wf
                .iter()
                .enumerate()
                .map(|(i, v)| *v as f64 * s[i / per.max(1)])
                .collect();
            let nb: Vec<f64> = (0..c).map(|i| bias[i] * s[i] + t[i]).collect();
            let (Some(nw), Some(nb)) = (f32_tensor(wd, &nw), f32_tensor(vec![c], &nb)) else {
                return Ok(false);
            };
            let wc = new_const(g, wv, "_bn", nw);
            let bc = new_const(g, wv, "_bn_bias", nb);
            g.set_node_input(p, 1, Some(wc))?;
            g.set_node_input(p, 2, Some(bc))?;
            x
        }
        Op::Gemm(gm) => {
            if wd.len() != 2 {
                return Ok(false);
            }
            let nn = if gm.trans_b { wd[0] } else { wd[1] };
            if nn != c {
                return Ok(false);
            }
            let cvals: Vec<f64> = match g.node_input(p, 2) {
                None => vec![0.0; c],
                Some(v) => {
                    let Some(ct) = g.const_value(v) else {
                        return Ok(false);
                    };
                    let ok_shape =
                        matches!(ct.dims(), [] | [1]) || ct.dims() == [c] || ct.dims() == [1, c];
                    let Some(cv) = f32s(ct) else {
                        return Ok(false);
                    };
                    if !ok_shape || use_count(g, v) != 1 {
                        return Ok(false);
                    }
                    if cv.len() == 1 {
                        vec![cv[0] as f64; c]
                    } else {
                        cv.into_iter().map(|x| x as f64).collect()
                    }
                }
            };
            let nw: Vec<f64> = wf
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let ch = if gm.trans_b { i / wd[1] } else { i % wd[1] };
                    *v as f64 * s[ch]
                })
                .collect();
            let nc: Vec<f64> = (0..c)
                .map(|i| gm.beta as f64 * cvals[i] * s[i] + t[i])
                .collect();
            let (Some(nw), Some(nc)) = (f32_tensor(wd, &nw), f32_tensor(vec![c], &nc)) else {
                return Ok(false);
            };
            let wc = new_const(g, wv, "_bn", nw);
            let bc = new_const(g, wv, "_bn_bias", nc);
            g.set_node_input(p, 1, Some(wc))?;
            g.set_node_input(p, 2, Some(bc))?;
            let mut ngm = gm.clone();
            ngm.beta = 1.0;
            g.node_mut(p).op = Op::Gemm(ngm);
            x
        }
        Op::MatMul(_) => {
            let out_rank = g.value_type(x).shape().map(|s| s.len());
            if wd.len() != 2 || wd[1] != c || out_rank != Some(2) {
                return Ok(false);
            }
            let nw: Vec<f64> = wf
                .iter()
                .enumerate()
                .map(|(i, v)| *v as f64 * s[i % c])
                .collect();
            let (Some(nw), Some(tt)) = (f32_tensor(wd, &nw), f32_tensor(vec![c], &t)) else {
                return Ok(false);
            };
            let wc = new_const(g, wv, "_bn", nw);
            let tc = new_const(g, wv, "_bn_bias", tt);
            g.set_node_input(p, 1, Some(wc))?;
            // The MatMul now computes x·(W·s), not x·W: its value gets a new name, so that a
            // name keeps meaning the same numbers across the pass (`--verify each` relies on it).
            let renamed = crate::util::fresh_name(g, &format!("{}_bn", g.value(x).name));
            g.rename_value(x, renamed);
            let ty: Type = g.value_type(bn_out).clone();
            let name = crate::util::fresh_name(g, &format!("{}_bn_add", g.value(x).name));
            let add = g.add_node(
                g.fresh_node_name(&format!("{}_bn_add", g.display_node_name(p))),
                Op::Add(smelt_ir::ops::Add {}),
                &[Some(x), Some(tc)],
                vec![Value { name, ty }],
            )?;
            ValueId::new(add, 0)
        }
        _ => return Ok(false),
    };
    replace_taking_name(g, bn_out, result)?;
    g.remove_node(id);
    Ok(true)
}
