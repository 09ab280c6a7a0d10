//! The reference evaluator: computes one node's outputs from constant inputs.
//!
//! It covers the ops that appear in constant subgraphs (shape arithmetic, ConstantOfShape,
//! Range, Cast, Gather, Concat, Reshape, Transpose, Unsqueeze/Squeeze, Slice, Shape, Expand,
//! Tile, Pad, GatherElements, Where, elementwise math and comparisons with numpy broadcasting,
//! reductions, Softmax, MatMul/Gemm, Quantize/DequantizeLinear), plus plain-loop Conv, pooling,
//! BatchNormalization and LRN so that [`ReferenceRunner`] can run small CNNs in tests. It is
//! checked against the ONNX backend tests of these ops (`tests/onnx_node_cases.rs`). It works on [`Tensor`]s:
//! data movement copies element bytes and so takes every dtype with a whole number of bytes
//! per element (and strings); arithmetic runs in `f64` for float dtypes (each result rounded
//! once to the output dtype, which for `+ - * /` and `sqrt` on `f32` is the correctly rounded
//! `f32` result) and in `i64` for integers and bools. Quantization follows ONNX to the bit:
//! `x / scale` in `f32`, round half to even, saturate.
//!
//! [`eval_op`] refuses (with [`EvalError::Unsupported`]) what it does not know, so constant
//! folding leaves such nodes alone; it never panics on model input. [`run_graph`] runs a
//! whole graph made of such ops, and [`ReferenceRunner`] wraps it as a [`crate::Runner`] for
//! tests and small graphs.

mod elementwise;
mod linalg;
mod movement;
mod nn;
mod quant;
mod reduce;

use smelt_ir::{DType, Graph, Op, Tensor, ValueId};
use std::collections::HashMap;

/// Why a node could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The evaluator does not implement this op, dtype or attribute combination.
    #[error("not supported by the reference evaluator: {0}")]
    Unsupported(String),
    /// The inputs do not fit the op.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) type R<T> = Result<T, EvalError>;

/// The most elements one evaluated tensor may have (a guard against shapes that would exhaust
/// memory when the caller could not check the size first).
pub const MAX_ELEMENTS: usize = 1 << 32;

