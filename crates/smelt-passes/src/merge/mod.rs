//! `merge`: an ensemble of models with the same inputs becomes one graph.
//!
//! ```text
//! before (two members, --combine mean)            after
//!   m0: %h = Gemm(%input, %fc1.weight, %fc1.bias)   %g0/fc1.weight = const f32[192,64]  (rows: m0, m1)
//!       %a = Relu(%h)                               %g0/h = Gemm(%input, %g0/fc1.weight, %g0/fc1.bias)
//!       %logits = Gemm(%a, %fc2.weight, %fc2.bias)  %g0/a = Relu(%g0/h)
//!   m1: the same layers, other weights              %g0/fc2.weight = const f32[10,192]  ([½W₀ ½W₁])
//!                                                   %logits = Gemm(%g0/a, %g0/fc2.weight, %g0/fc2.bias)
//! ```
//!
//! Merging takes many graphs and gives one, so it is a function, [`merge_models`], not a
//! [`crate::Pass`] over one graph (`smelt merge` on the command line calls it).
//!
//! - Inputs are matched by name and type (every member must take the same inputs); outputs by
//!   position (same count and types). The merged graph's inputs and outputs are member 0's.
//! - Member values and nodes are prefixed `m{k}/`, fused layers `g{i}/`, so nothing collides;
//!   the model metadata records the members, the combination and the weights.
//! - [`Combine`]: `mean` (1/n Σ yᵢ), `weighted` (Σ wᵢ yᵢ), `normalized` (Σ wᵢ yᵢ / Σ wᵢ), each
//!   optionally over `softmax(yᵢ)` (`probabilities`); `vote` (per-class counts of the members'
//!   argmax, weighted by wᵢ; the lowest class wins a tie when the counts are read with ArgMax);
//!   `soup` (parameter averaging of identical-structure members).
//! - Structural merge (`merge/fuse.rs`): members that are chains of the same layers (Gemm, Conv,
//!   BatchNormalization, activations, pooling, Flatten) over one input are fused horizontally:
//!   a shared prefix (same ops over the same constant bytes) is computed once; the first
//!   differing Gemm/Conv concatenates the members' weights along the output dim; later Gemms
//!   become block-diagonal or stay separate branches, whichever costs less (FLOPs as
//!   [`crate::cost`] counts them, plus [`MergeOptions::node_cost`] per node); later Convs are
//!   grouped (`group` = n × original, the same FLOPs); activations widen with them. For a
//!   linear combination without softmax the final weighted sum folds into the last Gemm
//!   (Σ wᵢ(Wᵢh + bᵢ) = [w₁W₁ … wₙWₙ]·[h₁;…;hₙ] + Σ wᵢbᵢ), so no combine node remains.
//! - Members of other structures stay separate branches joined by the combine; identical
//!   sections across branches are then computed once by `fold`'s deduplication.
//!
//! Guarantees: `mean`, `weighted` and `normalized` are exact up to float rounding; the
//! report ([`MergeReport`]) says what was fused, shared and chosen per layer.

mod fuse;
#[cfg(test)]
mod tests;

use crate::pass::{Pass, PassCtx, PassError, Runner};
use smelt_ir::{DType, Graph, Model, NodeId, Op, Tensor, Type, Value, ValueId};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// How the members' outputs are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// 1/n Σ yᵢ.
    Mean,
    /// Σ wᵢ yᵢ.
    Weighted,
    /// Σ wᵢ yᵢ / Σ wᵢ.
    Normalized,
    /// Parameter averaging (Σ wᵢ θᵢ / Σ wᵢ) of identical-structure members: one model's cost.
    Soup,
    /// Per-class vote counts of the members' argmax (weighted by wᵢ).
    Vote,
}

impl Combine {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Combine::Mean => "mean",
            Combine::Weighted => "weighted",
            Combine::Normalized => "normalized",
            Combine::Soup => "soup",
            Combine::Vote => "vote",
        }
    }

    /// Parses a CLI name.
    pub fn parse(s: &str) -> Option<Combine> {
        [
            Combine::Mean,
            Combine::Weighted,
            Combine::Normalized,
            Combine::Soup,
            Combine::Vote,
        ]
        .into_iter()
        .find(|c| c.name() == s)
    }
}

