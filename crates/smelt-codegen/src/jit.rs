//! The JIT: compile a graph into a callable native function in this process.
//!
//! ```no_run
//! # use smelt_codegen::jit::{compile, Options, TensorView};
//! # fn f(g: &smelt_ir::Graph, x: &smelt_ir::Tensor) -> Result<(), smelt_codegen::CodegenError> {
//! let mut model = compile(g, &Options::default())?;
//! let outputs = model.run(&[TensorView::from(x)])?;
//! # Ok(()) }
//! ```
//!
//! `run` checks every input against the bound dtype and shape before native code runs, and
//! allocates the outputs; `run_into` writes into buffers the caller owns and allocates nothing.

use crate::error::{describe, CodegenError};
use crate::plan::MemoryPlan;
use crate::{bind, lower};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;
use smelt_ir::{DType, Graph, Tensor};

/// Compilation options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Shapes for graph inputs with symbolic dims (`--input-shape NAME=D,D,..`).
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// Graph inputs whose values are fixed at compile time: they become constants (so that,
    /// e.g., a reduction's axes or a Reshape's shape given as an input fold), and the compiled
    /// model no longer takes them ([`CompiledModel::inputs`] lists what it takes).
    pub const_inputs: Vec<(String, Tensor)>,
    /// Symbol name of the generated function.
    pub name: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            input_shapes: vec![],
            const_inputs: vec![],
            name: "smelt_model".into(),
        }
    }
}

/// A borrowed input tensor: dtype, dims and dense little-endian bytes.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// Element type.
    pub dtype: DType,
    /// Dims.
    pub dims: &'a [usize],
    /// Dense row-major little-endian bytes.
    pub data: &'a [u8],
}

impl<'a> From<&'a Tensor> for TensorView<'a> {
    fn from(t: &'a Tensor) -> TensorView<'a> {
        TensorView {
            dtype: t.dtype(),
            dims: t.dims(),
            data: t.bytes().unwrap_or(&[]),
        }
    }
}

/// The name, dtype and bound dims of one model input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoSpec {
    /// The value's name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Static dims.
    pub dims: Vec<usize>,
}

