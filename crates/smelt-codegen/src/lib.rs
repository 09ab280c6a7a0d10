//! smelt-codegen: smelt's native backend.
//!
//! A graph whose every dim is bound becomes **one native function** that runs the whole model
//! with no interpreter, no allocation and no per-op dispatch:
//!
//! ```c
//! int NAME_run(const void *const *inputs, void *const *outputs, void *arena);
//! ```
//!
//! The stages, one module each:
//! - [`bind`]: symbolic dims get extents from the input shapes (inputs may also be frozen to
//!   constants); every value must then be static; [`fold`] turns shape subgraphs into
//!   constants on the way;
//! - [`plan`]: the [`plan::MemoryPlan`] gives every intermediate value an offset in one arena by
//!   liveness (aliases for reshapes, in place for elementwise ops);
//! - `lower`: every node becomes loops in Cranelift IR, one module per op family, written over
//!   `cranelift_module::Module` so that the JIT and object files share it;
//! - [`jit`]: compile in process and run ([`jit::compile`], [`jit::CompiledModel`]).
//!
//! Invariants:
//! - generated code calls nothing (transcendentals are Cranelift IR, FMA only where native) and
//!   touches only the input, output and arena buffers and its read-only weights object;
//! - a node the backend cannot lower stops compilation with [`CodegenError::Unsupported`],
//!   which lists every such node at once; [`check`] gives the same list without compiling;
//! - nothing a model contains can make the compiler or the generated code panic or trap:
//!   indices are clamped, integer division by zero yields 0;
//! - a run-time value the static shapes cannot honour (a Loop that would run another number of
//!   iterations than its scan outputs hold, an LSTM/GRU `sequence_lens` shorter than the
//!   sequence) makes the function return status 1 ([`CodegenError::Status`] from the JIT)
//!   instead of a wrong or partial answer.

pub mod bind;
pub mod error;
pub mod fold;
pub mod jit;
pub(crate) mod lower;
pub mod plan;

pub use error::{CodegenError, Unsupported};
pub use lower::Lowered;

/// Binds and checks `g` as [`jit::compile`] does and returns its memory plan, without
/// generating code (`smelt inspect --plan`).
pub fn plan(g: &smelt_ir::Graph, opts: &jit::Options) -> Result<plan::MemoryPlan, CodegenError> {
    jit::bind_and_plan(g, opts).map(|(_, p)| p)
}

/// Every node of `g` the native backend cannot lower, with the reason, in topological order.
/// `smelt check` prints this; compilation refuses exactly these nodes.
/// Runs the same binding (with the declared shapes) and shape folding as compilation first,
/// so that nodes folded away at compile time are not reported.
pub fn check(g: &smelt_ir::Graph) -> Vec<Unsupported> {
    match bind::bind(g, &[]) {
        Ok(bound) => lower::unsupported_nodes(&bound),
        Err(_) => {
            // Dims bound only at compile time: fold what binding folds regardless of them
            // (DequantizeLinear of constants, constant shape arithmetic), so that a quantized
            // Conv weight is judged as compilation will see it.
            let mut g = g.clone();
            fold::fold_shapes(&mut g);
            lower::unsupported_nodes(&g)
        }
    }
}
