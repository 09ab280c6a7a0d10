//! Lowering: the bound, planned graph becomes one Cranelift function.
//!
//! [`lower_model`] is written over `cranelift_module::Module`, so the JIT and the object-file
//! backend share it. The function it defines has the native ABI of DESIGN.md:
//!
//! ```c
//! int NAME_run(const void *const *inputs, void *const *outputs, void *arena);
//! ```
//!
//! Every node becomes a straight run of loops over static extents (no dispatch, no calls, no
//! allocation); constants whose bytes the code reads go into one read-only data object
//! (`NAME_weights`), possibly repacked for the kernels. One module per op family lowers its
//! ops; this module holds the shared kit (loops, addresses, constants, lanes) and the dispatch.

pub(crate) mod control;
pub(crate) mod conv;
pub(crate) mod conv_transpose;
pub(crate) mod depthwise;
pub(crate) mod elementwise;
pub(crate) mod float8;
pub(crate) mod half;
pub(crate) mod im2col;
pub(crate) mod linalg64;
pub(crate) mod math;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod quant;
pub(crate) mod reduce;
pub(crate) mod resize;
pub(crate) mod rnn;
pub(crate) mod shape;
pub(crate) mod softmax;
pub(crate) mod trilu;
pub(crate) mod winograd;

use crate::error::{CodegenError, Unsupported};
use crate::plan::{MemoryPlan, NodeKind, Place};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Type, Value};
use cranelift_codegen::ir::{Endianness, UserFuncName};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{DataDescription, FuncId, Linkage, Module};
use smelt_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};
use std::collections::{HashMap, HashSet};

/// Result of one lowering step; the error is the reason a node cannot be lowered.
pub(crate) type R<T> = Result<T, String>;

/// A tensor operand of a node: where it lives, its element type and its static dims.
#[derive(Clone, Debug)]
pub(crate) struct Operand {
    pub v: ValueId,
    pub place: Place,
    pub dtype: DType,
    pub dims: Vec<usize>,
}

impl Operand {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }
    /// Element size in bytes.
    pub fn elem(&self) -> usize {
        elem_bytes(self.dtype)
    }
}

/// Bytes of one element of the dtypes the backend handles.
pub(crate) fn elem_bytes(d: DType) -> usize {
    d.bits().div_ceil(8).max(1)
}

/// The Cranelift scalar type that holds one element of `d` (bool is a byte).
pub(crate) fn clif_ty(d: DType) -> Option<Type> {
    Some(match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I64 | DType::U64 => types::I64,
        DType::I32 | DType::U32 => types::I32,
        DType::I16 | DType::U16 => types::I16,
        // Half floats are carried as their bit patterns: data movement copies them, Cast
        // converts them (lower/half.rs); arithmetic checks list its dtypes and excludes them.
        DType::F16 | DType::BF16 => types::I16,
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ => types::I8,
        DType::I8 | DType::U8 | DType::Bool => types::I8,
        _ => return None,
    })
}

/// Lane width of a kernel body: one element or four.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lanes {
    One,
    Four,
}

impl Lanes {
    /// The Cranelift type of `scalar` at this width.
    pub fn ty(self, scalar: Type) -> Type {
        match self {
            Lanes::One => scalar,
            Lanes::Four => scalar.by(4).unwrap_or(scalar),
        }
    }
}

/// A fused activation: the result is clamped into `[lo, hi]` (Relu: `[0, inf]`).
pub(crate) type Act = Option<(f32, f32)>;

/// Applies a fused activation to an f32x4.
pub(crate) fn apply_act(cx: &mut Ctx, v: Value, act: Act) -> Value {
    let Some((lo, hi)) = act else {
        return v;
    };
    let mut v = v;
    if lo.is_finite() {
        let l = cx.fconst(Lanes::Four, lo);
        v = cx.clamp_below(v, l);
    }
    if hi.is_finite() {
        let h = cx.fconst(Lanes::Four, hi);
        v = cx.clamp_above(v, h);
    }
    v
}

/// A node being lowered: its operands.
pub(crate) struct NodeIo<'g> {
    pub g: &'g Graph,
    pub id: NodeId,
    pub ins: Vec<Option<Operand>>,
    pub outs: Vec<Option<Operand>>,
    /// An activation fused into this node's output (Conv, Gemm, MatMul).
    pub act: Act,
    /// Arena offset of the node's scratch space, if the plan gave it one.
    pub scratch: Option<u64>,
}

impl<'g> NodeIo<'g> {
    /// Required input `i`.
    pub fn input(&self, i: usize) -> R<&Operand> {
        self.ins
            .get(i)
            .and_then(|o| o.as_ref())
            .ok_or_else(|| format!("input {i} is missing"))
    }
    /// Optional input `i`.
    pub fn opt_input(&self, i: usize) -> Option<&Operand> {
        self.ins.get(i).and_then(|o| o.as_ref())
    }
    /// Output `i` (absent optional outputs are `None`).
    pub fn output(&self, i: usize) -> R<&Operand> {
        self.outs
            .get(i)
            .and_then(|o| o.as_ref())
            .ok_or_else(|| format!("output {i} is missing"))
    }
    /// The constant behind input `i`, if it is one.
    pub fn konst(&self, i: usize) -> Option<&'g Tensor> {
        let v = self.ins.get(i)?.as_ref()?.v;
        self.g.const_value(v)
    }
    /// The integer values of constant input `i`.
    pub fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        self.konst(i)?.to_i64_vec()
    }
    /// The node's op.
    pub fn op(&self) -> &'g Op {
        &self.g.node(self.id).op
    }
}