impl IoSpec {
    /// Bytes of a dense buffer of this value.
    pub fn bytes(&self) -> usize {
        self.dtype
            .bytes_for(self.dims.iter().product())
            .unwrap_or(0)
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

type RunFn = unsafe extern "C" fn(*const *const u8, *const *mut u8, *mut u8) -> i32;

/// A compiled model: the native function and the arena it runs in.
pub struct CompiledModel {
    module: Option<JITModule>,
    func: RunFn,
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
    arena: Vec<Line>,
    plan: MemoryPlan,
    weights_bytes: usize,
    in_ptrs: Vec<*const u8>,
    out_ptrs: Vec<*mut u8>,
}

/// Binds shapes and frozen inputs, checks that every node can be lowered and that every value
/// is static, verifies the graph and plans memory.
pub(crate) fn bind_and_plan(
    g: &Graph,
    opts: &Options,
) -> Result<(Graph, MemoryPlan), CodegenError> {
    let bound = if opts.const_inputs.is_empty() {
        bind::bind(g, &opts.input_shapes)
    } else {
        bind::freeze_inputs(g, &opts.const_inputs).and_then(|f| bind::bind(&f, &opts.input_shapes))
    };
    let bound = match bound {
        Ok(b) => b,
        Err(e @ CodegenError::Bind(_)) => return Err(e),
        Err(e) => {
            // A graph inference refuses: nodes the backend cannot take are the more useful news.
            let unsupported = lower::unsupported_nodes(g);
            if !unsupported.is_empty() {
                return Err(CodegenError::unsupported(unsupported));
            }
            return Err(e);
        }
    };
    let unsupported = lower::unsupported_nodes(&bound);
    if !unsupported.is_empty() {
        return Err(CodegenError::unsupported(unsupported));
    }
    bind::static_values(&bound)?;
    smelt_ir::verify(&bound).map_err(|e| CodegenError::InvalidGraph(e.to_string()))?;
    let plan =
        MemoryPlan::new(&bound, &lower::scratch_bytes).map_err(CodegenError::InvalidGraph)?;
    // A value whose size overflows (hostile or absurd shapes) makes the arena impossible:
    // refuse before lowering computes anything from those sizes.
    if plan.arena_bytes >= crate::plan::IMPOSSIBLE_BYTES {
        return Err(CodegenError::Alloc {
            what: "the arena (a value's size overflows)".into(),
            bytes: plan.arena_bytes,
        });
    }
    Ok((bound, plan))
}

/// Compiles a graph: binds shapes, checks that every node can be lowered, plans memory, lowers
/// to Cranelift and JIT-compiles.
pub fn compile(g: &Graph, opts: &Options) -> Result<CompiledModel, CodegenError> {
    let (bound, plan) = bind_and_plan(g, opts)?;

    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v)
            .map_err(|e| CodegenError::Cranelift(format!("setting {k}={v}: {e}")))
    };
    // opt_level "none": the lowering already emits explicit, register-blocked loop nests in the
    // order they should run. With "speed", Cranelift's e-graph pass re-places every pure
    // instruction at its last use: in the conv/GEMM micro-kernels all FMAs of an unrolled body
    // sink to the loop's back edge, every loaded input stays live across the body, and the
    // kernel spills (3x slower convs: resnet18 308 -> 138 ms, digits_cnn 44 -> 26 µs).
    // `SMELT_OPT_LEVEL=speed` restores Cranelift's optimiser, for comparison.
    let lvl = std::env::var("SMELT_OPT_LEVEL").unwrap_or_else(|_| "none".into());
    set(&mut flags, "opt_level", &lvl)?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    let isa = cranelift_native::builder()
        .map_err(|e| CodegenError::Cranelift(format!("host not supported: {e}")))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| CodegenError::Cranelift(e.to_string()))?;
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let lowered = lower::lower_model(&mut module, &bound, &plan, &opts.name)?;
    module.finalize_definitions()?;
    let code = module.get_finalized_function(lowered.func);
    // SAFETY: `code` is the finalized entry of the function `lower_model` defined with the
    // signature (ptr, ptr, ptr) -> i32 in the platform's default C calling convention; the
    // module that owns the code lives in `CompiledModel` as long as the pointer does.
    let func: RunFn = unsafe { std::mem::transmute::<*const u8, RunFn>(code) };

    let spec = |v: smelt_ir::ValueId| -> Result<IoSpec, CodegenError> {
        let val = bound.value(v);
        Ok(IoSpec {
            name: val.name.clone(),
            dtype: val.ty.dtype().ok_or_else(|| CodegenError::UnboundShape {
                value: val.name.clone(),
                ty: val.ty.to_string(),
            })?,
            dims: val
                .ty
                .static_dims()
                .ok_or_else(|| CodegenError::UnboundShape {
                    value: val.name.clone(),
                    ty: val.ty.to_string(),
                })?,
        })
    };
    let inputs = bound
        .inputs()
        .into_iter()
        .map(spec)
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = bound
        .outputs()
        .iter()
        .map(|v| spec(*v))
        .collect::<Result<Vec<_>, _>>()?;
    let lines = (plan.arena_bytes as usize).div_ceil(64).max(1);
    Ok(CompiledModel {
        module: Some(module),
        func,
        in_ptrs: vec![std::ptr::null(); inputs.len()],
        out_ptrs: vec![std::ptr::null_mut(); outputs.len()],
        inputs,
        outputs,
        arena: crate::error::try_zeroed(lines, Line([0; 64]), "the arena")?,
        plan,
        weights_bytes: lowered.weights_bytes,
    })
}

impl CompiledModel {
    /// The inputs the model takes, in order.
    pub fn inputs(&self) -> &[IoSpec] {
        &self.inputs
    }
    /// The outputs the model gives, in order.
    pub fn outputs(&self) -> &[IoSpec] {
        &self.outputs
    }
    /// The memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }
    /// Bytes of the read-only weights object.
    pub fn weights_bytes(&self) -> usize {
        self.weights_bytes
    }

