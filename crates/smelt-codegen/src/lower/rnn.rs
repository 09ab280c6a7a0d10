//! LSTM and GRU (forward, reverse, bidirectional; initial states; LSTM peepholes, clip and
//! input_forget; GRU linear_before_reset) as native loops over time, not unrolled.
//!
//! Per direction and time step, the input and recurrent products run through the matrix
//! kernel ([`super::matmul`]) with the weights packed at compile time (biases folded into the
//! first product's epilogue, the recurrent product accumulating onto it), then one pointwise
//! pass over the hidden units, four at a time, applies the gate activations and updates the
//! states in the node's arena scratch. Layouts 0 (`[seq, batch, ...]`) and 1 (batch first); W, R,
//! B and P constant (packed at compile time) or run-time inputs (read in place); `sequence_lens`
//! only when equal to the sequence length (checked at run time when not constant: status 1
//! otherwise); activations Sigmoid, Tanh and Relu.

use super::matmul::{emit, pack_b, BSrc, Epilogue, Gemm};
use super::{math, Ctx, Lanes, NodeIo, R};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{Graph, NodeId, Op};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Act {
    Sigmoid,
    Tanh,
    Relu,
}

fn act_of(name: &str) -> R<Act> {
    match name.to_ascii_lowercase().as_str() {
        "sigmoid" => Ok(Act::Sigmoid),
        "tanh" => Ok(Act::Tanh),
        "relu" => Ok(Act::Relu),
        other => Err(format!("recurrent activation `{other}` is not supported")),
    }
}

fn apply(cx: &mut Ctx, l: Lanes, a: Act, x: Value) -> Value {
    match a {
        Act::Sigmoid => math::sigmoid(cx, l, x),
        Act::Tanh => math::tanh(cx, l, x),
        Act::Relu => {
            let z = cx.fconst(l, 0.0);
            cx.b.ins().fmax(x, z)
        }
    }
}

/// What both recurrent ops share.
struct Spec {
    gates: usize,
    dirs: usize,
    reverse_only: bool,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    acts: Vec<Act>,
    clip: Option<f32>,
    /// Layout 1: X `[batch, seq, input]`, Y `[batch, seq, dirs, hidden]`, states
    /// `[batch, dirs, hidden]`.
    batch_first: bool,
}

fn spec(g: &Graph, id: NodeId) -> R<Spec> {
    let node = g.node(id);
    let (gates, direction, hidden, layout, acts, clip, n_act) = match &node.op {
        Op::LSTM(o) => (
            4,
            &o.direction,
            o.hidden_size,
            o.layout,
            &o.activations,
            o.clip,
            3,
        ),
        Op::GRU(o) => (
            3,
            &o.direction,
            o.hidden_size,
            o.layout,
            &o.activations,
            o.clip,
            2,
        ),
        _ => return Err("not a recurrent op".into()),
    };
    let batch_first = match layout {
        0 => false,
        1 => true,
        l => return Err(format!("recurrent layout {l} is not defined")),
    };
    let ins = g.node_inputs(id);
    let dims = |i: usize| -> R<Vec<usize>> {
        ins.get(i)
            .copied()
            .flatten()
            .and_then(|v| g.value_type(v).static_dims())
            .ok_or_else(|| format!("input {i} has no static shape"))
    };
    let mut x = dims(0)?;
    let w = dims(1)?;
    if batch_first && x.len() == 3 {
        x.swap(0, 1);
    }
    if x.len() != 3 || w.len() != 3 {
        return Err("X and W must be 3-D".into());
    }
    let (dirs, reverse_only) = match direction.as_str() {
        "forward" => (1, false),
        "reverse" => (1, true),
        "bidirectional" => (2, false),
        d => return Err(format!("unknown direction `{d}`")),
    };
    let hidden = match hidden {
        Some(h) => usize::try_from(h).map_err(|_| "bad hidden_size")?,
        None => w[1] / gates,
    };
    if w[0] != dirs || w[1] != gates * hidden || w[2] != x[2] {
        return Err("W does not fit X, the direction and hidden_size".into());
    }
    let defaults: &[Act] = if gates == 4 {
        &[Act::Sigmoid, Act::Tanh, Act::Tanh]
    } else {
        &[Act::Sigmoid, Act::Tanh]
    };
    let acts = match acts {
        Some(names) => {
            if names.len() != n_act * dirs {
                return Err("activations do not fit the direction".into());
            }
            names.iter().map(|n| act_of(n)).collect::<R<Vec<_>>>()?
        }
        None => defaults
            .iter()
            .cycle()
            .take(n_act * dirs)
            .copied()
            .collect(),
    };
    // Every other operand must have exactly the shape the equations index.
    let state = if batch_first {
        vec![x[1], dirs, hidden]
    } else {
        vec![dirs, x[1], hidden]
    };
    let want: [(usize, Vec<usize>); 5] = [
        (2, vec![dirs, gates * hidden, hidden]),
        (3, vec![dirs, 2 * gates * hidden]),
        (5, state.clone()),
        (6, state),
        (7, vec![dirs, 3 * hidden]),
    ];
    for (i, shape) in want {
        if ins.get(i).copied().flatten().is_some() && dims(i)? != shape {
            return Err(format!("input {i} must have shape {shape:?}"));
        }
    }
    if ins.get(2).copied().flatten().is_none() {
        return Err("R is missing".into());
    }
    for i in [0usize, 1, 2, 3, 5, 6, 7] {
        if let Some(v) = ins.get(i).copied().flatten() {
            if g.value_type(v).dtype() != Some(smelt_ir::DType::F32) {
                return Err(format!("input {i} must be f32"));
            }
        }
    }
    if let Some(v) = ins.get(4).copied().flatten() {
        match g.const_value(v).and_then(|t| t.to_i64_vec()) {
            Some(lens) if lens.iter().any(|l| *l != x[0] as i64) => {
                return Err("sequence_lens shorter than the sequence are not supported".into());
            }
            Some(_) => {}
            // Checked at run time: a length other than the sequence's is a caught bad state.
            None if g.value_type(v).dtype() == Some(smelt_ir::DType::I32) => {}
            None => return Err("sequence_lens must be int32".into()),
        }
    }
    Ok(Spec {
        gates,
        dirs,
        reverse_only,
        seq: x[0],
        batch: x[1],
        input: x[2],
        hidden,
        acts,
        clip,
        batch_first,
    })
}

