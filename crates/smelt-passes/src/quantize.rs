//! `quantize`: weight-only int8 for Gemm, MatMul and Conv.
//!
//! ```text
//! before                                      after
//!   %fc.weight = const f32[10,64] #…            %fc.weight_q = const i8[10,64] #…
//!   %y = Gemm(%x, %fc.weight, %fc.bias)         %fc.weight_scale = const f32[10] #…
//!        {transB=1}                             %fc.weight_zero_point = const i8[10] #…
//!                                               %fc.weight_dq = DequantizeLinear(%fc.weight_q,
//!                                                    %fc.weight_scale, %fc.weight_zero_point) {axis=0}
//!                                               %y = Gemm(%x, %fc.weight_dq, %fc.bias) {transB=1}
//! ```
//!
//! The constant f32 weight (input 1) of every Gemm, MatMul and Conv becomes an int8 constant
//! plus a DequantizeLinear; biases stay f32. By default per output channel (Gemm `transB=1`:
//! axis 0, `transB=0`: axis 1; MatMul `[.., in, out]`: the last axis; Conv: axis 0) and
//! symmetric (`scale = max|w| / 127`, zero point 0, values in [-127, 127]). `symmetric=false`
//! gives uint8 min/max (`scale = (max - min) / 255`, `zero_point = round(-min / scale)`, the
//! range widened to hold 0); `per_channel=false` one scale per tensor; `skip=REGEX` keeps the
//! nodes whose name (or weight name) matches in float. Quantized values are computed as ONNX's
//! QuantizeLinear does (`w / scale` in f32, round half to even, saturate), so
//! `fold(dequantize=true)` gives back exactly the weights the int8 model computes with.
//!
//! Lossy: the report gives the sizes; accuracy is the caller's to measure.

use crate::pass::{Changed, Pass, PassCtx, PassError};
use crate::registry::{OptionInfo, OptionKind, PassInfo};
use crate::spec::Options;
use smelt_ir::ops::DequantizeLinear;
use smelt_ir::{DType, Graph, GraphError, Op, Tensor, Type, Value, ValueId};
use std::collections::HashMap;

/// The `quantize` pass's options.
#[derive(Clone, Debug)]
pub struct Quantize {
    /// One scale per output channel (else one per tensor).
    pub per_channel: bool,
    /// Symmetric int8 (else asymmetric uint8).
    pub symmetric: bool,
    /// Nodes (by node name or weight name) to keep in float.
    pub skip: Option<regex::Regex>,
}

impl Default for Quantize {
    fn default() -> Quantize {
        Quantize {
            per_channel: true,
            symmetric: true,
            skip: None,
        }
    }
}

/// The registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "quantize",
    summary: "weight-only int8 for Gemm/MatMul/Conv weights (lossy)",
    options: &[
        OptionInfo {
            name: "bits",
            kind: OptionKind::Int,
            default: "8",
            help: "weight bits (8)",
        },
        OptionInfo {
            name: "per_channel",
            kind: OptionKind::Bool,
            default: "true",
            help: "one scale per output channel",
        },
        OptionInfo {
            name: "skip",
            kind: OptionKind::Regex,
            default: "",
            help: "keep nodes whose name or weight name matches in float",
        },
        OptionInfo {
            name: "symmetric",
            kind: OptionKind::Bool,
            default: "true",
            help: "symmetric int8 (false: min/max uint8)",
        },
    ],
    build,
};

fn build(o: &Options) -> Result<Box<dyn Pass>, PassError> {
    let bits = o.int("bits", 8);
    if bits != 8 {
        return Err(PassError::BadOption {
            pass: "quantize",
            option: "bits",
            msg: format!("{bits} bits is not implemented (8 is)"),
        });
    }
    let skip = match o.str("skip") {
        Some(r) => Some(regex::Regex::new(r).map_err(|e| PassError::BadOption {
            pass: "quantize",
            option: "skip",
            msg: e.to_string(),
        })?),
        None => None,
    };
    Ok(Box::new(Quantize {
        per_channel: o.bool("per_channel", true),
        symmetric: o.bool("symmetric", true),
        skip,
    }))
}