/// Options that shape the generated code.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Features {
    /// Fused multiply-add is native (never emitted otherwise: it would become a libm call).
    pub fma: bool,
}

/// The state of the function being built.
pub(crate) struct Ctx<'a> {
    pub b: FunctionBuilder<'a>,
    pub feat: Features,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
    captures: Vec<Value>,
    arena: Value,
    weights: Value,
    blob: Vec<u8>,
    /// Offsets of constants already in the weights object, by (graph, value): subgraphs number
    /// their values independently.
    const_at: HashMap<(usize, ValueId), u64>,
}

/// Flags for `bitcast`: only the byte order.
pub(crate) fn bc() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Memory access flags: in bounds (the plan guarantees it), little-endian, and *not* marked
/// aligned, so that vector accesses at any element offset stay legal.
pub(crate) fn mf() -> MemFlagsData {
    MemFlagsData::new()
        .with_notrap()
        .with_endianness(Endianness::Little)
}

#[allow(dead_code)] // kit methods some families use
impl<'a> Ctx<'a> {
    /// A 64-bit integer constant.
    pub fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }
    /// An f32 constant at the given width.
    pub fn fconst(&mut self, lanes: Lanes, v: f32) -> Value {
        let s = self.b.ins().f32const(v);
        match lanes {
            Lanes::One => s,
            Lanes::Four => self.b.ins().splat(types::F32X4, s),
        }
    }
    /// An i32 constant at the given width.
    pub fn i32const(&mut self, lanes: Lanes, v: i32) -> Value {
        let s = self.b.ins().iconst(types::I32, v as i64);
        match lanes {
            Lanes::One => s,
            Lanes::Four => self.b.ins().splat(types::I32X4, s),
        }
    }
    /// Loads a value of type `ty` at `addr + off` bytes.
    pub fn load(&mut self, ty: Type, addr: Value, off: i64) -> Value {
        let a = if off == 0 || i32::try_from(off).is_err() {
            if off == 0 {
                addr
            } else {
                self.b.ins().iadd_imm_s(addr, off)
            }
        } else {
            return self.b.ins().load(ty, mf(), addr, off as i32);
        };
        self.b.ins().load(ty, mf(), a, 0)
    }
    /// Stores `v` at `addr + off` bytes.
    pub fn store(&mut self, v: Value, addr: Value, off: i64) {
        if let Ok(o) = i32::try_from(off) {
            self.b.ins().store(mf(), v, addr, o);
        } else {
            let a = self.b.ins().iadd_imm_s(addr, off);
            self.b.ins().store(mf(), v, a, 0);
        }
    }
    /// `base + idx * scale` (bytes).
    pub fn index(&mut self, base: Value, idx: Value, scale: i64) -> Value {
        if scale == 0 {
            return base;
        }
        let o = if scale == 1 {
            idx
        } else {
            self.b.ins().imul_imm_s(idx, scale)
        };
        self.b.ins().iadd(base, o)
    }
    /// `base + off` (bytes), folding zero.
    pub fn offset(&mut self, base: Value, off: i64) -> Value {
        if off == 0 {
            base
        } else {
            self.b.ins().iadd_imm_s(base, off)
        }
    }
    /// A fresh SSA variable.
    pub fn var(&mut self, ty: Type, init: Value) -> Variable {
        let v = self.b.declare_var(ty);
        self.b.def_var(v, init);
        v
    }
    /// `a * b + c`, fused when the target has native FMA.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.feat.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let m = self.b.ins().fmul(a, b);
            self.b.ins().fadd(m, c)
        }
    }
    /// `max(v, lo)` lane-wise (f32 or f32x4), NaN in `v` kept (ONNX Relu/Clip): `v < lo ? lo : v`.
    /// Written as the compare-and-select that x64 lowers to one `maxps`; Cranelift's `fmax`
    /// is IEEE `maximum` (NaN from either side, -0 < +0), about seven instructions.
    pub fn clamp_below(&mut self, v: Value, lo: Value) -> Value {
        let c = self.b.ins().fcmp(FloatCC::LessThan, v, lo);
        self.pick(c, lo, v)
    }
    /// `min(v, hi)` lane-wise (f32 or f32x4), NaN in `v` kept: `hi < v ? hi : v` (one `minps`).
    pub fn clamp_above(&mut self, v: Value, hi: Value) -> Value {
        let c = self.b.ins().fcmp(FloatCC::LessThan, hi, v);
        self.pick(c, hi, v)
    }
    /// `c ? a : b` for a comparison result `c` of scalar or vector floats.
    fn pick(&mut self, c: Value, a: Value, b: Value) -> Value {
        let ty = self.b.func.dfg.value_type(a);
        if ty.is_vector() {
            let c = self.b.ins().bitcast(ty, bc(), c);
            self.b.ins().bitselect(c, a, b)
        } else {
            self.b.ins().select(c, a, b)
        }
    }
    /// Float comparison giving a lane mask usable by [`Ctx::select`].
    pub fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }
    /// `cond ? a : b` for a mask from `fcmp`/`icmp` at the width of `a`.
    pub fn select(&mut self, lanes: Lanes, cond: Value, a: Value, b: Value) -> Value {
        match lanes {
            Lanes::One => self.b.ins().select(cond, a, b),
            Lanes::Four => {
                let ty = self.b.func.dfg.value_type(a);
                let cty = self.b.func.dfg.value_type(cond);
                let c = if cty != ty {
                    self.b.ins().bitcast(ty, bc(), cond)
                } else {
                    cond
                };
                self.b.ins().bitselect(c, a, b)
            }
        }
    }
    /// Emits `body(i)` for `i` in `0..n` as a native loop (straight code for n <= 1).
    pub fn for_n(&mut self, n: usize, mut body: impl FnMut(&mut Self, Value) -> R<()>) -> R<()> {
        if n == 0 {
            return Ok(());
        }
        if n == 1 {
            let z = self.iconst(0);
            return body(self, z);
        }
        let head = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(head, types::I64);
        let z = self.iconst(0);
        self.b.ins().jump(head, &[z.into()]);
        self.b.switch_to_block(head);
        let i = self.b.block_params(head)[0];
        body(self, i)?;
        let next = self.b.ins().iadd_imm_s(i, 1);
        let more = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThan, next, n as i64);
        self.b.ins().brif(more, head, &[next.into()], exit, &[]);
        self.b.seal_block(head);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
        Ok(())
    }
    /// Emits `then()` only when `cond` (an i8 truth value) holds.
    pub fn when(&mut self, cond: Value, then: impl FnOnce(&mut Self) -> R<()>) -> R<()> {
        let yes = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(cond, yes, &[], done, &[]);
        self.b.seal_block(yes);
        self.b.switch_to_block(yes);
        then(self)?;
        self.b.ins().jump(done, &[]);
        self.b.seal_block(done);
        self.b.switch_to_block(done);
        Ok(())
    }
    /// Loops over a box of static extents; `offs[k]` start at `base[k]` (elements) and advance by
    /// `strides[k][d]` along dim `d`. Calls `body` with the offsets of the innermost point.
    pub fn nest(
        &mut self,
        dims: &[usize],
        strides: &[Vec<i64>],
        base: Vec<Value>,
        body: &mut dyn FnMut(&mut Self, &[Value]) -> R<()>,
    ) -> R<()> {
        let Some((&d0, rest)) = dims.split_first() else {
            return body(self, &base);
        };
        let inner: Vec<Vec<i64>> = strides.iter().map(|s| s[1..].to_vec()).collect();
        self.for_n(d0, |cx, i| {
            let offs: Vec<Value> = base
                .iter()
                .zip(strides)
                .map(|(b, s)| {
                    if s[0] == 0 {
                        *b
                    } else {
                        let m = cx.b.ins().imul_imm_s(i, s[0]);
                        cx.b.ins().iadd(*b, m)
                    }
                })
                .collect();
            cx.nest(rest, &inner, offs, body)
        })
    }
    /// The address of an operand's first element.
    pub fn addr(&mut self, g: &Graph, o: &Operand) -> R<Value> {
        Ok(match o.place {
            Place::Input(i) => *self.inputs.get(i).ok_or("no such input")?,
            Place::Capture(k) => *self.captures.get(k).ok_or("no such capture")?,
            Place::Output(j) => *self.outputs.get(j).ok_or("no such output")?,
            Place::Arena(off) => self.offset(self.arena, off as i64),
            Place::Const => {
                let t = g.const_value(o.v).ok_or("constant without data")?;
                let key = (g as *const Graph as usize, o.v);
                let off = match self.const_at.get(&key) {
                    Some(off) => *off,
                    None => {
                        let bytes = t.bytes().ok_or("string constants are not supported")?;
                        let off = self.add_weights(bytes);
                        self.const_at.insert(key, off);
                        off
                    }
                };
                self.offset(self.weights, off as i64)
            }
        })
    }
    /// Appends bytes to the weights object (64-byte aligned) and returns their offset.
    pub fn add_weights(&mut self, bytes: &[u8]) -> u64 {
        let off = self.blob.len().div_ceil(64) * 64;
        self.blob.resize(off, 0);
        self.blob.extend_from_slice(bytes);
        off as u64
    }
    /// Appends f32 values to the weights object; returns the address of the first.
    pub fn add_f32s(&mut self, v: &[f32]) -> Value {
        // Straight into the object (no intermediate byte vector: packed weights run to
        // hundreds of megabytes for large models).
        let off = self.blob.len().div_ceil(64) * 64;
        self.blob.resize(off, 0);
        self.blob.reserve(v.len() * 4);
        for x in v {
            self.blob.extend_from_slice(&x.to_le_bytes());
        }
        self.offset(self.weights, off as i64)
    }
    /// The address of byte `off` of the weights object.
    pub fn weights_at(&mut self, off: u64) -> Value {
        self.offset(self.weights, off as i64)
    }
    /// Runs `body` over `n` contiguous f32 elements: four lanes at a time, then the tail one
    /// at a time; `body` gets the byte offset of its first element.
    pub fn vec_loop(
        &mut self,
        n: usize,
        body: &mut dyn FnMut(&mut Self, Lanes, Value) -> R<()>,
    ) -> R<()> {
        let nv = n / 4;
        self.for_n(nv, |cx, i| {
            let off = cx.b.ins().imul_imm_s(i, 16);
            body(cx, Lanes::Four, off)
        })?;
        for t in nv * 4..n {
            let off = self.iconst(t as i64 * 4);
            body(self, Lanes::One, off)?;
        }
        Ok(())
    }
    /// Horizontal combination of the four lanes of `v` with `f`.
    pub fn hreduce(&mut self, v: Value, f: fn(&mut Self, Value, Value) -> Value) -> Value {
        let a = self.b.ins().extractlane(v, 0);
        let b = self.b.ins().extractlane(v, 1);
        let c = self.b.ins().extractlane(v, 2);
        let d = self.b.ins().extractlane(v, 3);
        let ab = f(self, a, b);
        let cd = f(self, c, d);
        f(self, ab, cd)
    }
    /// The start of the arena.
    pub fn arena(&self) -> Value {
        self.arena
    }
}