/// Why a recurrent node cannot be lowered, if it cannot.
pub(crate) fn check(g: &Graph, id: NodeId) -> R<()> {
    let ins = g.node_inputs(id);
    let shapes_known = ins
        .iter()
        .flatten()
        .all(|v| g.value_type(*v).static_dims().is_some());
    if !shapes_known {
        return Ok(());
    }
    spec(g, id).map(|_| ())
}

/// Arena bytes for the gates and states.
pub(crate) fn scratch_bytes(g: &Graph, id: NodeId) -> u64 {
    match spec(g, id) {
        // gates x2 (input and recurrent parts for GRU), h, c, r∘h; the input-side bias
        Ok(s) => {
            ((s.batch * (2 * s.gates * s.hidden + 3 * s.hidden) + s.gates * s.hidden) * 4) as u64
        }
        Err(_) => 0,
    }
}

fn floats(io: &NodeIo, i: usize) -> Option<Vec<f32>> {
    io.konst(i).and_then(|t| t.to_f32_vec())
}

/// Copies `rows` rows of `row_bytes` bytes between strided places.
fn copy_rows(
    cx: &mut Ctx,
    (src, src_rs): (Value, i64),
    (dst, dst_rs): (Value, i64),
    rows: usize,
    row_bytes: usize,
) -> R<()> {
    if src_rs == row_bytes as i64 && dst_rs == row_bytes as i64 {
        return super::shape::copy_bytes(cx, src, dst, rows * row_bytes);
    }
    cx.for_n(rows, |cx, i| {
        let s = cx.index(src, i, src_rs);
        let d = cx.index(dst, i, dst_rs);
        super::shape::copy_bytes(cx, s, d, row_bytes)
    })
}

