//! LSTM and GRU (forward, reverse, bidirectional; initial states; LSTM peepholes, clip and
//! input_forget; GRU linear_before_reset) as native loops over time, not unrolled.
//!
//! Per direction and time step, the input and recurrent products run through the matrix
//! kernel ([`super::matmul`]) with the weights packed at compile time (biases folded into the
//! first product's epilogue, the recurrent product accumulating onto it), then one pointwise
//! pass over the hidden units, four at a time, applies the gate activations and updates the
//! states in the node's arena scratch. Layout 0 (`[seq, batch, ...]`) only; `sequence_lens`
//! only when constant and equal to the sequence length; activations Sigmoid, Tanh and Relu.

use super::matmul::{emit, pack_b, BSrc, Epilogue, Gemm};
use super::{math, Ctx, Lanes, NodeIo, R};
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
    if layout != 0 {
        return Err("recurrent layout 1 is not supported".into());
    }
    let ins = g.node_inputs(id);
    let dims = |i: usize| -> R<Vec<usize>> {
        ins.get(i)
            .copied()
            .flatten()
            .and_then(|v| g.value_type(v).static_dims())
            .ok_or_else(|| format!("input {i} has no static shape"))
    };
    let x = dims(0)?;
    let w = dims(1)?;
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
    let want: [(usize, Vec<usize>); 5] = [
        (2, vec![dirs, gates * hidden, hidden]),
        (3, vec![dirs, 2 * gates * hidden]),
        (5, vec![dirs, x[1], hidden]),
        (6, vec![dirs, x[1], hidden]),
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
    for i in [1usize, 2, 3, 7] {
        if let Some(v) = ins.get(i).copied().flatten() {
            if g.const_value(v).is_none() {
                return Err("W, R, B and P must be constants".into());
            }
        }
    }
    if let Some(v) = ins.get(4).copied().flatten() {
        let lens = g
            .const_value(v)
            .and_then(|t| t.to_i64_vec())
            .ok_or("sequence_lens must be constant")?;
        if lens.iter().any(|l| *l != x[0] as i64) {
            return Err("sequence_lens shorter than the sequence are not supported".into());
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
        // gates x2 (input and recurrent parts for GRU), h, c, r∘h
        Ok(s) => (s.batch * (2 * s.gates * s.hidden + 3 * s.hidden) * 4) as u64,
        Err(_) => 0,
    }
}

fn floats(io: &NodeIo, i: usize) -> Option<Vec<f32>> {
    io.konst(i).and_then(|t| t.to_f32_vec())
}

/// Lowers LSTM and GRU.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let sp = spec(io.g, io.id)?;
    let (lstm, input_forget, lbr) = match io.op() {
        Op::LSTM(o) => (true, o.input_forget != 0, false),
        Op::GRU(o) => (false, false, o.linear_before_reset != 0),
        _ => return Err("not a recurrent op".into()),
    };
    let (gn, h, b, i_n) = (sp.gates, sp.hidden, sp.batch, sp.input);
    let w = floats(io, 1).ok_or("W must be an f32 constant")?;
    let r = floats(io, 2).ok_or("R must be an f32 constant")?;
    let bias = floats(io, 3).unwrap_or_else(|| vec![0.0; sp.dirs * 2 * gn * h]);
    let peep = floats(io, 7);
    let x = io.input(0)?;
    let xp = cx.addr(io.g, x)?;
    let init_h = match io.opt_input(5) {
        Some(o) => Some(cx.addr(io.g, o)?),
        None => None,
    };
    let init_c = match io.opt_input(6) {
        Some(o) if lstm => Some(cx.addr(io.g, o)?),
        _ => None,
    };
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
    let hb = (h * 4) as i64;

    for d in 0..sp.dirs {
        let reverse = sp.reverse_only || d == 1;
        let acts = &sp.acts[d * sp.acts.len() / sp.dirs..(d + 1) * sp.acts.len() / sp.dirs];
        // Packed W^T [I, G*H] and R^T [H, G*H] (GRU: the h-gate columns of R apart).
        let wd = &w[d * gn * h * i_n..(d + 1) * gn * h * i_n];
        let rd = &r[d * gn * h * h..(d + 1) * gn * h * h];
        let wpk = pack_b(i_n, gn * h, &|k, j| wd[j * i_n + k]);
        let wptr = cx.add_f32s(&wpk);
        let rcols = if lstm { gn * h } else { 2 * h };
        let rpk = pack_b(h, rcols, &|k, j| rd[j * h + k]);
        let rptr = cx.add_f32s(&rpk);
        let rh_pk = pack_b(h, h, &|k, j| rd[(2 * h + j) * h + k]);
        let rhptr = cx.add_f32s(&rh_pk);
        let bd = &bias[d * 2 * gn * h..(d + 1) * 2 * gn * h];
        let (wb, rb) = bd.split_at(gn * h);
        // Input-side bias: every Wb, plus Rb where it simply adds.
        let xbias: Vec<f32> = (0..gn * h)
            .map(|j| {
                let add_rb = lstm || j < 2 * h || !lbr;
                wb[j] + if add_rb { rb[j] } else { 0.0 }
            })
            .collect();
        let xbptr = cx.add_f32s(&xbias);
        let rbh: Vec<f32> = if lbr {
            rb[2 * h..].to_vec()
        } else {
            vec![0.0; h]
        };
        let rbhptr = cx.add_f32s(&rbh);
        let pd: Option<Value> = peep
            .as_ref()
            .map(|p| cx.add_f32s(&p[d * 3 * h..(d + 1) * 3 * h]));

        // Initial states.
        for (dst, src) in [(hs, init_h), (cs, init_c)] {
            match src {
                Some(s) => {
                    let s = cx.offset(s, (d * b * h * 4) as i64);
                    super::shape::copy_bytes(cx, s, dst, b * h * 4)?;
                }
                None => super::shape::fill(cx, dst, b * h, &[0, 0, 0, 0])?,
            }
        }
        let seq = sp.seq;
        cx.for_n(seq, |cx, t| {
            let tt = if reverse {
                let n = cx.b.ins().ineg(t);
                cx.b.ins().iadd_imm_s(n, seq as i64 - 1)
            } else {
                t
            };
            let xt = cx.index(xp, tt, (b * i_n * 4) as i64);
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
                    a: (xt, i_n as i64, 1),
                    b: BSrc::Packed(wptr),
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
                    b: BSrc::Packed(rptr),
                    c: (gx, (gn * h) as i64),
                    epi: Epilogue {
                        bias: Some((gx, (gn * h) as i64, 1, 1.0)),
                        ..nil
                    },
                },
            )?;
            let yt = match y {
                Some(y) => {
                    let a = cx.index(y, tt, (sp.dirs * b * h * 4) as i64);
                    Some(cx.offset(a, (d * b * h * 4) as i64))
                }
                None => None,
            };
            if lstm {
                lstm_step(cx, &sp, acts, gx, hs, cs, yt, pd, input_forget)
            } else {
                gru_step(cx, &sp, acts, gx, gh, hs, rh, yt, rhptr, rbhptr, lbr)
            }
        })?;
        for (src, dst) in [(hs, yh), (cs, yc)] {
            if let Some(dst) = dst {
                let dd = cx.offset(dst, (d * b * h * 4) as i64);
                super::shape::copy_bytes(cx, src, dd, b * h * 4)?;
            }
        }
    }
    let _ = hb;
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
    yt: Option<Value>,
    peep: Option<Value>,
    input_forget: bool,
) -> R<()> {
    let h = sp.hidden;
    let hb = (h * 4) as i64;
    cx.for_n(sp.batch, |cx, bi| {
        let g = cx.index(gx, bi, 4 * hb);
        let hr = cx.index(hs, bi, hb);
        let cr = cx.index(cs, bi, hb);
        let yr = yt.map(|y| cx.index(y, bi, hb));
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
    yt: Option<Value>,
    rhptr: Value,
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
            b: BSrc::Packed(rhptr),
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
        let yr = yt.map(|y| cx.index(y, bi, hb));
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