/// Row-major strides (in elements) of `dims`.
pub(crate) fn strides(dims: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as i64;
    }
    s
}

/// Normalises a possibly negative axis.
pub(crate) fn axis(a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let x = if a < 0 { a + r } else { a };
    if x < 0 || x >= r {
        return Err(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(x as usize)
}

/// Whether `v` is computed from constants and tensor shapes only (`Shape`, `Size`, through
/// the nodes binding folds): such an operand is a constant once the input shapes are bound
/// (a dynamic-length export's causal-mask Slice, say), so `smelt check` on the unbound model
/// must not call it a run-time value.
fn from_shapes(g: &Graph, v: ValueId, depth: usize) -> bool {
    if g.const_value(v).is_some() {
        return true;
    }
    if depth > 64 {
        return false;
    }
    let op = &g.node(v.node).op;
    if matches!(op, Op::Shape(_) | Op::Size(_)) {
        return true;
    }
    crate::fold::follows_values(op)
        && g.node_inputs(v.node)
            .into_iter()
            .flatten()
            .all(|x| from_shapes(g, x, depth + 1))
}

/// Why the backend cannot lower node `id` of a bound graph, if it cannot.
pub(crate) fn check_node(g: &Graph, id: NodeId) -> R<()> {
    let node = g.node(id);
    let ins = g.node_inputs(id);
    let dt = |i: usize| -> Option<DType> {
        ins.get(i)
            .copied()
            .flatten()
            .and_then(|v| g.value_type(v).dtype())
    };
    let f32_in = || -> R<()> {
        match dt(0) {
            Some(DType::F32) => Ok(()),
            Some(d) => Err(format!("{d} inputs are not supported (f32 only)")),
            None => Err("input 0 has no known dtype".into()),
        }
    };
    let any_in = || -> R<()> {
        match dt(0) {
            Some(d) if clif_ty(d).is_some() => Ok(()),
            Some(d) => Err(format!("{d} tensors are not supported")),
            None => Err("input 0 has no known dtype".into()),
        }
    };
    let const_in = |i: usize, what: &str| -> R<()> {
        match ins.get(i).copied().flatten() {
            Some(v) if g.const_value(v).is_some() || from_shapes(g, v, 0) => Ok(()),
            Some(_) => Err(format!("{what} must be a constant")),
            None => Ok(()),
        }
    };
    match &node.op {
        Op::Input | Op::Const(_) => Ok(()),
        Op::Relu(_)
        | Op::Sigmoid(_)
        | Op::Tanh(_)
        | Op::Erf(_)
        | Op::Sqrt(_)
        | Op::Reciprocal(_)
        | Op::Softplus(_)
        | Op::Softsign(_)
        | Op::Floor(_)
        | Op::Ceil(_)
        | Op::Round(_)
        | Op::LeakyRelu(_)
        | Op::Elu(_)
        | Op::HardSigmoid(_)
        | Op::HardSwish(_)
        | Op::Gelu(_)
        | Op::PRelu(_) => f32_in(),
        Op::Exp(_) | Op::Log(_) if dt(0) == Some(DType::F64) => Ok(()),
        Op::Exp(_) | Op::Log(_) => f32_in(),
        Op::Pow(_) => elementwise::check_pow(dt(0), dt(1)),
        Op::Neg(_) | Op::Abs(_) | Op::Sign(_) => elementwise::check_numeric(dt(0)),
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Min(_) | Op::Max(_)
            if dt(0).is_some_and(elementwise::is_half) =>
        {
            Ok(())
        }
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) => elementwise::check_arith(dt(0)),
        Op::Min(_) | Op::Max(_) => elementwise::check_arith(dt(0)),
        Op::Sum(_) | Op::Mean(_) => elementwise::check_numeric(dt(0)),
        Op::Clip(_) => {
            elementwise::check_int_or_f32(dt(0))?;
            const_in(1, "Clip's min")?;
            const_in(2, "Clip's max")
        }
        Op::Equal(_)
        | Op::Less(_)
        | Op::Greater(_)
        | Op::LessOrEqual(_)
        | Op::GreaterOrEqual(_) => elementwise::check_arith(dt(0)),
        Op::And(_) | Op::Or(_) | Op::Xor(_) | Op::Not(_) => match dt(0) {
            Some(DType::Bool) => Ok(()),
            _ => Err("logical ops take bool tensors".into()),
        },
        Op::IsNaN(_) => f32_in(),
        Op::Where(_) => {
            if dt(0) != Some(DType::Bool) {
                return Err("Where's condition must be bool".into());
            }
            match dt(1) {
                Some(d) if clif_ty(d).is_some() => Ok(()),
                _ => Err("Where's values have an unsupported dtype".into()),
            }
        }
        Op::Cast(c) => {
            let from = dt(0).ok_or("input 0 has no known dtype")?;
            if elementwise::cast_supported(from, c.to) {
                Ok(())
            } else {
                Err(format!("Cast from {from} to {} is not supported", c.to))
            }
        }
        Op::Identity(_) => any_in(),
        Op::Dropout(_) => {
            any_in()?;
            // Training mode drops at random: only a constant false (inference), or a constant
            // ratio of zero (nothing dropped), is lowered.
            let konst = |i: usize| {
                ins.get(i)
                    .copied()
                    .flatten()
                    .map(|v| g.const_value(v).and_then(|t| t.to_f64_vec()))
            };
            let inference = match konst(2) {
                None => true,
                Some(b) => b.is_some_and(|b| b.iter().all(|x| *x == 0.0)),
            };
            let keeps_all = konst(1)
                .flatten()
                .is_some_and(|r| r.iter().all(|x| *x == 0.0));
            if inference || keeps_all {
                Ok(())
            } else {
                Err("training-mode Dropout is not supported".into())
            }
        }
        Op::Mod(_) => elementwise::check_int_or_f32(dt(0)),
        Op::Sin(_) | Op::Cos(_) => f32_in(),
        Op::MatMul(_) if dt(0) == Some(DType::F64) => {
            let at = |i: usize| {
                let v = ins.get(i).copied().flatten()?;
                let t = g.value_type(v);
                Some((t.dtype()?, t.shape()?.len()))
            };
            linalg64::check(at(0), at(1))
        }
        Op::Gemm(_) | Op::MatMul(_) => f32_in(),
        Op::Conv(_) => {
            f32_in()?;
            conv::check(g, id)
        }
        Op::ConvTranspose(_) => {
            f32_in()?;
            conv_transpose::check(g, id)
        }
        Op::BatchNormalization(_) => {
            f32_in()?;
            for i in 1..5 {
                const_in(i, "BatchNormalization's parameters")?;
            }
            Ok(())
        }
        Op::InstanceNormalization(_) | Op::LayerNormalization(_) => f32_in(),
        Op::LRN(_) => f32_in(),
        Op::Softmax(_) | Op::LogSoftmax(_) if dt(0) == Some(DType::F64) => Ok(()),
        Op::Softmax(_) | Op::LogSoftmax(_) => f32_in(),
        Op::MaxPool(_) | Op::AveragePool(_) => pool::check(g, id),
        Op::GlobalAveragePool(_) | Op::GlobalMaxPool(_) => f32_in(),
        Op::ReduceMean(_)
        | Op::ReduceSum(_)
        | Op::ReduceMax(_)
        | Op::ReduceMin(_)
        | Op::ReduceProd(_)
        | Op::ReduceL2(_)
        | Op::ReduceL1(_)
        | Op::ReduceSumSquare(_)
        | Op::ReduceLogSumExp(_) => {
            reduce::check_dtype(&node.op, dt(0))?;
            const_in(1, "the reduction axes")
        }
        Op::ArgMax(_) | Op::ArgMin(_) => f32_in(),
        Op::TopK(_) => {
            elementwise::check_int_or_f32(dt(0))?;
            const_in(1, "TopK's k")
        }
        Op::Flatten(_) => any_in(),
        Op::Reshape(_) | Op::Squeeze(_) | Op::Unsqueeze(_) => any_in(),
        Op::Transpose(_) | Op::Concat(_) | Op::Split(_) | Op::Expand(_) | Op::Tile(_) => any_in(),
        Op::Slice(_) => {
            any_in()?;
            // Run-time starts and ends are checked against a static output shape at run time.
            let static_out = g.value_type(ValueId::new(id, 0)).static_dims().is_some();
            for i in 1..5 {
                if !(static_out && i < 3) {
                    const_in(i, "Slice's starts, ends, axes and steps")?;
                }
            }
            Ok(())
        }
        Op::Gather(_) => {
            any_in()?;
            match dt(1) {
                Some(DType::I64) | Some(DType::I32) => Ok(()),
                _ => Err("Gather's indices must be i32 or i64".into()),
            }
        }
        Op::GatherElements(_) => {
            any_in()?;
            match dt(1) {
                Some(DType::I64) | Some(DType::I32) => Ok(()),
                _ => Err("GatherElements' indices must be i32 or i64".into()),
            }
        }
        Op::Pad(p) => {
            any_in()?;
            if !matches!(p.mode.as_str(), "constant" | "edge" | "reflect" | "wrap") {
                return Err(format!("Pad mode `{}` is not supported", p.mode));
            }
            const_in(1, "Pad's pads")?;
            const_in(3, "Pad's axes")
        }
        Op::Shape(_) | Op::Size(_) | Op::ConstantOfShape(_) => Ok(()),
        Op::Trilu(_) => {
            any_in()?;
            const_in(1, "Trilu's k")
        }
        Op::Range(_) => {
            // Run-time bounds are checked against a static output extent at run time.
            if g.value_type(ValueId::new(id, 0)).static_dims().is_none() {
                for i in 0..3 {
                    const_in(i, "Range's start, limit and delta")?;
                }
            }
            match dt(0) {
                Some(DType::F32 | DType::F64 | DType::I32 | DType::I64 | DType::I16) => Ok(()),
                d => Err(format!("Range of {d:?} is not supported")),
            }
        }
        Op::Resize(_) => resize::check(g, id),
        Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => quant::check(g, id),
        Op::If(_) => control::check_if(g, id),
        Op::Loop(_) => control::check_loop(g, id),
        Op::LSTM(_) | Op::GRU(_) => {
            f32_in()?;
            rnn::check(g, id)
        }
        op @ Op::Opaque(_) if softmax::legacy(op).is_some() => f32_in(),
        op @ Op::Opaque(_) if reduce::line_op(op).is_some() => {
            let rank = ins
                .first()
                .copied()
                .flatten()
                .and_then(|v| g.value_type(v).shape().map(|s| s.len()));
            let lo = reduce::line_op(op).ok_or("not a line op")?;
            reduce::check_line_op(lo, rank, dt(0))
        }
        op @ Op::Opaque(_) if elementwise::opaque_elementwise(op).is_some() => {
            let at = |i: usize| {
                let v = ins.get(i).copied().flatten();
                (
                    v.and_then(|v| g.value_type(v).dtype()),
                    v.and_then(|v| g.value_type(v).static_dims()),
                )
            };
            let ew = elementwise::opaque_elementwise(op).ok_or("not elementwise")?;
            elementwise::check_opaque_elementwise(ew, at(0), at(1))
        }
        op @ Op::Opaque(_) if norm::rms_attrs(op).is_some() => {
            let io = |i: usize| {
                let v = ins.get(i).copied().flatten()?;
                let t = g.value_type(v);
                Some((t.dtype()?, t.static_dims()?))
            };
            if dt(0) != Some(DType::F32) || dt(1) != Some(DType::F32) {
                return Err("RMSNormalization takes f32 data and scale".into());
            }
            norm::check_rms(io(0), io(1))
        }
        op @ Op::Opaque(_) if reduce::cum_attrs(op).is_some() => {
            elementwise::check_arith(dt(0))?;
            const_in(1, "the cumulative axis")
        }
        op @ Op::Opaque(_) if is_cast_like(op) => match (dt(0), dt(1)) {
            (Some(a), Some(b)) if elementwise::cast_supported(a, b) => Ok(()),
            (a, b) => Err(format!("CastLike from {a:?} to {b:?} is not supported")),
        },
        Op::Opaque(o) => Err(format!(
            "`{}{}{}` is not an op smelt knows",
            o.domain,
            if o.domain.is_empty() { "" } else { "." },
            o.op_type
        )),
    }
}

/// Every node of the graph the backend cannot lower (in topological order).
pub(crate) fn unsupported_nodes(g: &Graph) -> Vec<Unsupported> {
    let order = match g.topo_order() {
        Ok(o) => o,
        Err(e) => {
            return vec![Unsupported {
                node: String::new(),
                op: String::new(),
                reason: e.to_string(),
            }]
        }
    };
    let mut out = vec![];
    for id in order {
        if let Err(reason) = check_node(g, id) {
            out.push(Unsupported {
                node: g.display_node_name(id),
                op: g.node(id).op.op_type().to_string(),
                reason,
            });
        }
    }
    out
}

fn lower_node(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    match io.op() {
        Op::Input | Op::Const(_) => Ok(()),
        Op::MatMul(_) if io.opt_input(0).is_some_and(|a| a.dtype == DType::F64) => {
            linalg64::matmul(cx, io)
        }
        Op::Gemm(_) | Op::MatMul(_) => matmul::lower(cx, io),
        Op::Conv(_) => conv::lower(cx, io),
        Op::ConvTranspose(_) => conv_transpose::lower(cx, io),
        Op::MaxPool(_) | Op::AveragePool(_) | Op::GlobalAveragePool(_) | Op::GlobalMaxPool(_) => {
            pool::lower(cx, io)
        }
        Op::ReduceMean(_)
        | Op::ReduceSum(_)
        | Op::ReduceMax(_)
        | Op::ReduceMin(_)
        | Op::ReduceProd(_)
        | Op::ReduceL2(_)
        | Op::ReduceL1(_)
        | Op::ReduceSumSquare(_)
        | Op::ReduceLogSumExp(_)
        | Op::ArgMax(_)
        | Op::ArgMin(_) => reduce::lower(cx, io),
        Op::Softmax(_) | Op::LogSoftmax(_) => softmax::lower(cx, io),
        op @ Op::Opaque(_) if softmax::legacy(op).is_some() => softmax::lower(cx, io),
        op @ Op::Opaque(_) if is_cast_like(op) => elementwise::cast_like(cx, io),
        op @ Op::Opaque(_) if reduce::cum_attrs(op).is_some() => reduce::cumulative(cx, io),
        op @ Op::Opaque(_) if reduce::line_op(op).is_some() => reduce::lower_line_op(cx, io),
        op @ Op::Opaque(_) if norm::rms_attrs(op).is_some() => norm::lower_rms(cx, io),
        op @ Op::Opaque(_) if elementwise::opaque_elementwise(op).is_some() => {
            elementwise::lower_opaque(cx, io)
        }
        Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => quant::lower(cx, io),
        Op::Resize(_) => resize::lower(cx, io),
        Op::LSTM(_) | Op::GRU(_) => rnn::lower(cx, io),
        Op::If(_) => control::lower_if(cx, io),
        Op::Loop(_) => control::lower_loop(cx, io),
        Op::TopK(t) => reduce::topk(cx, io, t.axis, t.largest != 0),
        Op::Trilu(_) => trilu::lower(cx, io),
        Op::BatchNormalization(_)
        | Op::LayerNormalization(_)
        | Op::InstanceNormalization(_)
        | Op::LRN(_) => norm::lower(cx, io),
        Op::Identity(_)
        | Op::Dropout(_)
        | Op::Reshape(_)
        | Op::Flatten(_)
        | Op::Squeeze(_)
        | Op::Unsqueeze(_)
        | Op::Transpose(_)
        | Op::Concat(_)
        | Op::Split(_)
        | Op::Slice(_)
        | Op::Gather(_)
        | Op::GatherElements(_)
        | Op::Range(_)
        | Op::Expand(_)
        | Op::Tile(_)
        | Op::Pad(_)
        | Op::Shape(_)
        | Op::Size(_)
        | Op::ConstantOfShape(_) => shape::lower(cx, io),
        op if op.is_elementwise() => elementwise::lower(cx, io),
        op => Err(format!("{} is not lowered", op.op_type())),
    }
}

/// What lowering produced besides the function.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The function running the model.
    pub func: FuncId,
    /// Bytes of the weights object.
    pub weights_bytes: usize,
}