/// Lowers LSTM and GRU. W, R, B and P are packed at compile time when they are constants and
/// read in place (strided) when they are run-time inputs.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let sp = spec(io.g, io.id)?;
    let (lstm, input_forget, lbr) = match io.op() {
        Op::LSTM(o) => (true, o.input_forget != 0, false),
        Op::GRU(o) => (false, false, o.linear_before_reset != 0),
        _ => return Err("not a recurrent op".into()),
    };
    let (gn, h, b, i_n) = (sp.gates, sp.hidden, sp.batch, sp.input);
    let (seq, dirs) = (sp.seq, sp.dirs);
    // A run-time operand's address, or None when absent.
    let rt = |cx: &mut Ctx, i: usize| -> R<Option<Value>> {
        match io.opt_input(i) {
            Some(o) => Ok(Some(cx.addr(io.g, o)?)),
            None => Ok(None),
        }
    };
    let w = floats(io, 1);
    let w_rt = if w.is_none() { rt(cx, 1)? } else { None };
    let r = floats(io, 2);
    let r_rt = if r.is_none() { rt(cx, 2)? } else { None };
    let bias_rt = if io.opt_input(3).is_some() && floats(io, 3).is_none() {
        rt(cx, 3)?
    } else {
        None
    };
    let bias = floats(io, 3).unwrap_or_else(|| vec![0.0; dirs * 2 * gn * h]);
    let peep = floats(io, 7);
    let peep_rt = if peep.is_none() { rt(cx, 7)? } else { None };
    if (w.is_none() && w_rt.is_none()) || (r.is_none() && r_rt.is_none()) {
        return Err("W and R must be f32".into());
    }
    if io.opt_input(4).is_some() && io.konst(4).is_none() {
        // Run-time sequence lengths must all be the full sequence (status 1 otherwise).
        let lens = rt(cx, 4)?.ok_or("sequence_lens is missing")?;
        let fail = cx.b.create_block();
        cx.for_n(b, |cx, bi| {
            let a = cx.index(lens, bi, 4);
            let l = cx.load(types::I32, a, 0);
            let bad = cx.b.ins().icmp_imm_s(IntCC::NotEqual, l, seq as i64);
            let ok = cx.b.create_block();
            cx.b.ins().brif(bad, fail, &[], ok, &[]);
            cx.b.seal_block(ok);
            cx.b.switch_to_block(ok);
            Ok(())
        })?;
        let cont = cx.b.create_block();
        cx.b.ins().jump(cont, &[]);
        cx.b.seal_block(fail);
        cx.b.switch_to_block(fail);
        let code = cx.b.ins().iconst(types::I32, 1);
        cx.b.ins().return_(&[code]);
        cx.b.seal_block(cont);
        cx.b.switch_to_block(cont);
    }
    let x = io.input(0)?;
    let xp = cx.addr(io.g, x)?;
    let init_h = rt(cx, 5)?;
    let init_c = if lstm { rt(cx, 6)? } else { None };
    let out = |cx: &mut Ctx, k: usize| -> R<Option<Value>> {
        match io.outs.get(k) {
            Some(Some(o)) => Ok(Some(cx.addr(io.g, o)?)),
            _ => Ok(None),
        }
    };
    let (y, yh, yc) = (
        out(cx, 0)?,
        out(cx, 1)?,
        if lstm { out(cx, 2)? } else { None },
    );
    let off = io.scratch.ok_or("recurrent op needs scratch space")?;
    let base = cx.offset(cx.arena(), off as i64);
    let gx = base;
    let gh = cx.offset(base, (b * gn * h * 4) as i64);
    let hs = cx.offset(base, (2 * b * gn * h * 4) as i64);
    let cs = cx.offset(hs, (b * h * 4) as i64);
    let rh = cx.offset(cs, (b * h * 4) as i64);
    let xbs = cx.offset(rh, (b * h * 4) as i64);
    let hb = (h * 4) as i64;
    // Byte strides: X's batch rows and time steps, Y's batch rows, time steps and directions,
    // and the states' batch rows and directions.
    let (x_rs, x_ts, y_rs, y_ts, y_ds, s_rs, s_ds) = if sp.batch_first {
        let (x_rs, y_rs) = ((seq * i_n * 4) as i64, (seq * dirs * h * 4) as i64);
        (
            x_rs,
            (i_n * 4) as i64,
            y_rs,
            (dirs * h * 4) as i64,
            hb,
            dirs as i64 * hb,
            hb,
        )
    } else {
        let bh = (b * h * 4) as i64;
        let x_ts = (b * i_n * 4) as i64;
        ((i_n * 4) as i64, x_ts, hb, dirs as i64 * bh, bh, hb, bh)
    };

    for d in 0..dirs {
        let reverse = sp.reverse_only || d == 1;
        let acts = &sp.acts[d * sp.acts.len() / dirs..(d + 1) * sp.acts.len() / dirs];
        // W^T [I, G*H] and R^T [H, G*H] (GRU: the h-gate columns of R apart).
        let rcols = if lstm { gn * h } else { 2 * h };
        let wsrc = match (&w, w_rt) {
            (Some(w), _) => {
                let wd = &w[d * gn * h * i_n..(d + 1) * gn * h * i_n];
                BSrc::Packed(cx.add_f32s(&pack_b(i_n, gn * h, &|k, j| wd[j * i_n + k])))
            }
            (None, Some(p)) => BSrc::Strided {
                ptr: cx.offset(p, (d * gn * h * i_n * 4) as i64),
                ks: 1,
                ns: i_n as i64,
            },
            (None, None) => return Err("W is missing".into()),
        };
        let (rsrc, rhsrc) = match (&r, r_rt) {
            (Some(r), _) => {
                let rd = &r[d * gn * h * h..(d + 1) * gn * h * h];
                let rpk = pack_b(h, rcols, &|k, j| rd[j * h + k]);
                let rh_pk = pack_b(h, h, &|k, j| rd[(2 * h + j) * h + k]);
                (
                    BSrc::Packed(cx.add_f32s(&rpk)),
                    BSrc::Packed(cx.add_f32s(&rh_pk)),
                )
            }
            (None, Some(p)) => {
                let rd = cx.offset(p, (d * gn * h * h * 4) as i64);
                let rdh = cx.offset(rd, (2 * h * h * 4) as i64);
                (
                    BSrc::Strided {
                        ptr: rd,
                        ks: 1,
                        ns: h as i64,
                    },
                    BSrc::Strided {
                        ptr: rdh,
                        ks: 1,
                        ns: h as i64,
                    },
                )
            }
            (None, None) => return Err("R is missing".into()),
        };
        // Input-side bias: every Wb, plus Rb where it simply adds.
        let add_rb = |j: usize| lstm || j < 2 * h || !lbr;
        let (xbptr, rbhptr) = match bias_rt {
            None => {
                let bd = &bias[d * 2 * gn * h..(d + 1) * 2 * gn * h];
                let (wb, rb) = bd.split_at(gn * h);
                let xbias: Vec<f32> = (0..gn * h)
                    .map(|j| wb[j] + if add_rb(j) { rb[j] } else { 0.0 })
                    .collect();
                let rbh: Vec<f32> = if lbr {
                    rb[2 * h..].to_vec()
                } else {
                    vec![0.0; h]
                };
                (cx.add_f32s(&xbias), cx.add_f32s(&rbh))
            }
            Some(p) => {
                let wb = cx.offset(p, (d * 2 * gn * h * 4) as i64);
                let rb = cx.offset(wb, (gn * h * 4) as i64);
                let n_add = if lbr { 2 * h } else { gn * h };
                cx.vec_loop(n_add, &mut |cx, l, off| {
                    let ty = l.ty(types::F32);
                    let wa = cx.b.ins().iadd(wb, off);
                    let ra = cx.b.ins().iadd(rb, off);
                    let xa = cx.b.ins().iadd(xbs, off);
                    let a = cx.load(ty, wa, 0);
                    let c = cx.load(ty, ra, 0);
                    let s = cx.b.ins().fadd(a, c);
                    cx.store(s, xa, 0);
                    Ok(())
                })?;
                let rbh = if lbr {
                    let wh = cx.offset(wb, (2 * h * 4) as i64);
                    let xh = cx.offset(xbs, (2 * h * 4) as i64);
                    super::shape::copy_bytes(cx, wh, xh, h * 4)?;
                    cx.offset(rb, (2 * h * 4) as i64)
                } else {
                    cx.add_f32s(&vec![0.0; h])
                };
                (xbs, rbh)
            }
        };
        let pd: Option<Value> = match (&peep, peep_rt) {
            (Some(p), _) => Some(cx.add_f32s(&p[d * 3 * h..(d + 1) * 3 * h])),
            (None, Some(p)) => Some(cx.offset(p, (d * 3 * h * 4) as i64)),
            (None, None) => None,
        };

        // Initial states.
        for (dst, src) in [(hs, init_h), (cs, init_c)] {
            match src {
                Some(s) => {
                    let s = cx.offset(s, d as i64 * s_ds);
                    copy_rows(cx, (s, s_rs), (dst, hb), b, h * 4)?;
                }
                None => super::shape::fill(cx, dst, b * h, &[0, 0, 0, 0])?,
            }
        }
        cx.for_n(seq, |cx, t| {
            let tt = if reverse {
                let n = cx.b.ins().ineg(t);
                cx.b.ins().iadd_imm_s(n, seq as i64 - 1)
            } else {
                t
            };
            let xt = cx.index(xp, tt, x_ts);
            let nil = Epilogue {
                alpha: 1.0,
                bias: None,
                row_bias: None,
                act: None,
            };
            // gx = X_t W^T + bias
            emit(
                cx,
                &Gemm {
                    m: b,
                    n: gn * h,
                    k: i_n,
                    a: (xt, x_rs / 4, 1),
                    a_panel: false,
                    b: wsrc,
                    c: (gx, (gn * h) as i64),
                    epi: Epilogue {
                        bias: Some((xbptr, 0, 1, 1.0)),
                        ..nil
                    },
                },
            )?;
            // gh = H R^T (LSTM: all gates; GRU: z and r), accumulated onto gx.
            emit(
                cx,
                &Gemm {
                    m: b,
                    n: rcols,
                    k: h,
                    a: (hs, h as i64, 1),
                    a_panel: false,
                    b: rsrc,
                    c: (gx, (gn * h) as i64),
                    epi: Epilogue {
                        bias: Some((gx, (gn * h) as i64, 1, 1.0)),
                        ..nil
                    },
                },
            )?;
            let yt = match y {
                Some(y) => {
                    let a = cx.index(y, tt, y_ts);
                    Some((cx.offset(a, d as i64 * y_ds), y_rs))
                }
                None => None,
            };
            if lstm {
                lstm_step(cx, &sp, acts, gx, hs, cs, yt, pd, input_forget)
            } else {
                gru_step(cx, &sp, acts, gx, gh, hs, rh, yt, rhsrc, rbhptr, lbr)
            }
        })?;
        for (src, dst) in [(hs, yh), (cs, yc)] {
            if let Some(dst) = dst {
                let dd = cx.offset(dst, d as i64 * s_ds);
                copy_rows(cx, (src, hb), (dd, s_rs), b, h * 4)?;
            }
        }
    }
    Ok(())
}

