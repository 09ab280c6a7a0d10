//! `quantize`: weight-only int8 (or int4) for Gemm, MatMul and Conv.
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
//! `bits=4` stores int4 (uint4 when asymmetric; packed two a byte; symmetric scale
//! `max|w| / 7`); `block=B` gives every B consecutive weights along the input axis (Gemm
//! `transB=1`: 1, `transB=0`: 0; MatMul: the second-last axis; Conv: 1) their own scale — the
//! opset-21 blocked DequantizeLinear (`axis` = the input axis, `block_size=B`), which the
//! exporter must write with opset 21.
//!
//! `calib=X` measures each layer's sensitivity on a calibration batch with the context's runner,
//! and `max_error=E` keeps the most sensitive layers in float until the model is within E
//! ([`calibrate`] says how).
//!
//! Lossy: the report gives the sizes; accuracy is the caller's to measure.

use crate::pass::{Changed, Pass, PassCtx, PassError};
use crate::registry::{OptionInfo, OptionKind, PassInfo};
use crate::spec::Options;
use smelt_ir::ops::DequantizeLinear;
use smelt_ir::{DType, Graph, GraphError, NodeId, Op, Tensor, Type, Value, ValueId};
use std::collections::{HashMap, HashSet};

pub mod calibrate;

/// The `quantize` pass's options.
#[derive(Clone, Debug)]
pub struct Quantize {
    /// Weight bits: 8 (int8/uint8) or 4 (int4/uint4, packed).
    pub bits: u32,
    /// Blocks of this many weights along the input axis share a scale (opset-21 blocked
    /// DequantizeLinear); `None`: per channel or per tensor.
    pub block: Option<usize>,
    /// One scale per output channel (else one per tensor).
    pub per_channel: bool,
    /// Symmetric int8 (else asymmetric uint8).
    pub symmetric: bool,
    /// Nodes (by node name or weight name) to keep in float.
    pub skip: Option<regex::Regex>,
    /// Calibration batch (a tensor file the context's loader reads): measure every layer's
    /// sensitivity on it.
    pub calib: Option<String>,
    /// With `calib`: keep the most sensitive layers in float until the whole model's error
    /// (max |y_q - y| / max |y| over the batch) is at most this.
    pub max_error: Option<f64>,
}