/// What [`merge_models`] does.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    /// The combination.
    pub combine: Combine,
    /// One weight per member (`weighted`, `normalized`, `vote`, `soup`); `None`: all 1.
    pub weights: Option<Vec<f64>>,
    /// Apply Softmax (last axis) to each member's outputs before combining.
    pub probabilities: bool,
    /// Fuse members of the same layer structure into one wider network.
    pub fuse: bool,
    /// Compute identical sections of different branches once (`fold`'s deduplication).
    pub share: bool,
    /// The cost of one node, in FLOPs, when choosing block-diagonal vs separate layers.
    pub node_cost: u64,
    /// `soup`: a calibration batch (first dim = samples) to measure agreement on.
    pub calib: Option<Tensor>,
    /// The members' names for the metadata and the report (default `m0`, `m1`, …).
    pub member_names: Vec<String>,
}

impl Default for MergeOptions {
    fn default() -> MergeOptions {
        MergeOptions {
            combine: Combine::Mean,
            weights: None,
            probabilities: false,
            fuse: true,
            share: true,
            node_cost: DEFAULT_NODE_COST,
            calib: None,
            member_names: vec![],
        }
    }
}

/// The default cost of one node in the layout choice: about what dispatching a kernel costs.
pub const DEFAULT_NODE_COST: u64 = 10_000;

/// Top-1 agreement of each member and of the soup with the argmax of the members' mean output.
#[derive(Clone, Debug, PartialEq)]
pub struct SoupAgreement {
    /// Calibration samples.
    pub samples: usize,
    /// Per member, the fraction of samples whose argmax agrees with the mean's.
    pub members: Vec<f64>,
    /// The soup's agreement.
    pub soup: f64,
}

/// What [`merge_models`] did.
#[derive(Clone, Debug, Default)]
pub struct MergeReport {
    /// The combination.
    pub combine: String,
    /// The effective weight of each member's output (or parameters, for `soup`).
    pub weights: Vec<f64>,
    /// Groups of members fused into one wider network.
    pub fused_groups: Vec<Vec<usize>>,
    /// Members kept as separate branches.
    pub branches: Vec<usize>,
    /// One line per decision: shared, concatenated, block-diagonal or separate, folded.
    pub layers: Vec<String>,
    /// Notes of the sharing step (`fold`).
    pub notes: Vec<String>,
    /// Warnings (soup).
    pub warnings: Vec<String>,
    /// `soup` with a calibration batch: the agreements.
    pub agreement: Option<SoupAgreement>,
}

impl fmt::Display for MergeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w: Vec<String> = self.weights.iter().map(|w| format!("{w:.4}")).collect();
        writeln!(f, "merge: {} (weights {})", self.combine, w.join(", "))?;
        for g in &self.fused_groups {
            writeln!(f, "  fused members {g:?} into one network")?;
        }
        if !self.branches.is_empty() {
            writeln!(f, "  separate branches: members {:?}", self.branches)?;
        }
        for l in &self.layers {
            writeln!(f, "  {l}")?;
        }
        for n in &self.notes {
            writeln!(f, "  share: {n}")?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        if let Some(a) = &self.agreement {
            writeln!(
                f,
                "  top-1 agreement with the members' mean output on {} samples:",
                a.samples
            )?;
            for (k, m) in a.members.iter().enumerate() {
                writeln!(f, "    member {k}: {:.1} %", 100.0 * m)?;
            }
            writeln!(f, "    soup: {:.1} %", 100.0 * a.soup)?;
        }
        Ok(())
    }
}

fn failed(msg: impl Into<String>) -> PassError {
    PassError::Failed {
        pass: "merge",
        msg: msg.into(),
    }
}