/// Lowers a bound, checked and planned graph into `module` as the function `name` (plus the
/// data object `{name}_weights`).
pub(crate) fn lower_model<M: Module + ?Sized>(
    module: &mut M,
    g: &Graph,
    plan: &MemoryPlan,
    name: &str,
) -> Result<Lowered, CodegenError> {
    let ptr = module.target_config().pointer_type();
    if ptr != types::I64 {
        return Err(CodegenError::Cranelift(
            "only 64-bit targets are supported".into(),
        ));
    }
    let feat = Features {
        fma: module.isa().has_native_fma(),
    };
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(ptr));
    sig.returns.push(AbiParam::new(types::I32));
    let func = module.declare_function(name, Linkage::Export, &sig)?;
    let data = module.declare_data(&format!("{name}_weights"), Linkage::Local, false, false)?;

    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, func.as_u32());
    let gv = module.declare_data_in_func(data, &mut ctx.func);
    // Address the weights with an absolute 64-bit relocation, not a 32-bit PC-relative one: a
    // JIT places the data object wherever the allocator puts hundreds of megabytes of
    // weights, which may be more than 2 GiB from the code (the relocation then overflows).
    if let cranelift_codegen::ir::GlobalValueData::Symbol { colocated, .. } =
        &mut ctx.func.global_values[gv]
    {
        *colocated = false;
    }
    let tfc = module.target_config();
    let mut fctx = FunctionBuilderContext::new();
    let mut errors: Vec<Unsupported> = vec![];
    let blob = {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let (pin, pout, arena) = (params[0], params[1], params[2]);
        let weights = b.ins().symbol_value(ptr, gv);
        let n_in = g.inputs().len();
        let n_out = g.outputs().len();
        let inputs: Vec<Value> = (0..n_in)
            .map(|i| b.ins().load(ptr, mf(), pin, (i * 8) as i32))
            .collect();
        let outputs: Vec<Value> = (0..n_out)
            .map(|j| b.ins().load(ptr, mf(), pout, (j * 8) as i32))
            .collect();
        let mut cx = Ctx {
            b,
            feat,
            inputs,
            outputs,
            captures: vec![],
            arena,
            weights,
            blob: vec![],
            const_at: HashMap::new(),
        };
        lower_body(&mut cx, g, plan, &mut errors);
        let zero = cx.b.ins().iconst(types::I32, 0);
        cx.b.ins().return_(&[zero]);
        cx.b.seal_all_blocks();
        cx.b.finalize(tfc);
        cx.blob
    };
    if !errors.is_empty() {
        return Err(CodegenError::unsupported(errors));
    }
    if std::env::var_os("SMELT_PRINT_CLIF").is_some() {
        eprintln!("{}", ctx.func.display());
    }
    let asm = std::env::var_os("SMELT_PRINT_ASM").is_some();
    ctx.set_disasm(asm);
    module
        .define_function(func, &mut ctx)
        .map_err(|e| CodegenError::Cranelift(format!("{e:?}")))?;
    if asm {
        if let Some(c) = ctx.compiled_code() {
            eprintln!("{}", c.vcode.as_deref().unwrap_or(""));
        }
    }
    let mut desc = DataDescription::new();
    let mut bytes = blob;
    if bytes.is_empty() {
        bytes.push(0);
    }
    let weights_bytes = bytes.len();
    desc.define(bytes.into_boxed_slice());
    desc.set_align(64);
    module.define_data(data, &desc)?;
    Ok(Lowered {
        func,
        weights_bytes,
    })
}