impl Default for Quantize {
    fn default() -> Quantize {
        Quantize {
            bits: 8,
            block: None,
            per_channel: true,
            symmetric: true,
            skip: None,
            calib: None,
            max_error: None,
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
            help: "weight bits: 8 or 4",
        },
        OptionInfo {
            name: "block",
            kind: OptionKind::Int,
            default: "",
            help: "blocks of this many input weights share a scale (opset 21)",
        },
        OptionInfo {
            name: "calib",
            kind: OptionKind::Path,
            default: "",
            help: "calibration batch: measure each layer's sensitivity (needs a runner)",
        },
        OptionInfo {
            name: "max_error",
            kind: OptionKind::Float,
            default: "",
            help:
                "with calib: keep the most sensitive layers float until the error is at most this",
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
    if bits != 8 && bits != 4 {
        return Err(PassError::BadOption {
            pass: "quantize",
            option: "bits",
            msg: format!("{bits} bits is not implemented (8 and 4 are)"),
        });
    }
    let block = match o.get("block") {
        None => None,
        Some(_) => {
            let b = o.int("block", 0);
            if b < 1 {
                return Err(PassError::BadOption {
                    pass: "quantize",
                    option: "block",
                    msg: format!("must be at least 1, got {b}"),
                });
            }
            Some(b as usize)
        }
    };
    let skip = match o.str("skip") {
        Some(r) => Some(regex::Regex::new(r).map_err(|e| PassError::BadOption {
            pass: "quantize",
            option: "skip",
            msg: e.to_string(),
        })?),
        None => None,
    };
    let calib = o.str("calib").map(str::to_string);
    let max_error = o.get("max_error").map(|_| o.float("max_error", 0.0));
    if max_error.is_some() && calib.is_none() {
        return Err(PassError::BadOption {
            pass: "quantize",
            option: "max_error",
            msg: "needs calib=FILE to measure the error on".into(),
        });
    }
    Ok(Box::new(Quantize {
        calib,
        max_error,
        bits: bits as u32,
        block,
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
        let (targets, skipped) = self.candidates(g);
        let mut keep: HashSet<NodeId> = HashSet::new();
        if let Some(path) = &self.calib {
            keep = calibrate::choose(self, g, cx, path, &targets)?;
        }
        let chosen: Vec<Target> = targets
            .into_iter()
            .filter(|t| !keep.contains(&t.node))
            .collect();
        let n = self.apply(g, &chosen)?;
        let f = Format::new(self.bits, self.symmetric);
        let how = match self.block {
            Some(b) => format!("blocks of {b}"),
            None if self.per_channel => "per channel".to_string(),
            None => "per tensor".to_string(),
        };
        cx.note(format!(
            "quantized {n} weight input(s) to {}, {how}",
            f.dtype
        ));
        if !skipped.is_empty() {
            cx.note(format!("kept in float (skip): {}", skipped.join(", ")));
        }
        Ok(Changed::count(n))
    }
}

/// One weight input the pass can quantize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) node: NodeId,
    weight: ValueId,
    /// The output-channel axis of the weight.
    axis: usize,
    /// The input (reduction) axis of the weight.
    in_axis: usize,
}

impl Quantize {
    /// The weights to quantize, and the names of the nodes `skip` keeps in float.
    pub(crate) fn candidates(&self, g: &Graph) -> (Vec<Target>, Vec<String>) {
        let mut out = vec![];
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
            let (axis, in_axis) = match &g.node(id).op {
                Op::Gemm(gm) if rank == 2 => (usize::from(!gm.trans_b), usize::from(gm.trans_b)),
                Op::MatMul(_) => (rank - 1, rank - 2),
                Op::Conv(_) => (0, 1),
                _ => continue,
            };
            if let Some(re) = &self.skip {
                let node = g.display_node_name(id);
                if re.is_match(&node) || re.is_match(&g.value(wv).name) {
                    skipped.push(node);
                    continue;
                }
            }
            out.push(Target {
                node: id,
                weight: wv,
                axis,
                in_axis,
            });
        }
        (out, skipped)
    }

    /// Quantizes the given weight inputs; returns how many.
    pub(crate) fn apply(&self, g: &mut Graph, targets: &[Target]) -> Result<usize, PassError> {
        let ge = |source: GraphError| PassError::Graph {
            pass: "quantize",
            source,
        };
        let mut done: HashMap<(ValueId, usize, usize), ValueId> = HashMap::new();
        let mut n = 0;
        for t in targets {
            let key = (t.weight, t.axis, t.in_axis);
            let dq = match done.get(&key) {
                Some(v) => *v,
                None => {
                    let Some(v) = self.emit(g, t.weight, t.axis, t.in_axis).map_err(ge)? else {
                        continue;
                    };
                    done.insert(key, v);
                    v
                }
            };
            g.set_node_input(t.node, 1, Some(dq)).map_err(ge)?;
            n += 1;
        }
        g.remove_dead_nodes();
        Ok(n)
    }
}

/// The integer format of the weights.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Format {
    dtype: DType,
    lo: i64,
    hi: i64,
    /// The largest magnitude a symmetric scale maps to.
    sym_max: f32,
}

impl Format {
    fn new(bits: u32, symmetric: bool) -> Format {
        match (bits, symmetric) {
            (4, true) => Format {
                dtype: DType::I4,
                lo: -8,
                hi: 7,
                sym_max: 7.0,
            },
            (4, false) => Format {
                dtype: DType::U4,
                lo: 0,
                hi: 15,
                sym_max: 7.0,
            },
            (_, true) => Format {
                dtype: DType::I8,
                lo: -128,
                hi: 127,
                sym_max: 127.0,
            },
            (_, false) => Format {
                dtype: DType::U8,
                lo: 0,
                hi: 255,
                sym_max: 127.0,
            },
        }
    }
}

/// Scale and zero point of one group of weights.
fn quant_group(w: &[f32], symmetric: bool, f: Format) -> (f32, i64) {
    if symmetric {
        let m = w.iter().fold(0f32, |a, v| a.max(v.abs()));
        let s = if m > 0.0 && m.is_finite() {
            m / f.sym_max
        } else {
            1.0
        };
        (s, 0)
    } else {
        let lo = w.iter().fold(0f32, |a, v| a.min(*v));
        let hi = w.iter().fold(0f32, |a, v| a.max(*v));
        let span = (f.hi - f.lo) as f32;
        let s = if hi > lo { (hi - lo) / span } else { 1.0 };
        let z = (-lo / s).round_ties_even().clamp(f.lo as f32, f.hi as f32) as i64;
        (s, z)
    }
}

impl Quantize {
    /// Quantizes the weight `wv`: `axis` is its output-channel axis, `in_axis` its input
    /// (reduction) axis, along which blocks run.
    fn emit(
        &self,
        g: &mut Graph,
        wv: ValueId,
        axis: usize,
        in_axis: usize,
    ) -> Result<Option<ValueId>, GraphError> {
        let Some(w) = g.const_value(wv).cloned() else {
            return Ok(None);
        };
        let Some(wf) = w.to_f32_vec() else {
            return Ok(None);
        };
        let dims = w.dims().to_vec();
        let f = Format::new(self.bits, self.symmetric);
        // The group (scale index) of every element, the scales' shape and the DQ attributes.
        let (group, sdims, dq_axis, block): (Vec<usize>, Vec<usize>, usize, usize) =
            match self.block {
                Some(b) => {
                    let mut sd = dims.clone();
                    sd[in_axis] = dims[in_axis].div_ceil(b);
                    let st = crate::eval::strides(&dims);
                    let sst = crate::eval::strides(&sd);
                    let grp = (0..wf.len())
                        .map(|i| {
                            (0..dims.len())
                                .map(|k| {
                                    let c = (i / st[k]) % dims[k];
                                    let c = if k == in_axis { c / b } else { c };
                                    c * sst[k]
                                })
                                .sum()
                        })
                        .collect();
                    (grp, sd, in_axis, b)
                }
                None if self.per_channel => {
                    let c = dims[axis];
                    let inner: usize = dims[axis + 1..].iter().product();
                    let grp = (0..wf.len())
                        .map(|i| (i / inner.max(1)) % c.max(1))
                        .collect();
                    (grp, vec![c], axis, 0)
                }
                None => (vec![0; wf.len()], vec![], 1, 0),
            };
        let ngroups: usize = sdims.iter().product();
        let mut members: Vec<Vec<f32>> = vec![vec![]; ngroups];
        for (v, k) in wf.iter().zip(&group) {
            members[*k].push(*v);
        }
        let (scales, zps): (Vec<f32>, Vec<i64>) = members
            .iter()
            .map(|m| quant_group(m, self.symmetric, f))
            .unzip();
        let q: Vec<i64> = wf
            .iter()
            .zip(&group)
            .map(|(v, k)| {
                let r = (v / scales[*k]).round_ties_even() as f64 + zps[*k] as f64;
                r.clamp(f.lo as f64, f.hi as f64) as i64
            })
            .collect();
        let (Ok(qt), Ok(st), Ok(zt)) = (
            Tensor::from_i64s(f.dtype, dims.clone(), &q),
            Tensor::from_vec(sdims.clone(), &scales),
            Tensor::from_i64s(f.dtype, sdims, &zps),
        ) else {
            return Ok(None);
        };
        let base = g.value(wv).name.clone();
        let qc = g.add_const(crate::util::fresh_name(g, &format!("{base}_q")), qt);
        let sc = g.add_const(crate::util::fresh_name(g, &format!("{base}_scale")), st);
        let zc = g.add_const(
            crate::util::fresh_name(g, &format!("{base}_zero_point")),
            zt,
        );
        let name = crate::util::fresh_name(g, &format!("{base}_dq"));
        let id = g.add_node(
            g.fresh_node_name(&format!("{base}_dequantize")),
            Op::DequantizeLinear(DequantizeLinear {
                axis: dq_axis as i64,
                block_size: block as i64,
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