fn ge(source: smelt_ir::GraphError) -> PassError {
    PassError::Graph {
        pass: "merge",
        source,
    }
}

/// Merges `members` into one model, with the reference evaluator for `soup`'s agreement.
pub fn merge_models(
    members: &[Model],
    opts: &MergeOptions,
) -> Result<(Model, MergeReport), PassError> {
    merge_models_with(members, opts, &crate::eval::ReferenceRunner)
}

/// Merges `members` into one model; `runner` runs the members and the soup on `calib`.
pub fn merge_models_with(
    members: &[Model],
    opts: &MergeOptions,
    runner: &dyn Runner,
) -> Result<(Model, MergeReport), PassError> {
    if members.is_empty() {
        return Err(failed("no members to merge"));
    }
    let n = members.len();
    let names: Vec<String> = (0..n)
        .map(|k| {
            opts.member_names
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("m{k}"))
        })
        .collect();
    let mut graphs: Vec<Graph> = members.iter().map(|m| m.graph.clone()).collect();
    for (k, g) in graphs.iter_mut().enumerate() {
        smelt_ir::infer::infer_graph(g).map_err(|e| {
            failed(format!(
                "member {k} ({}): shapes do not infer: {}",
                names[k],
                e.first().map(|x| x.to_string()).unwrap_or_default()
            ))
        })?;
    }
    check_signature(&graphs, &names)?;
    let weights = effective_weights(opts, n)?;
    let mut report = MergeReport {
        combine: if opts.probabilities {
            format!("{} of probabilities", opts.combine.name())
        } else {
            opts.combine.name().to_string()
        },
        weights: weights.clone(),
        ..MergeReport::default()
    };
    let mut model = members[0].clone();
    model.opsets = merged_opsets(members);
    model.producer_name = "smelt".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    let mut g = if opts.combine == Combine::Soup {
        soup(&graphs, &weights, &mut report)?
    } else {
        let mut g = build(&graphs, &weights, opts, &mut report)?;
        if opts.share {
            let mut cx = PassCtx::new();
            crate::fold::Fold::default().run(&mut g, &mut cx)?;
            report.notes = cx.take_notes();
        }
        g
    };
    smelt_ir::infer::infer_graph(&mut g)
        .map_err(|e| failed(format!("the merged graph does not infer: {e:?}")))?;
    smelt_ir::verify(&g).map_err(|errors| PassError::Invalid {
        pass: "merge".into(),
        errors,
    })?;
    if opts.combine == Combine::Soup {
        if let Some(calib) = &opts.calib {
            report.agreement = Some(soup_agreement(&graphs, &g, calib, runner)?);
        }
    }
    model.graph = g;
    model
        .metadata
        .retain(|(k, _)| !k.starts_with("smelt.merge."));
    model
        .metadata
        .push(("smelt.merge.members".into(), names.join(",")));
    model
        .metadata
        .push(("smelt.merge.combine".into(), report.combine.clone()));
    model.metadata.push((
        "smelt.merge.weights".into(),
        weights
            .iter()
            .map(|w| format!("{w}"))
            .collect::<Vec<_>>()
            .join(","),
    ));
    Ok((model, report))
}

/// The weight each member's output (or parameters) gets in the combination.
fn effective_weights(opts: &MergeOptions, n: usize) -> Result<Vec<f64>, PassError> {
    let given = match &opts.weights {
        Some(w) if w.len() != n => {
            return Err(failed(format!("{} weights given for {n} members", w.len())))
        }
        Some(w) if w.iter().any(|x| !x.is_finite()) => {
            return Err(failed("weights must be finite numbers"))
        }
        Some(_) if opts.combine == Combine::Mean => {
            return Err(failed(
                "`mean` takes no weights: use `weighted` or `normalized`",
            ))
        }
        Some(w) => w.clone(),
        None if opts.combine == Combine::Weighted => {
            return Err(failed("`weighted` needs weights (--weights W,W,..)"))
        }
        None => vec![1.0; n],
    };
    Ok(match opts.combine {
        Combine::Mean => vec![1.0 / n as f64; n],
        Combine::Weighted | Combine::Vote => given,
        Combine::Normalized | Combine::Soup => {
            let s: f64 = given.iter().sum();
            if s == 0.0 {
                return Err(failed("the weights sum to 0: cannot normalize"));
            }
            given.iter().map(|w| w / s).collect()
        }
    })
}