pub(crate) fn check_size(dims: &[usize]) -> R<()> {
    match smelt_ir::tensor::element_count(dims) {
        Some(n) if n <= MAX_ELEMENTS => Ok(()),
        _ => unsupported(format!(
            "a tensor of shape {dims:?} is too large to evaluate"
        )),
    }
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> R<T> {
    Err(EvalError::Invalid(msg.into()))
}

pub(crate) fn unsupported<T>(msg: impl Into<String>) -> R<T> {
    Err(EvalError::Unsupported(msg.into()))
}

/// True when [`eval_op`] implements this op (for some dtypes at least).
pub fn can_eval(op: &Op) -> bool {
    use Op::*;
    match op {
        Input
        | Opaque(_)
        | If(_)
        | Loop(_)
        | LSTM(_)
        | GRU(_)
        | ConvTranspose(_)
        | Resize(_)
        | InstanceNormalization(_)
        | LayerNormalization(_)
        | TopK(_) => false,
        Const(_) | Pad(_) | GatherElements(_) => true,
        Conv(_)
        | MaxPool(_)
        | AveragePool(_)
        | GlobalAveragePool(_)
        | GlobalMaxPool(_)
        | BatchNormalization(_)
        | LRN(_) => true,
        Relu(_) | Sigmoid(_) | Tanh(_) | Erf(_) | Exp(_) | Log(_) | Sqrt(_) | Reciprocal(_)
        | Neg(_) | Abs(_) | Softplus(_) | Softsign(_) | Floor(_) | Ceil(_) | Round(_) | Sign(_)
        | Sin(_) | Cos(_) | Not(_) | IsNaN(_) | LeakyRelu(_) | Elu(_) | HardSigmoid(_)
        | HardSwish(_) | Gelu(_) | Clip(_) | Cast(_) | Identity(_) | Dropout(_) | Add(_)
        | Sub(_) | Mul(_) | Div(_) | Pow(_) | Mod(_) | PRelu(_) | Equal(_) | Less(_)
        | Greater(_) | LessOrEqual(_) | GreaterOrEqual(_) | And(_) | Or(_) | Xor(_) | Where(_)
        | Min(_) | Max(_) | Sum(_) | Mean(_) => true,
        Gemm(_) | MatMul(_) => true,
        Softmax(_) | LogSoftmax(_) => true,
        ReduceMean(_) | ReduceSum(_) | ReduceMax(_) | ReduceMin(_) | ReduceProd(_)
        | ReduceL2(_) | ReduceL1(_) | ReduceSumSquare(_) | ReduceLogSumExp(_) | ArgMax(_)
        | ArgMin(_) => true,
        Flatten(_) | Reshape(_) | Squeeze(_) | Unsqueeze(_) | Transpose(_) | Concat(_)
        | Split(_) | Slice(_) | Gather(_) | Expand(_) | Tile(_) | Shape(_) | Size(_)
        | ConstantOfShape(_) | Range(_) | Trilu(_) => true,
        QuantizeLinear(_) | DequantizeLinear(_) => true,
    }
}

/// Evaluates one op on constant inputs (`None`: an absent optional input), giving
/// `n_outputs` tensors.
pub fn eval_op(op: &Op, inputs: &[Option<&Tensor>], n_outputs: usize) -> R<Vec<Tensor>> {
    let args = Args(inputs);
    use Op::*;
    let one = |t: R<Tensor>| t.map(|t| vec![t]);
    match op {
        Const(t) => Ok(vec![t.clone()]),
        Identity(_) => Ok(vec![args.req(0)?.clone()]),
        Dropout(_) => {
            let x = args.req(0)?;
            if let Some(tm) = args.opt(2) {
                if tm.to_i64_vec().unwrap_or_default().iter().any(|v| *v != 0) {
                    return unsupported("Dropout in training mode");
                }
            }
            let mut out = vec![x.clone()];
            if n_outputs > 1 {
                out.push(
                    Tensor::from_i64s(DType::Bool, x.dims().to_vec(), &vec![1; x.len()])
                        .map_err(terr)?,
                );
            }
            Ok(out)
        }
        Cast(c) => one(quant::cast(args.req(0)?, c.to)),
        QuantizeLinear(q) => one(quant::quantize_linear(&args, q)),
        DequantizeLinear(q) => one(quant::dequantize_linear(&args, q)),
        Relu(_) | Sigmoid(_) | Tanh(_) | Erf(_) | Exp(_) | Log(_) | Sqrt(_) | Reciprocal(_)
        | Neg(_) | Abs(_) | Softplus(_) | Softsign(_) | Floor(_) | Ceil(_) | Round(_) | Sign(_)
        | Sin(_) | Cos(_) | Not(_) | IsNaN(_) | LeakyRelu(_) | Elu(_) | HardSigmoid(_)
        | HardSwish(_) | Gelu(_) => one(elementwise::unary(op, args.req(0)?)),
        Clip(_) => one(elementwise::clip(&args)),
        Add(_) | Sub(_) | Mul(_) | Div(_) | Pow(_) | Mod(_) | PRelu(_) | Equal(_) | Less(_)
        | Greater(_) | LessOrEqual(_) | GreaterOrEqual(_) | And(_) | Or(_) | Xor(_) => {
            one(elementwise::binary(op, args.req(0)?, args.req(1)?))
        }
        Min(_) | Max(_) | Sum(_) | Mean(_) => one(elementwise::variadic(op, &args)),
        Where(_) => one(movement::where_(args.req(0)?, args.req(1)?, args.req(2)?)),
        Trilu(t) => {
            let k = args
                .opt_ints(1)?
                .and_then(|v| v.first().copied())
                .unwrap_or(0);
            one(movement::trilu(args.req(0)?, k, t.upper != 0))
        }
        Softmax(s) => one(reduce::softmax(args.req(0)?, s.axis, false)),
        LogSoftmax(s) => one(reduce::softmax(args.req(0)?, s.axis, true)),
        MatMul(_) => one(linalg::matmul(args.req(0)?, args.req(1)?)),
        Conv(c) => one(nn::conv(args.req(0)?, args.req(1)?, args.opt(2), c)),
        MaxPool(p) => one(nn::max_pool(args.req(0)?, p, n_outputs)),
        AveragePool(p) => one(nn::average_pool(args.req(0)?, p)),
        GlobalAveragePool(_) => one(nn::global_pool(args.req(0)?, false)),
        GlobalMaxPool(_) => one(nn::global_pool(args.req(0)?, true)),
        BatchNormalization(b) => one(nn::batch_norm(
            [
                args.req(0)?,
                args.req(1)?,
                args.req(2)?,
                args.req(3)?,
                args.req(4)?,
            ],
            b,
            n_outputs,
        )),
        LRN(l) => one(nn::lrn(args.req(0)?, l)),
        Gemm(g) => one(linalg::gemm(&args, g)),
        ReduceMean(_) | ReduceSum(_) | ReduceMax(_) | ReduceMin(_) | ReduceProd(_)
        | ReduceL2(_) | ReduceL1(_) | ReduceSumSquare(_) | ReduceLogSumExp(_) => {
            one(reduce::reduce(op, &args))
        }
        ArgMax(a) => one(reduce::arg(
            args.req(0)?,
            a.axis,
            a.keepdims != 0,
            a.select_last_index != 0,
            true,
        )),
        ArgMin(a) => one(reduce::arg(
            args.req(0)?,
            a.axis,
            a.keepdims != 0,
            a.select_last_index != 0,
            false,
        )),
        Flatten(f) => one(movement::flatten(args.req(0)?, f.axis)),
        Reshape(r) => one(movement::reshape(
            args.req(0)?,
            &args.ints(1)?,
            r.allowzero != 0,
        )),
        Squeeze(_) => one(movement::squeeze(args.req(0)?, args.opt_ints(1)?)),
        Unsqueeze(_) => one(movement::unsqueeze(args.req(0)?, &args.ints(1)?)),
        Transpose(t) => one(movement::transpose(args.req(0)?, t.perm.as_deref())),
        Concat(c) => {
            let ts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
            one(movement::concat(&ts, c.axis))
        }
        Split(s) => movement::split(
            args.req(0)?,
            s.axis,
            args.opt_ints(1)?,
            s.num_outputs,
            n_outputs,
        ),
        Slice(_) => one(movement::slice(
            args.req(0)?,
            &args.ints(1)?,
            &args.ints(2)?,
            args.opt_ints(3)?,
            args.opt_ints(4)?,
        )),
        Gather(g) => one(movement::gather(args.req(0)?, args.req(1)?, g.axis)),
        GatherElements(g) => one(movement::gather_elements(
            args.req(0)?,
            args.req(1)?,
            g.axis,
        )),
        Pad(p) => one(movement::pad(
            args.req(0)?,
            &args.ints(1)?,
            args.opt(2),
            args.opt_ints(3)?,
            &p.mode,
        )),
        Expand(_) => one(movement::expand(args.req(0)?, &args.ints(1)?)),
        Tile(_) => one(movement::tile(args.req(0)?, &args.ints(1)?)),
        Shape(s) => {
            let dims = args.req(0)?.dims();
            let r = dims.len() as i64;
            let cl = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
            let (a, b) = (cl(s.start) as usize, cl(s.end.unwrap_or(r)) as usize);
            let v: Vec<i64> = dims
                .get(a..b.max(a))
                .unwrap_or(&[])
                .iter()
                .map(|d| *d as i64)
                .collect();
            one(Tensor::from_vec(vec![v.len()], &v).map_err(terr))
        }
        Size(_) => Ok(vec![Tensor::scalar(args.req(0)?.len() as i64)]),
        ConstantOfShape(c) => one(movement::constant_of_shape(
            &args.ints(0)?,
            c.value.as_ref(),
        )),
        Range(_) => one(movement::range(args.req(0)?, args.req(1)?, args.req(2)?)),
        Input
        | Opaque(_)
        | If(_)
        | Loop(_)
        | LSTM(_)
        | GRU(_)
        | ConvTranspose(_)
        | Resize(_)
        | InstanceNormalization(_)
        | LayerNormalization(_)
        | TopK(_) => unsupported(format!("op {}", op.op_type())),
    }
}

/// Runs a whole graph with the reference evaluator: every node must be one [`eval_op`]
/// takes. Returns the graph outputs and, when `keep_all` is set, every named value too.
pub fn run_graph(
    g: &Graph,
    inputs: &[Tensor],
    keep_all: bool,
) -> R<(Vec<Tensor>, HashMap<String, Tensor>)> {
    let order = g
        .topo_order()
        .map_err(|e| EvalError::Invalid(e.to_string()))?;
    let mut vals: HashMap<ValueId, Tensor> = HashMap::new();
    let ins = g.inputs();
    if ins.len() != inputs.len() {
        return invalid(format!(
            "the graph takes {} inputs, {} given",
            ins.len(),
            inputs.len()
        ));
    }
    for (v, t) in ins.iter().zip(inputs) {
        vals.insert(*v, t.clone());
    }
    for id in order {
        let n = g.node(id);
        if matches!(n.op, Op::Input) {
            continue;
        }
        let args: Vec<Option<ValueId>> = g.node_inputs(id);
        let mut a: Vec<Option<&Tensor>> = Vec::with_capacity(args.len());
        for v in &args {
            match v {
                Some(v) => match vals.get(v) {
                    Some(t) => a.push(Some(t)),
                    None => return invalid(format!("value `{}` not computed", g.value(*v).name)),
                },
                None => a.push(None),
            }
        }
        let outs = eval_op(&n.op, &a, n.outputs.len()).map_err(|e| match e {
            EvalError::Unsupported(m) => {
                EvalError::Unsupported(format!("node `{}`: {m}", g.display_node_name(id)))
            }
            EvalError::Invalid(m) => {
                EvalError::Invalid(format!("node `{}`: {m}", g.display_node_name(id)))
            }
        })?;
        for (p, t) in outs.into_iter().enumerate() {
            vals.insert(ValueId::new(id, p as u32), t);
        }
    }
    let mut outs = vec![];
    for v in g.outputs() {
        match vals.get(v) {
            Some(t) => outs.push(t.clone()),
            None => return invalid(format!("output `{}` not computed", g.value(*v).name)),
        }
    }
    let mut named = HashMap::new();
    if keep_all {
        for (v, t) in vals {
            let name = &g.value(v).name;
            if !name.is_empty() {
                named.insert(name.clone(), t);
            }
        }
    }
    Ok((outs, named))
}

/// A [`crate::Runner`] backed by the reference evaluator: exact and slow, for tests and for
/// graphs made only of the ops [`eval_op`] takes.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReferenceRunner;

impl crate::Runner for ReferenceRunner {
    fn run(&self, g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        run_graph(g, inputs, false)
            .map(|(o, _)| o)
            .map_err(|e| e.to_string())
    }
}

// ---- helpers shared by the op families ------------------------------------------------------

pub(crate) fn terr(e: smelt_ir::TensorError) -> EvalError {
    EvalError::Invalid(e.to_string())
}

/// The inputs of one node.
pub(crate) struct Args<'a>(&'a [Option<&'a Tensor>]);

impl<'a> Args<'a> {
    pub(crate) fn req(&self, i: usize) -> R<&'a Tensor> {
        match self.0.get(i) {
            Some(Some(t)) => Ok(t),
            _ => invalid(format!("input {i} is missing")),
        }
    }
    pub(crate) fn opt(&self, i: usize) -> Option<&'a Tensor> {
        self.0.get(i).copied().flatten()
    }
    pub(crate) fn all(&self) -> Vec<&'a Tensor> {
        self.0.iter().flatten().copied().collect()
    }
    pub(crate) fn ints(&self, i: usize) -> R<Vec<i64>> {
        match self.req(i)?.to_i64_vec() {
            Some(v) => Ok(v),
            None => invalid(format!("input {i} must be integers")),
        }
    }
    pub(crate) fn opt_ints(&self, i: usize) -> R<Option<Vec<i64>>> {
        match self.opt(i) {
            Some(_) => self.ints(i).map(Some),
            None => Ok(None),
        }
    }
}

