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
///
/// A node refused only because an operand whose value compilation needs (axes, a shape,
/// bounds: [`bind::value_operands`]) comes from a graph input at run time says so, and that
/// giving the value at compile time ([`jit::Options::const_inputs`], `smelt run` with data)
/// lifts the refusal; so does a node whose output shape is unknown because such an operand is
/// (a Reshape whose shape is a graph input, with no declared output shape).
pub fn check(g: &smelt_ir::Graph) -> Vec<Unsupported> {
    let (g, mut list) = match bind::bind(g, &[]) {
        Ok(bound) => {
            let list = lower::unsupported_nodes(&bound);
            (bound, list)
        }
        Err(_) => {
            // Dims bound only at compile time: fold what binding folds regardless of them
            // (DequantizeLinear of constants, constant shape arithmetic), so that a quantized
            // Conv weight is judged as compilation will see it.
            let mut g = g.clone();
            fold::fold_shapes(&mut g);
            let list = lower::unsupported_nodes(&g);
            (g, list)
        }
    };
    let hint = |from: &[String]| {
        format!(
            "giving the value of graph input{} {} at compile time lifts this (`smelt run` \
             with data, or jit::Options::const_inputs)",
            if from.len() > 1 { "s" } else { "" },
            from.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    // Nodes whose output shape depends on a value only a graph input gives at run time
    // (a Reshape's shape, a reduction's axes, …): compilation cannot give them a static shape.
    if let Ok(order) = g.topo_order() {
        let mut merged = Vec::with_capacity(list.len());
        let mut rest = list.into_iter().peekable();
        for id in order {
            let name = g.display_node_name(id);
            if rest.peek().is_some_and(|u| u.node == name) {
                merged.extend(rest.next());
                continue;
            }
            let node = g.node(id);
            let unshaped = node
                .outputs
                .iter()
                .any(|v| !v.name.is_empty() && v.ty.static_dims().is_none());
            if !unshaped || bind::value_operands(&node.op).is_empty() {
                continue;
            }
            let from = bind::reaching_inputs(&g, &[id]);
            if !from.is_empty() {
                merged.push(Unsupported {
                    node: name,
                    op: node.op.op_type().to_string(),
                    reason: format!(
                        "its output shape depends on a value given at run time; {}",
                        hint(&from)
                    ),
                });
            }
        }
        merged.extend(rest);
        list = merged;
    }
    if list.iter().any(|u| run_time_operand(&u.reason)) {
        for id in g.node_ids() {
            let name = g.display_node_name(id);
            let Some(u) = list
                .iter_mut()
                .find(|u| u.node == name && run_time_operand(&u.reason))
            else {
                continue;
            };
            let from = bind::reaching_inputs(&g, &[id]);
            if !from.is_empty() {
                u.reason.push_str(&format!(" ({})", hint(&from)));
            }
        }
    }
    list
}

/// [`check`] after freezing the given graph inputs to constants ([`bind::freeze_inputs`]), as
/// compiling with [`jit::Options::const_inputs`] sees the graph.
pub fn check_frozen(
    g: &smelt_ir::Graph,
    values: &[(String, smelt_ir::Tensor)],
) -> Result<Vec<Unsupported>, CodegenError> {
    if values.is_empty() {
        return Ok(check(g));
    }
    Ok(check(&bind::freeze_inputs(g, values)?))
}

/// True for the lowering's reasons that say an operand must be a compile-time constant (the
/// node is refused for that alone: the dtype checks come first).
fn run_time_operand(reason: &str) -> bool {
    reason.contains("must be a constant") || reason.contains("must be constant")
}