fn clip(cx: &mut Ctx, l: Lanes, v: Value, c: Option<f32>) -> Value {
    match c {
        Some(c) => {
            let hi = cx.fconst(l, c);
            let lo = cx.fconst(l, -c);
            let v = cx.b.ins().fmin(v, hi);
            cx.b.ins().fmax(v, lo)
        }
        None => v,
    }
}

/// One LSTM step over the gates in `gx` ([i, o, f, c] blocks of H per batch row).
#[allow(clippy::too_many_arguments)]
fn lstm_step(
    cx: &mut Ctx,
    sp: &Spec,
    acts: &[Act],
    gx: Value,
    hs: Value,
    cs: Value,
    yt: Option<(Value, i64)>,
    peep: Option<Value>,
    input_forget: bool,
) -> R<()> {
    let h = sp.hidden;
    let hb = (h * 4) as i64;
    cx.for_n(sp.batch, |cx, bi| {
        let g = cx.index(gx, bi, 4 * hb);
        let hr = cx.index(hs, bi, hb);
        let cr = cx.index(cs, bi, hb);
        let yr = yt.map(|(y, rs)| cx.index(y, bi, rs));
        cx.vec_loop(h, &mut |cx, l, off| {
            let ty = l.ty(types::F32);
            let at = |cx: &mut Ctx, base: Value, k: i64| {
                let a = cx.b.ins().iadd(base, off);
                cx.load(ty, a, k * hb)
            };
            let c_prev = at(cx, cr, 0);
            let (pi, po, pf) = match peep {
                Some(p) => (at(cx, p, 0), at(cx, p, 1), at(cx, p, 2)),
                None => {
                    let z = cx.fconst(l, 0.0);
                    (z, z, z)
                }
            };
            let gi = at(cx, g, 0);
            let gi = cx.fma(pi, c_prev, gi);
            let gi = clip(cx, l, gi, sp.clip);
            let i = apply(cx, l, acts[0], gi);
            let f = if input_forget {
                let one = cx.fconst(l, 1.0);
                cx.b.ins().fsub(one, i)
            } else {
                let gf = at(cx, g, 2);
                let gf = cx.fma(pf, c_prev, gf);
                let gf = clip(cx, l, gf, sp.clip);
                apply(cx, l, acts[0], gf)
            };
            let gc = at(cx, g, 3);
            let gc = clip(cx, l, gc, sp.clip);
            let cc = apply(cx, l, acts[1], gc);
            let ic = cx.b.ins().fmul(i, cc);
            let c_new = cx.fma(f, c_prev, ic);
            let go = at(cx, g, 1);
            let go = cx.fma(po, c_new, go);
            let go = clip(cx, l, go, sp.clip);
            let o = apply(cx, l, acts[0], go);
            let hc = apply(cx, l, acts[2], c_new);
            let h_new = cx.b.ins().fmul(o, hc);
            let ca = cx.b.ins().iadd(cr, off);
            cx.store(c_new, ca, 0);
            let ha = cx.b.ins().iadd(hr, off);
            cx.store(h_new, ha, 0);
            if let Some(yr) = yr {
                let ya = cx.b.ins().iadd(yr, off);
                cx.store(h_new, ya, 0);
            }
            Ok(())
        })
    })
}