/// Numbers of a tensor in one of the two arithmetic domains.
#[derive(Clone, Debug)]
pub(crate) enum Num {
    /// Float dtypes.
    F(Vec<f64>),
    /// Integer and bool dtypes.
    I(Vec<i64>),
}

pub(crate) fn num(t: &Tensor) -> R<Num> {
    let d = t.dtype();
    if matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        return t
            .to_f64_vec()
            .map(Num::F)
            .ok_or_else(|| EvalError::Unsupported(format!("dtype {d}")));
    }
    if d.is_int() || d == DType::Bool {
        return t
            .to_i64_vec()
            .map(Num::I)
            .ok_or_else(|| EvalError::Unsupported(format!("dtype {d}")));
    }
    unsupported(format!("arithmetic on {d}"))
}

pub(crate) fn from_num(dtype: DType, dims: Vec<usize>, n: &Num) -> R<Tensor> {
    match n {
        Num::F(v) => Tensor::from_f64s(dtype, dims, v).map_err(terr),
        Num::I(v) if dtype.is_float() => {
            let f: Vec<f64> = v.iter().map(|x| *x as f64).collect();
            Tensor::from_f64s(dtype, dims, &f).map_err(terr)
        }
        Num::I(v) => Tensor::from_i64s(dtype, dims, v).map_err(terr),
    }
}