/// Activations fused into their producers: Relu, or Clip with constant bounds, whose input is
/// the only use of a Conv/Gemm/MatMul output that is not a graph output. Returns the producers
/// with their activation, and the activation nodes that become no-ops because they run in place
/// (an activation not in place still runs: clamping twice gives the same values).
fn fusions(g: &Graph, plan: &MemoryPlan) -> (HashMap<NodeId, Act>, HashSet<NodeId>) {
    let mut uses: HashMap<ValueId, usize> = HashMap::new();
    for id in &plan.order {
        for v in g.node_inputs(*id).into_iter().flatten() {
            *uses.entry(v).or_insert(0) += 1;
        }
    }
    for v in g.outputs() {
        *uses.entry(*v).or_insert(0) += 1;
    }
    let mut fused = HashMap::new();
    let mut skip = HashSet::new();
    for id in &plan.order {
        let node = g.node(*id);
        let ins = g.node_inputs(*id);
        let bounds = match &node.op {
            Op::Relu(_) => Some((0.0f32, f32::INFINITY)),
            Op::Clip(_) => {
                let b = |i: usize, def: f32| -> Option<f32> {
                    match ins.get(i).copied().flatten() {
                        None => Some(def),
                        Some(v) => {
                            let t = g.const_value(v)?;
                            if t.len() != 1 {
                                return None;
                            }
                            t.to_f32_vec()?.first().copied()
                        }
                    }
                };
                b(1, f32::NEG_INFINITY).zip(b(2, f32::INFINITY))
            }
            _ => None,
        };
        let (Some(bounds), Some(Some(src))) = (bounds, ins.first()) else {
            continue;
        };
        let producer = g.node(src.node);
        let fusable = matches!(producer.op, Op::Conv(_) | Op::Gemm(_) | Op::MatMul(_))
            && src.port == 0
            && g.value_type(*src).dtype() == Some(DType::F32)
            && uses.get(src) == Some(&1)
            && !g.outputs().contains(src)
            && !fused.contains_key(&src.node);
        if fusable {
            fused.insert(src.node, Some(bounds));
            if plan.place(*src) == plan.place(ValueId::new(*id, 0)) {
                skip.insert(*id);
            }
        }
    }
    (fused, skip)
}