/// One GRU step: gates [z, r, h] in `gx` (z and r already include H R^T).
#[allow(clippy::too_many_arguments)]
fn gru_step(
    cx: &mut Ctx,
    sp: &Spec,
    acts: &[Act],
    gx: Value,
    gh: Value,
    hs: Value,
    rh: Value,
    yt: Option<(Value, i64)>,
    rhsrc: BSrc,
    rbhptr: Value,
    lbr: bool,
) -> R<()> {
    let (h, b) = (sp.hidden, sp.batch);
    let hb = (h * 4) as i64;
    // r (into the r slot of gx) and, before the reset, r∘h or the h-gate's recurrent part.
    cx.for_n(b, |cx, bi| {
        let g = cx.index(gx, bi, 3 * hb);
        let hr = cx.index(hs, bi, hb);
        let rr = cx.index(rh, bi, hb);
        cx.vec_loop(h, &mut |cx, l, off| {
            let ty = l.ty(types::F32);
            let ga = cx.b.ins().iadd(g, off);
            let gr = cx.load(ty, ga, hb);
            let gr = clip(cx, l, gr, sp.clip);
            let r = apply(cx, l, acts[0], gr);
            cx.store(r, ga, hb);
            if !lbr {
                let ha = cx.b.ins().iadd(hr, off);
                let hv = cx.load(ty, ha, 0);
                let v = cx.b.ins().fmul(r, hv);
                let ra = cx.b.ins().iadd(rr, off);
                cx.store(v, ra, 0);
            }
            Ok(())
        })
    })?;
    // gh_h = (r∘h or h) Rh^T + Rbh
    let a_src = if lbr { hs } else { rh };
    emit(
        cx,
        &Gemm {
            m: b,
            n: h,
            k: h,
            a: (a_src, h as i64, 1),
            a_panel: false,
            b: rhsrc,
            c: (gh, h as i64),
            epi: Epilogue {
                alpha: 1.0,
                bias: Some((rbhptr, 0, 1, 1.0)),
                row_bias: None,
                act: None,
            },
        },
    )?;
    cx.for_n(b, |cx, bi| {
        let g = cx.index(gx, bi, 3 * hb);
        let ghr = cx.index(gh, bi, hb);
        let hr = cx.index(hs, bi, hb);
        let yr = yt.map(|(y, rs)| cx.index(y, bi, rs));
        cx.vec_loop(h, &mut |cx, l, off| {
            let ty = l.ty(types::F32);
            let ga = cx.b.ins().iadd(g, off);
            let gz = cx.load(ty, ga, 0);
            let gz = clip(cx, l, gz, sp.clip);
            let z = apply(cx, l, acts[0], gz);
            let r = cx.load(ty, ga, hb);
            let gxh = cx.load(ty, ga, 2 * hb);
            let gha = cx.b.ins().iadd(ghr, off);
            let ghh = cx.load(ty, gha, 0);
            let pre = if lbr {
                cx.fma(r, ghh, gxh)
            } else {
                cx.b.ins().fadd(gxh, ghh)
            };
            let pre = clip(cx, l, pre, sp.clip);
            let hh = apply(cx, l, acts[1], pre);
            let ha = cx.b.ins().iadd(hr, off);
            let hv = cx.load(ty, ha, 0);
            // (1 - z) hh + z h = hh + z (h - hh)
            let dlt = cx.b.ins().fsub(hv, hh);
            let h_new = cx.fma(z, dlt, hh);
            cx.store(h_new, ha, 0);
            if let Some(yr) = yr {
                let ya = cx.b.ins().iadd(yr, off);
                cx.store(h_new, ya, 0);
            }
            Ok(())
        })
    })
}