impl Pass for Quantize {
    fn name(&self) -> &'static str {
        "quantize"
    }

    fn exact(&self) -> bool {
        false
    }

    fn run(&self, g: &mut Graph, cx: &mut PassCtx) -> Result<Changed, PassError> {
        let ge = |source: GraphError| PassError::Graph {
            pass: "quantize",
            source,
        };
        let mut done: HashMap<(ValueId, usize), ValueId> = HashMap::new();
        let mut n = 0;
        let mut skipped = vec![];
        for id in g.node_ids() {
            let Some(wv) = g.node_input(id, 1) else {
                continue;
            };
            let Some(w) = g.const_value(wv) else {
                continue;
            };
            if w.dtype() != DType::F32 || w.dims().len() < 2 {
                continue;
            }
            let rank = w.dims().len();
            let axis = match &g.node(id).op {
                Op::Gemm(gm) if rank == 2 => usize::from(!gm.trans_b),
                Op::MatMul(_) => rank - 1,
                Op::Conv(_) => 0,
                _ => continue,
            };
            if let Some(re) = &self.skip {
                let node = g.display_node_name(id);
                if re.is_match(&node) || re.is_match(&g.value(wv).name) {
                    skipped.push(node);
                    continue;
                }
            }
            let dq = match done.get(&(wv, axis)) {
                Some(v) => *v,
                None => {
                    let Some(v) = self.emit(g, wv, axis).map_err(ge)? else {
                        continue;
                    };
                    done.insert((wv, axis), v);
                    v
                }
            };
            g.set_node_input(id, 1, Some(dq)).map_err(ge)?;
            n += 1;
        }
        g.remove_dead_nodes();
        cx.note(format!(
            "quantized {n} weight input(s) to {}",
            if self.symmetric { "int8" } else { "uint8" }
        ));
        if !skipped.is_empty() {
            cx.note(format!("kept in float (skip): {}", skipped.join(", ")));
        }
        Ok(Changed::count(n))
    }
}

/// Scale, zero point and quantized values of one group of weights.
fn quant_group(w: &[f32], symmetric: bool) -> (f32, i64) {
    if symmetric {
        let m = w.iter().fold(0f32, |a, v| a.max(v.abs()));
        let s = if m > 0.0 && m.is_finite() {
            m / 127.0
        } else {
            1.0
        };
        (s, 0)
    } else {
        let lo = w.iter().fold(0f32, |a, v| a.min(*v));
        let hi = w.iter().fold(0f32, |a, v| a.max(*v));
        let s = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let z = (-lo / s).round_ties_even().clamp(0.0, 255.0) as i64;
        (s, z)
    }
}

impl Quantize {
    fn emit(&self, g: &mut Graph, wv: ValueId, axis: usize) -> Result<Option<ValueId>, GraphError> {
        let Some(w) = g.const_value(wv).cloned() else {
            return Ok(None);
        };
        let Some(wf) = w.to_f32_vec() else {
            return Ok(None);
        };
        let dims = w.dims().to_vec();
        let c = dims[axis];
        let inner: usize = dims[axis + 1..].iter().product();
        let chan = |i: usize| (i / inner.max(1)) % c.max(1);
        let (scales, zps): (Vec<f32>, Vec<i64>) = if self.per_channel {
            let mut groups: Vec<Vec<f32>> = vec![vec![]; c];
            for (i, v) in wf.iter().enumerate() {
                groups[chan(i)].push(*v);
            }
            groups
                .iter()
                .map(|gr| quant_group(gr, self.symmetric))
                .unzip()
        } else {
            let (s, z) = quant_group(&wf, self.symmetric);
            (vec![s], vec![z])
        };
        let (lo, hi, qdt) = if self.symmetric {
            (-127.0, 127.0, DType::I8)
        } else {
            (0.0, 255.0, DType::U8)
        };
        let q: Vec<i64> = wf
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let k = if self.per_channel { chan(i) } else { 0 };
                let r = (v / scales[k]).round_ties_even() as f64 + zps[k] as f64;
                r.clamp(lo, hi) as i64
            })
            .collect();
        let sdims = if self.per_channel { vec![c] } else { vec![] };
        let (Ok(qt), Ok(st), Ok(zt)) = (
            Tensor::from_i64s(qdt, dims.clone(), &q),
            Tensor::from_vec(sdims.clone(), &scales),
            Tensor::from_i64s(qdt, sdims, &zps),
        ) else {
            return Ok(None);
        };
        let base = g.value(wv).name.clone();
        let qc = g.add_const(g.fresh_name(&format!("{base}_q")), qt);
        let sc = g.add_const(g.fresh_name(&format!("{base}_scale")), st);
        let zc = g.add_const(g.fresh_name(&format!("{base}_zero_point")), zt);
        let name = g.fresh_name(&format!("{base}_dq"));
        let id = g.add_node(
            g.fresh_node_name(&format!("{base}_dequantize")),
            Op::DequantizeLinear(DequantizeLinear {
                axis: if self.per_channel { axis as i64 } else { 1 },
                block_size: 0,
                output_dtype: 0,
            }),
            &[Some(qc), Some(sc), Some(zc)],
            vec![Value {
                name,
                ty: Type::tensor(DType::F32, &dims),
            }],
        )?;
        Ok(Some(ValueId::new(id, 0)))
    }
}

#[cfg(test)]
mod tests;