/// Lowers every node of a planned graph (the model, or a branch of `If` with the context's
/// inputs, outputs, captures and arena pointing at the branch's buffers), then its output
/// copies; collects the nodes that cannot be lowered.
pub(crate) fn lower_body(
    cx: &mut Ctx,
    g: &Graph,
    plan: &MemoryPlan,
    errors: &mut Vec<Unsupported>,
) {
    let (fused, skip) = fusions(g, plan);
    for id in &plan.order {
        if plan.kind(*id) == NodeKind::Alias || skip.contains(id) {
            continue;
        }
        let io = match node_io(g, plan, *id) {
            Ok(io) => io,
            Err(reason) => {
                errors.push(Unsupported {
                    node: g.display_node_name(*id),
                    op: g.node(*id).op.op_type().to_string(),
                    reason,
                });
                continue;
            }
        };
        let io = NodeIo {
            act: fused.get(id).copied().flatten(),
            ..io
        };
        if let Err(reason) = lower_node(cx, &io) {
            errors.push(Unsupported {
                node: g.display_node_name(*id),
                op: g.node(*id).op.op_type().to_string(),
                reason,
            });
        }
    }
    for (v, j) in &plan.output_copies {
        let res = operand(g, plan, *v).and_then(|src| {
            let dst = Operand {
                place: Place::Output(*j),
                ..src.clone()
            };
            shape::copy(cx, g, &src, &dst)
        });
        if let Err(reason) = res {
            errors.push(Unsupported {
                node: g.value(*v).name.clone(),
                op: "output".into(),
                reason,
            });
        }
    }
}