    fn check_inputs(&self, inputs: &[TensorView]) -> Result<(), CodegenError> {
        if inputs.len() != self.inputs.len() {
            return Err(CodegenError::BadInput {
                index: inputs.len().min(self.inputs.len()),
                name: String::new(),
                expected: format!("{} inputs", self.inputs.len()),
                got: format!("{} inputs", inputs.len()),
            });
        }
        for (i, (x, s)) in inputs.iter().zip(&self.inputs).enumerate() {
            if x.dtype != s.dtype || x.dims != s.dims.as_slice() || x.data.len() != s.bytes() {
                return Err(CodegenError::BadInput {
                    index: i,
                    name: s.name.clone(),
                    expected: describe(s.dtype, &s.dims),
                    got: format!("{} ({} bytes)", describe(x.dtype, x.dims), x.data.len()),
                });
            }
        }
        Ok(())
    }

    /// Runs the model into caller-owned output buffers (dense little-endian bytes of the
    /// sizes [`CompiledModel::outputs`] gives). Allocates nothing.
    pub fn run_into(
        &mut self,
        inputs: &[TensorView],
        outputs: &mut [&mut [u8]],
    ) -> Result<(), CodegenError> {
        self.check_inputs(inputs)?;
        if outputs.len() != self.outputs.len() {
            return Err(CodegenError::BadOutput {
                index: outputs.len().min(self.outputs.len()),
                name: String::new(),
                expected: format!("{} outputs", self.outputs.len()),
                got: format!("{} outputs", outputs.len()),
            });
        }
        for (j, (o, s)) in outputs.iter().zip(&self.outputs).enumerate() {
            if o.len() != s.bytes() {
                return Err(CodegenError::BadOutput {
                    index: j,
                    name: s.name.clone(),
                    expected: format!("{} ({} bytes)", describe(s.dtype, &s.dims), s.bytes()),
                    got: format!("{} bytes", o.len()),
                });
            }
        }
        for (p, x) in self.in_ptrs.iter_mut().zip(inputs) {
            *p = x.data.as_ptr();
        }
        for (p, o) in self.out_ptrs.iter_mut().zip(outputs.iter_mut()) {
            *p = o.as_mut_ptr();
        }
        // SAFETY: every input buffer has exactly the bytes of its bound dtype and shape and
        // every output buffer exactly the bytes of its output (checked above); output slices
        // are distinct `&mut` borrows, so they alias neither each other nor the inputs; the
        // arena holds `plan.arena_bytes` bytes, 64-byte aligned, owned by `self` and borrowed
        // mutably here. The generated code reads and writes only inside those buffers and the
        // weights object (offsets come from the static plan), calls nothing and allocates
        // nothing.
        let status = unsafe {
            (self.func)(
                self.in_ptrs.as_ptr(),
                self.out_ptrs.as_ptr(),
                self.arena.as_mut_ptr().cast::<u8>(),
            )
        };
        for p in self.in_ptrs.iter_mut() {
            *p = std::ptr::null();
        }
        for p in self.out_ptrs.iter_mut() {
            *p = std::ptr::null_mut();
        }
        if status != 0 {
            return Err(CodegenError::Status(status));
        }
        Ok(())
    }

    /// Runs the model and returns its outputs as new tensors.
    pub fn run(&mut self, inputs: &[TensorView]) -> Result<Vec<Tensor>, CodegenError> {
        self.check_inputs(inputs)?;
        let mut bufs: Vec<Vec<u8>> = self
            .outputs
            .iter()
            .map(|s| crate::error::try_zeroed(s.bytes(), 0u8, &format!("output `{}`", s.name)))
            .collect::<Result<_, _>>()?;
        {
            let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
            self.run_into(inputs, &mut slices)?;
        }
        bufs.into_iter()
            .zip(&self.outputs)
            .map(|(b, s)| {
                Tensor::from_bytes(s.dtype, s.dims.clone(), b)
                    .map_err(|e| CodegenError::Cranelift(e.to_string()))
            })
            .collect()
    }
}

impl Drop for CompiledModel {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `func` points into this module's code and is never called again: it is
            // only reachable through `self`, which is being dropped.
            unsafe { m.free_memory() };
        }
    }
}