/// Row-major strides.
pub(crate) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

pub(crate) fn count(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// numpy broadcasting of static shapes.
pub(crate) fn broadcast_dims(a: &[usize], b: &[usize]) -> R<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let x = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let y = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out.push(match (x, y) {
            (1, d) | (d, 1) => d,
            (p, q) if p == q => p,
            (p, q) => {
                return invalid(format!(
                    "shapes {a:?} and {b:?} do not broadcast ({p} vs {q})"
                ))
            }
        });
    }
    Ok(out)
}

/// The linear indices visited by walking `dims` row-major, starting at `base` and moving by
/// `st[k]` along axis `k`: the index maps of broadcasting, transposition, slicing and reduction,
/// computed lazily so that large constants need no index arrays.
#[derive(Clone, Debug)]
pub(crate) struct Walk {
    dims: Vec<usize>,
    st: Vec<i64>,
    pos: Vec<usize>,
    cur: i64,
    left: usize,
}

impl Walk {
    pub(crate) fn new(dims: &[usize], st: Vec<i64>, base: i64) -> Walk {
        Walk {
            dims: dims.to_vec(),
            pos: vec![0; dims.len()],
            st,
            cur: base,
            left: count(dims),
        }
    }
}

impl Iterator for Walk {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let v = self.cur as usize;
        let mut k = self.dims.len();
        while k > 0 {
            k -= 1;
            self.pos[k] += 1;
            self.cur += self.st[k];
            if self.pos[k] < self.dims[k] {
                break;
            }
            self.cur -= self.st[k] * self.pos[k] as i64;
            self.pos[k] = 0;
        }
        Some(v)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Walk {}

/// For every element of `out` (row-major), the linear index of the element of a tensor of
/// shape `inp` (rank at most `out`'s) that broadcasting maps onto it.
pub(crate) fn broadcast_index(inp: &[usize], out: &[usize]) -> Walk {
    let r = out.len();
    let off = r.saturating_sub(inp.len());
    let ist = strides(inp);
    let st: Vec<i64> = (0..r)
        .map(|k| {
            if k < off || inp[k - off] == 1 {
                0
            } else {
                ist[k - off] as i64
            }
        })
        .collect();
    Walk::new(out, st, 0)
}

/// Element `i` of every index map, gathered from `t` into a tensor of `dims`: works on any
/// dtype (bytes are copied; sub-byte types go through `i64`).
pub(crate) fn take(
    t: &Tensor,
    dims: Vec<usize>,
    idx: impl IntoIterator<Item = usize>,
) -> R<Tensor> {
    let idx = idx.into_iter();
    let d = t.dtype();
    if let Some(s) = t.strings() {
        let v: Vec<Vec<u8>> = idx.map(|i| s[i].clone()).collect();
        return Tensor::from_strings(dims, v).map_err(terr);
    }
    let bits = d.bits();
    if !bits.is_multiple_of(8) {
        let v = t
            .to_i64_vec()
            .ok_or_else(|| EvalError::Unsupported(format!("moving {d} data")))?;
        let o: Vec<i64> = idx.map(|i| v[i]).collect();
        return Tensor::from_i64s(d, dims, &o).map_err(terr);
    }
    let es = bits / 8;
    let b = t.bytes().unwrap_or_default();
    let mut out = Vec::with_capacity(idx.size_hint().0 * es);
    for i in idx {
        out.extend_from_slice(&b[i * es..(i + 1) * es]);
    }
    Tensor::from_bytes(d, dims, out).map_err(terr)
}

/// Normalises an axis in `[-rank, rank)`.
pub(crate) fn axis(a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let x = if a < 0 { a + r } else { a };
    if x < 0 || x >= r {
        return invalid(format!("axis {a} out of range for rank {rank}"));
    }
    Ok(x as usize)
}

#[cfg(test)]
mod tests;