/// Swaps the buffers the context resolves places against (for lowering a subgraph); returns
/// the previous ones.
pub(crate) fn swap_frame(
    cx: &mut Ctx,
    frame: (Vec<Value>, Vec<Value>, Vec<Value>, Value),
) -> (Vec<Value>, Vec<Value>, Vec<Value>, Value) {
    let old = (
        std::mem::take(&mut cx.inputs),
        std::mem::take(&mut cx.outputs),
        std::mem::take(&mut cx.captures),
        cx.arena,
    );
    cx.inputs = frame.0;
    cx.outputs = frame.1;
    cx.captures = frame.2;
    cx.arena = frame.3;
    old
}

fn operand(g: &Graph, plan: &MemoryPlan, v: ValueId) -> R<Operand> {
    let ty = g.value_type(v);
    let name = &g.value(v).name;
    Ok(Operand {
        v,
        place: plan
            .place(v)
            .ok_or_else(|| format!("value `{name}` has no place in the memory plan"))?,
        dtype: ty
            .dtype()
            .ok_or_else(|| format!("value `{name}` has no dtype"))?,
        dims: ty
            .static_dims()
            .ok_or_else(|| format!("value `{name}` has no static shape"))?,
    })
}

fn node_io<'g>(g: &'g Graph, plan: &MemoryPlan, id: NodeId) -> R<NodeIo<'g>> {
    let ins = g
        .node_inputs(id)
        .into_iter()
        .map(|v| v.map(|v| operand(g, plan, v)).transpose())
        .collect::<R<Vec<_>>>()?;
    let node = g.node(id);
    let outs = (0..node.outputs.len())
        .map(|p| {
            if node.outputs[p].name.is_empty() {
                Ok(None)
            } else {
                operand(g, plan, ValueId::new(id, p as u32)).map(Some)
            }
        })
        .collect::<R<Vec<_>>>()?;
    Ok(NodeIo {
        g,
        id,
        ins,
        outs,
        act: None,
        scratch: plan.scratch(id),
    })
}

/// Extra arena bytes node `id` needs while it runs (see [`MemoryPlan::new`]).
pub(crate) fn scratch_bytes(g: &Graph, id: NodeId) -> u64 {
    match g.node(id).op {
        Op::Conv(_) => conv::scratch_bytes(g, id),
        Op::LSTM(_) | Op::GRU(_) => rnn::scratch_bytes(g, id),
        Op::If(_) => control::scratch_bytes(g, id),
        Op::Loop(_) => control::loop_scratch_bytes(g, id),
        _ => 0,
    }
}

/// True for an opaque node the backend lowers as the legacy (opset < 13) softmax.
pub(crate) fn softmax_legacy(op: &Op) -> bool {
    softmax::legacy(op).is_some()
}

/// True for ONNX `CastLike` (kept opaque by the IR): a Cast to the second input's dtype.
pub(crate) fn is_cast_like(op: &Op) -> bool {
    matches!(op, Op::Opaque(o) if o.op_type == "CastLike"
        && (o.domain.is_empty() || o.domain == "ai.onnx")
        && o.attrs.iter().all(|(n, _)| n == "saturate"))
}