fn merged_opsets(members: &[Model]) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = vec![];
    for m in members {
        for (d, ver) in &m.opsets {
            match v.iter_mut().find(|(d2, _)| d2 == d) {
                Some(e) => e.1 = e.1.max(*ver),
                None => v.push((d.clone(), *ver)),
            }
        }
    }
    v
}

/// Checks that every member takes member 0's inputs (by name and type) and gives outputs of
/// the same types (by position).
fn check_signature(graphs: &[Graph], names: &[String]) -> Result<(), PassError> {
    let g0 = &graphs[0];
    let ins0: HashMap<String, Type> = g0
        .inputs()
        .iter()
        .map(|v| (g0.value(*v).name.clone(), g0.value_type(*v).clone()))
        .collect();
    let outs0: Vec<Type> = g0
        .outputs()
        .iter()
        .map(|v| g0.value_type(*v).clone())
        .collect();
    for (k, g) in graphs.iter().enumerate().skip(1) {
        let who = format!("member {k} ({})", names[k]);
        let ins: HashSet<String> = g
            .inputs()
            .iter()
            .map(|v| g.value(*v).name.clone())
            .collect();
        for v in g.inputs() {
            let name = &g.value(v).name;
            match ins0.get(name) {
                None => {
                    return Err(failed(format!(
                        "{who}: input `{name}` is not an input of member 0 ({}); inputs are matched by name",
                        names[0]
                    )))
                }
                Some(t) if t != g.value_type(v) => {
                    return Err(failed(format!(
                        "{who}: input `{name}` is {} but {} in member 0 ({})",
                        g.value_type(v),
                        t,
                        names[0]
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some(missing) = ins0.keys().find(|n| !ins.contains(*n)) {
            return Err(failed(format!(
                "{who}: has no input `{missing}`, which member 0 ({}) takes",
                names[0]
            )));
        }
        if g.outputs().len() != outs0.len() {
            return Err(failed(format!(
                "{who}: {} outputs, member 0 has {}; outputs are matched by position",
                g.outputs().len(),
                outs0.len()
            )));
        }
        for (p, (v, t)) in g.outputs().iter().zip(&outs0).enumerate() {
            if g.value_type(*v) != t {
                return Err(failed(format!(
                    "{who}: output {p} (`{}`) is {} but {t} in member 0",
                    g.value(*v).name,
                    g.value_type(*v)
                )));
            }
        }
    }
    Ok(())
}

/// Renames every value (and node) of `g` and its subgraphs to `prefix + name`, except the
/// names in `keep` (the shared graph inputs).
fn prefix_names(g: &mut Graph, prefix: &str, keep: &HashSet<String>) {
    for id in g.node_ids() {
        let nn = g.node(id).name.clone();
        if !nn.is_empty() {
            g.node_mut(id).name = format!("{prefix}{nn}");
        }
        for p in 0..g.node(id).outputs.len() {
            let v = ValueId::new(id, p as u32);
            let name = g.value(v).name.clone();
            if !name.is_empty() && !keep.contains(&name) {
                g.rename_value(v, format!("{prefix}{name}"));
            }
        }
        let mut op = g.node(id).op.clone();
        let subs = op.subgraphs_mut();
        if !subs.is_empty() {
            for sub in subs {
                prefix_names(sub, prefix, keep);
            }
            g.node_mut(id).op = op;
        }
    }
}

/// Copies member graph `m` (already prefixed) into `g`, its inputs bound to `g`'s inputs by
/// name. Returns the member's outputs in `g`.
fn copy_member(g: &mut Graph, m: &Graph) -> Result<Vec<ValueId>, PassError> {
    let by_name: HashMap<String, ValueId> = g
        .inputs()
        .iter()
        .map(|v| (g.value(*v).name.clone(), *v))
        .collect();
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    let mut input_map: HashMap<NodeId, ValueId> = HashMap::new();
    for id in m.topo_order().map_err(ge)? {
        let node = m.node(id);
        if matches!(node.op, Op::Input) {
            let name = &m.value(ValueId::new(id, 0)).name;
            let v = by_name
                .get(name)
                .ok_or_else(|| failed(format!("input `{name}` is not a merged input")))?;
            input_map.insert(id, *v);
            continue;
        }
        let ins: Vec<Option<ValueId>> = m
            .node_inputs(id)
            .into_iter()
            .map(|v| {
                v.map(|v| match input_map.get(&v.node) {
                    Some(x) => *x,
                    None => ValueId::new(map[&v.node], v.port),
                })
            })
            .collect();
        let new = g
            .add_node(
                node.name.clone(),
                node.op.clone(),
                &ins,
                node.outputs.clone(),
            )
            .map_err(ge)?;
        map.insert(id, new);
    }
    Ok(m.outputs()
        .iter()
        .map(|v| match input_map.get(&v.node) {
            Some(x) => *x,
            None => ValueId::new(map[&v.node], v.port),
        })
        .collect())
}

/// What one member (or a fused group) gives for each output position: values still to be
/// weighted (member k's output), or a contribution already weighted (a folded last layer).
pub(crate) enum Contribution {
    /// Member `k`'s output value, not yet weighted.
    Member(usize, ValueId),
    /// A sum of weighted member outputs already computed.
    Weighted(ValueId),
    /// A value to multiply by a weight (identical members computed once).
    Scaled(ValueId, f64),
}

fn build(
    graphs: &[Graph],
    weights: &[f64],
    opts: &MergeOptions,
    report: &mut MergeReport,
) -> Result<Graph, PassError> {
    let g0 = &graphs[0];
    let mut g = Graph::new(g0.name.clone());
    g.doc_string = g0.doc_string.clone();
    for v in g0.inputs() {
        g.add_input(g0.value(v).name.clone(), g0.value_type(v).clone());
    }
    let keep: HashSet<String> = g0
        .inputs()
        .iter()
        .map(|v| g0.value(*v).name.clone())
        .collect();
    let n_out = g0.outputs().len();
    let mut contribs: Vec<Vec<Contribution>> = (0..n_out).map(|_| vec![]).collect();
    let linear = matches!(
        opts.combine,
        Combine::Mean | Combine::Weighted | Combine::Normalized
    ) && !opts.probabilities;
    let groups = if opts.fuse {
        fuse::groups(graphs)
    } else {
        vec![]
    };
    let in_group: HashSet<usize> = groups.iter().flatten().copied().collect();
    for (gi, grp) in groups.iter().enumerate() {
        let c = fuse::emit_group(
            &mut g,
            graphs,
            grp,
            gi,
            weights,
            linear,
            opts.node_cost,
            &mut report.layers,
        )?;
        contribs[0].extend(c);
        report.fused_groups.push(grp.clone());
    }
    for (k, m) in graphs.iter().enumerate() {
        if in_group.contains(&k) {
            continue;
        }
        let mut m = m.clone();
        prefix_names(&mut m, &format!("m{k}/"), &keep);
        let outs = copy_member(&mut g, &m)?;
        for (p, v) in outs.into_iter().enumerate() {
            contribs[p].push(Contribution::Member(k, v));
        }
        report.branches.push(k);
    }
    let mut outs = vec![];
    for (p, cs) in contribs.into_iter().enumerate() {
        let out_name = g0.value(g0.outputs()[p]).name.clone();
        let ty = g0.value_type(g0.outputs()[p]).clone();
        outs.push(combine(&mut g, cs, &out_name, &ty, weights, opts)?);
    }
    g.set_outputs(outs).map_err(ge)?;
    g.remove_dead_nodes();
    Ok(g)
}

fn out_value(name: String) -> Vec<Value> {
    vec![Value {
        name,
        ty: Type::Unknown,
    }]
}

/// Adds a one-output node; its output is named `name` made fresh.
pub(crate) fn node(
    g: &mut Graph,
    name: &str,
    op: Op,
    ins: &[ValueId],
) -> Result<ValueId, PassError> {
    let vname = g.fresh_name(name);
    let nname = g.fresh_node_name(name);
    let ins: Vec<Option<ValueId>> = ins.iter().map(|v| Some(*v)).collect();
    let id = g.add_node(nname, op, &ins, out_value(vname)).map_err(ge)?;
    Ok(ValueId::new(id, 0))
}

/// Adds a constant named `name` made fresh.
pub(crate) fn constant(g: &mut Graph, name: &str, t: Tensor) -> ValueId {
    let n = g.fresh_name(name);
    g.add_const(n, t)
}

fn scalar_like(ty: &Type, x: f64) -> Result<Tensor, PassError> {
    match ty.dtype() {
        Some(DType::F32) => Ok(Tensor::scalar(x as f32)),
        Some(DType::F64) => Ok(Tensor::scalar(x)),
        other => Err(failed(format!(
            "combining outputs needs f32 or f64 outputs, found {other:?}"
        ))),
    }
}

/// Joins the contributions for one output position into the value named `out_name`.
fn combine(
    g: &mut Graph,
    cs: Vec<Contribution>,
    out_name: &str,
    ty: &Type,
    weights: &[f64],
    opts: &MergeOptions,
) -> Result<ValueId, PassError> {
    let mut terms: Vec<ValueId> = vec![];
    let mut raw: Vec<(usize, ValueId)> = vec![];
    for c in cs {
        match c {
            Contribution::Weighted(v) => terms.push(v),
            Contribution::Scaled(v, w) => {
                let c = constant(g, "weight", scalar_like(ty, w)?);
                terms.push(node(
                    g,
                    "weighted",
                    Op::Mul(smelt_ir::ops::Mul {}),
                    &[v, c],
                )?);
            }
            Contribution::Member(k, v) => {
                let mut v = v;
                if opts.probabilities {
                    v = node(
                        g,
                        &format!("m{k}/probabilities"),
                        Op::Softmax(smelt_ir::ops::Softmax { axis: -1 }),
                        &[v],
                    )?;
                }
                if opts.combine == Combine::Vote {
                    v = vote_of(g, k, v, ty)?;
                }
                raw.push((k, v));
            }
        }
    }
    let w0 = raw.first().map(|(k, _)| weights[*k]).unwrap_or(1.0);
    if terms.is_empty() && raw.len() > 1 && raw.iter().all(|(k, _)| weights[*k] == w0) {
        // Equal weights: w Σ yᵢ, one Mul after the Sum.
        let vs: Vec<ValueId> = raw.iter().map(|(_, v)| *v).collect();
        let sum = node(
            g,
            &format!("{out_name}_sum"),
            Op::Sum(smelt_ir::ops::Sum {}),
            &vs,
        )?;
        terms.push(if w0 == 1.0 {
            sum
        } else {
            let c = constant(g, "weight", scalar_like(ty, w0)?);
            node(g, out_name, Op::Mul(smelt_ir::ops::Mul {}), &[sum, c])?
        });
    } else {
        for (k, mut v) in raw {
            let w = weights[k];
            if w != 1.0 {
                let c = constant(g, &format!("m{k}/weight"), scalar_like(ty, w)?);
                v = node(
                    g,
                    &format!("m{k}/weighted"),
                    Op::Mul(smelt_ir::ops::Mul {}),
                    &[v, c],
                )?;
            }
            terms.push(v);
        }
    }
    let last = match terms.as_slice() {
        [] => return Err(failed("no member gives this output")),
        [one] if !matches!(g.node(one.node).op, Op::Input | Op::Const(_)) && !g.is_output(*one) => {
            *one
        }
        [one] => node(
            g,
            out_name,
            Op::Identity(smelt_ir::ops::Identity {}),
            &[*one],
        )?,
        many => node(g, out_name, Op::Sum(smelt_ir::ops::Sum {}), many)?,
    };
    if g.value(last).name != out_name {
        if g.has_value_name(out_name) {
            return Err(failed(format!(
                "output name `{out_name}` is taken by another value"
            )));
        }
        g.rename_value(last, out_name);
    }
    Ok(last)
}

/// One member's vote: a one-hot of its argmax over the last axis, as the output's float type.
fn vote_of(g: &mut Graph, k: usize, y: ValueId, ty: &Type) -> Result<ValueId, PassError> {
    let classes = ty
        .static_dims()
        .and_then(|d| d.last().copied())
        .ok_or_else(|| failed("vote needs outputs whose last dim (the classes) is known"))?;
    let am = node(
        g,
        &format!("m{k}/argmax"),
        Op::ArgMax(smelt_ir::ops::ArgMax {
            axis: -1,
            keepdims: 1,
            select_last_index: 0,
        }),
        &[y],
    )?;
    let range: Vec<i64> = (0..classes as i64).collect();
    let cls = constant(
        g,
        "classes",
        Tensor::from_vec(vec![classes], &range).map_err(|e| failed(e.to_string()))?,
    );
    let eq = node(
        g,
        &format!("m{k}/is_vote"),
        Op::Equal(smelt_ir::ops::Equal {}),
        &[am, cls],
    )?;
    let to = ty.dtype().unwrap_or(DType::F32);
    node(
        g,
        &format!("m{k}/vote"),
        Op::Cast(smelt_ir::ops::Cast { to, saturate: 1 }),
        &[eq],
    )
}

/// The text of a graph with constants masked: equal for graphs of identical structure.
fn structure_key(g: &Graph) -> String {
    let mut g = g.clone();
    g.name = String::new();
    g.doc_string = String::new();
    let re = regex::Regex::new(r"= const (\S+) .*").expect("regex");
    re.replace_all(&g.to_text(), "= const $1").into_owned()
}

/// `soup`: one graph with the (weighted) mean of the members' float constants.
fn soup(graphs: &[Graph], weights: &[f64], report: &mut MergeReport) -> Result<Graph, PassError> {
    report.warnings.push(
        "soup averages parameters: it is only meaningful for members fine-tuned from one \
         initialisation (check the agreement with --calib)"
            .into(),
    );
    let g0 = &graphs[0];
    let key0 = structure_key(g0);
    for (k, g) in graphs.iter().enumerate().skip(1) {
        if structure_key(g) != key0 {
            return Err(failed(format!(
                "soup needs members of identical structure; member {k} differs from member 0 \
                 (use mean, weighted, normalized or vote)"
            )));
        }
    }
    let consts = |g: &Graph| -> Vec<NodeId> {
        g.topo_order()
            .unwrap_or_default()
            .into_iter()
            .filter(|id| matches!(g.node(*id).op, Op::Const(_)))
            .collect()
    };
    let ids: Vec<Vec<NodeId>> = graphs.iter().map(consts).collect();
    let mut out = g0.clone();
    let mut averaged = 0usize;
    for (i, id0) in ids[0].iter().enumerate() {
        let Op::Const(t0) = &g0.node(*id0).op else {
            continue;
        };
        let ts: Vec<&Tensor> = (0..graphs.len())
            .map(|k| match ids[k].get(i).map(|id| &graphs[k].node(*id).op) {
                Some(Op::Const(t)) => Ok(t),
                _ => Err(failed(format!("soup: member {k} lacks constant {i}"))),
            })
            .collect::<Result<_, _>>()?;
        let name = &g0.value(ValueId::new(*id0, 0)).name;
        if ts
            .iter()
            .any(|t| t.dims() != t0.dims() || t.dtype() != t0.dtype())
        {
            return Err(failed(format!(
                "soup: constant `{name}` has other shapes or dtypes across members"
            )));
        }
        if !t0.dtype().is_float() {
            if ts.iter().any(|t| t.bytes() != t0.bytes()) {
                return Err(failed(format!(
                    "soup: integer constant `{name}` differs across members"
                )));
            }
            continue;
        }
        if ts.iter().all(|t| t.bytes() == t0.bytes()) {
            continue;
        }
        let vs: Vec<Vec<f64>> = ts
            .iter()
            .map(|t| {
                t.to_f64_vec()
                    .ok_or_else(|| failed("soup: unreadable constant"))
            })
            .collect::<Result<_, _>>()?;
        let mean: Vec<f64> = (0..vs[0].len())
            .map(|j| vs.iter().zip(weights).map(|(v, w)| v[j] * w).sum())
            .collect();
        let t = Tensor::from_f64s(t0.dtype(), t0.dims().to_vec(), &mean)
            .map_err(|e| failed(e.to_string()))?;
        out.node_mut(*id0).op = Op::Const(t);
        averaged += 1;
    }
    report
        .layers
        .push(format!("soup: averaged {averaged} parameter tensors"));
    Ok(out)
}

/// Runs the members and the soup on every sample of `calib` and measures top-1 agreement with
/// the argmax of the members' mean output (first output).
fn soup_agreement(
    graphs: &[Graph],
    soup: &Graph,
    calib: &Tensor,
    runner: &dyn Runner,
) -> Result<SoupAgreement, PassError> {
    let ins = soup.inputs();
    if ins.len() != 1 {
        return Err(failed("--calib needs models with one input"));
    }
    let dims = soup
        .value_type(ins[0])
        .static_dims()
        .ok_or_else(|| failed("--calib needs the input shape to be known"))?;
    let per: usize = dims.iter().product();
    let n = calib.dims().first().copied().unwrap_or(0);
    let bytes = calib
        .bytes()
        .ok_or_else(|| failed("--calib: not a numeric tensor"))?;
    let w = calib.dtype().bits() / 8;
    if n == 0 || calib.len() != n * per {
        return Err(failed(format!(
            "--calib: {:?} does not hold samples of {} elements ({dims:?})",
            calib.dims(),
            per
        )));
    }
    let argmax = |t: &Tensor| -> usize {
        t.to_f64_vec()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)
            .unwrap_or(0)
    };
    let run = |g: &Graph, x: &Tensor| -> Result<Tensor, PassError> {
        runner
            .run(g, std::slice::from_ref(x))
            .map_err(|msg| PassError::Runner {
                pass: "merge".into(),
                msg,
            })?
            .into_iter()
            .next()
            .ok_or_else(|| failed("no output"))
    };
    let mut agree = vec![0usize; graphs.len()];
    let mut agree_soup = 0usize;
    for i in 0..n {
        let x = Tensor::from_bytes(
            calib.dtype(),
            dims.clone(),
            bytes[i * per * w..(i + 1) * per * w].to_vec(),
        )
        .map_err(|e| failed(e.to_string()))?;
        let outs: Vec<Tensor> = graphs
            .iter()
            .map(|g| run(g, &x))
            .collect::<Result<_, _>>()?;
        let vs: Vec<Vec<f64>> = outs
            .iter()
            .map(|t| t.to_f64_vec().unwrap_or_default())
            .collect();
        let mean: Vec<f64> = (0..vs[0].len())
            .map(|j| vs.iter().map(|v| v[j]).sum::<f64>() / vs.len() as f64)
            .collect();
        let target =
            argmax(&Tensor::from_vec(vec![mean.len()], &mean).map_err(|e| failed(e.to_string()))?);
        for (k, t) in outs.iter().enumerate() {
            agree[k] += (argmax(t) == target) as usize;
        }
        agree_soup += (argmax(&run(soup, &x)?) == target) as usize;
    }
    Ok(SoupAgreement {
        samples: n,
        members: agree.iter().map(|a| *a as f64 / n as f64).collect(),
        soup: agree_soup as f64 / n as f64,
    })
}
