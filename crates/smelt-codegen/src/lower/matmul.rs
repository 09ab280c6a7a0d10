//! Gemm and MatMul (batched, numpy-broadcast batch dims, 1-D operands) through one
//! register-blocked micro-kernel.
//!
//! The kernel computes a 4×8 block of C in eight f32x4 accumulators: per step of K it loads
//! two vectors of B, broadcasts one element of A per row and issues eight FMAs (multiply + add
//! where FMA is not native). Row blocks of 4 and 8-column panels run as native loops; the
//! remainders (fewer rows, fewer columns) are the same kernel with static smaller extents.
//!
//! A constant B (the weights of Gemm/MatMul layers) is packed at compile time into panels of 8
//! columns, `K × 8` contiguous floats each, zero-padded, so the kernel streams it linearly. A
//! B computed at run time is read in place (row-major, or transposed with element loads).
//! Gemm's `alpha`, `beta` and `C` (broadcast to the output) are applied as the block is stored.

use super::elementwise::bcast_strides;
use super::{mf, Ctx, NodeIo, Operand, R};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::Variable;
use smelt_ir::{Op, Tensor};

const MR: usize = 4;
const NR: usize = 8;

/// How the kernel reads B for one matrix.
#[derive(Clone, Copy)]
pub(crate) enum BSrc {
    /// Packed panels: element (k, j) at `(j / 8) * K * 8 + k * 8 + j % 8`.
    Packed(Value),
    /// Element (k, j) at `k * ks + j * ns` (elements).
    Strided { ptr: Value, ks: i64, ns: i64 },
}

/// What happens to a block of `A·B` before it is stored.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue {
    pub alpha: f32,
    /// `beta * C[i, j]`, C at `ptr + i * rs + j * cs` (elements).
    pub bias: Option<(Value, i64, i64, f32)>,
    /// Per-row bias (conv-style): `+ bias[i]` at `ptr + i`.
    pub row_bias: Option<Value>,
    /// Fused activation (clamp) applied last.
    pub act: super::Act,
}

/// One matrix product `C[m×n] = epilogue(A[m×k] · B[k×n])`.
pub(crate) struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A's first element and its (row, col) strides in elements.
    pub a: (Value, i64, i64),
    /// A is packed in blocks of 4 rows, `[M/4][K][4]` (zero-padded rows), so the kernel
    /// streams it linearly; `a`'s strides are then unused. For constant A (Winograd's
    /// transformed weights), whose strided rows the hardware prefetcher follows poorly.
    pub a_panel: bool,
    pub b: BSrc,
    /// C's first element and its row stride in elements (columns contiguous).
    pub c: (Value, i64),
    pub epi: Epilogue,
}

/// Packs a `k × n` matrix given by `at(kk, j)` into 8-column panels.
pub(crate) fn pack_b(k: usize, n: usize, at: &dyn Fn(usize, usize) -> f32) -> Vec<f32> {
    let panels = n.div_ceil(NR);
    let mut out = vec![0f32; panels * k * NR];
    for p in 0..panels {
        for kk in 0..k {
            for l in 0..NR {
                let j = p * NR + l;
                if j < n {
                    out[p * k * NR + kk * NR + l] = at(kk, j);
                }
            }
        }
    }
    out
}

/// A vector of 4 floats at `ptr + lane * cs` (elements), only the first `valid` lanes read.
fn load_lanes(cx: &mut Ctx, ptr: Value, cs: i64, valid: usize) -> Value {
    if cs == 0 {
        let s = cx.load(types::F32, ptr, 0);
        return cx.b.ins().splat(types::F32X4, s);
    }
    if cs == 1 && valid >= 4 {
        return cx.load(types::F32X4, ptr, 0);
    }
    let mut v = cx.fconst(super::Lanes::Four, 0.0);
    for l in 0..valid.min(4) {
        let s = cx.load(types::F32, ptr, l as i64 * cs * 4);
        v = cx.b.ins().insertlane(v, s, l as u8);
    }
    v
}

/// Stores the first `valid` lanes of `v` at `ptr` (contiguous).
fn store_lanes(cx: &mut Ctx, v: Value, ptr: Value, valid: usize) {
    if valid >= 4 {
        cx.store(v, ptr, 0);
        return;
    }
    for l in 0..valid {
        let s = cx.b.ins().extractlane(v, l as u8);
        cx.store(s, ptr, l as i64 * 4);
    }
}

/// Panels of 8 columns per block for `mr` rows: about eight accumulators in all.
fn panels_for(mr: usize) -> usize {
    match mr {
        1 => 4,
        2 => 2,
        _ => 1,
    }
}

/// Emits one `mr × cols` block at rows `i0..` from panel `p` on (both runtime values);
/// `cols` may span several panels (see [`panels_for`]).
fn block(cx: &mut Ctx, gm: &Gemm, mr: usize, cols: usize, i0: Value, p: Value) -> R<()> {
    let nv = cols.div_ceil(4);
    let zero = cx.fconst(super::Lanes::Four, 0.0);
    // Narrow products (a batch-1 classifier's last layer: one row, a few columns) have too
    // few accumulators to hide the FMA latency over a long K; they keep `sets` independent
    // sets, one per unrolled step, summed at the end.
    // Only when this block is the whole product: another summation order in some blocks
    // than in others would give equal columns (models with constant-filled weights, ties
    // that a later Softmax or ArgMax resolves) unequal roundings.
    let sets = if gm.k >= 8 && mr == gm.m && cols == gm.n {
        (12 / (mr * nv)).clamp(1, 4)
    } else {
        1
    };
    let accs: Vec<Variable> = (0..sets * mr * nv)
        .map(|_| cx.var(types::F32X4, zero))
        .collect();
    let (a_ptr, a_rs, a_cs) = gm.a;
    // Row pointers of A for this block.
    let (a_blk, a_step, a_r) = if gm.a_panel {
        (gm.k as i64 * 4, 16, 4)
    } else {
        (a_rs * 4, a_cs * 4, a_rs * 4)
    };
    let a_row = {
        let off = cx.b.ins().imul_imm_s(i0, a_blk);
        cx.b.ins().iadd(a_ptr, off)
    };
    let j0 = cx.b.ins().imul_imm_s(p, NR as i64);
    let b_base = match gm.b {
        BSrc::Packed(ptr) => {
            let off = cx.b.ins().imul_imm_s(p, (gm.k * NR * 4) as i64);
            cx.b.ins().iadd(ptr, off)
        }
        BSrc::Strided { ptr, ns, .. } => cx.index(ptr, j0, ns * 4),
    };
    // One step of K at `kk + u` (u static): loads of B and A, mr × nv FMAs.
    let step = |cx: &mut Ctx, kk: Value, u: usize| -> R<()> {
        // Vector h of B at this step: a load, emitted where it is wanted.
        let bp = match gm.b {
            BSrc::Packed(_) => cx.index(b_base, kk, (NR * 4) as i64),
            BSrc::Strided { ks, .. } => cx.index(b_base, kk, ks * 4),
        };
        let load_b = |cx: &mut Ctx, h: usize| -> Value {
            match gm.b {
                BSrc::Packed(_) => {
                    // Vector h: panel h / 2 (K x 8 floats further per panel), half h % 2.
                    let off = ((h / 2) * gm.k * NR * 4 + (h % 2) * 16 + u * NR * 4) as i64;
                    cx.load(types::F32X4, bp, off)
                }
                BSrc::Strided { ks, ns, .. } => {
                    let valid = cols.saturating_sub(h * 4).min(4);
                    let hp = cx.offset(bp, h as i64 * 4 * ns * 4 + u as i64 * ks * 4);
                    load_lanes(cx, hp, ns, valid)
                }
            }
        };
        let ap = cx.index(a_row, kk, a_step);
        let set = (u % sets) * mr * nv;
        if mr == 1 {
            // One row (batch-1 GEMV): each B vector feeds one FMA, so it is loaded right
            // before it (a memory operand of the FMA) instead of all up front, which would
            // hold nv + nv accumulators + 1 registers and spill.
            let a = cx.load(types::F32, ap, u as i64 * a_step);
            let a = cx.b.ins().splat(types::F32X4, a);
            for h in 0..nv {
                let b = load_b(cx, h);
                let var = accs[set + h];
                let acc = cx.b.use_var(var);
                // B first: x86's FMA overwrites its first factor, and B dies here while the
                // broadcast A lives on (no register copy per FMA).
                let s = cx.fma(b, a, acc);
                cx.b.def_var(var, s);
            }
            return Ok(());
        }
        let bv: Vec<Value> = (0..nv).map(|h| load_b(cx, h)).collect();
        for r in 0..mr {
            let a = cx.load(types::F32, ap, r as i64 * a_r + u as i64 * a_step);
            let a = cx.b.ins().splat(types::F32X4, a);
            for (h, b) in bv.iter().enumerate() {
                let var = accs[set + r * nv + h];
                let acc = cx.b.use_var(var);
                let s = cx.fma(a, *b, acc);
                cx.b.def_var(var, s);
            }
        }
        Ok(())
    };
    // K unrolled by four: the loop's counter, compare, branch and the accumulators' moves
    // at the back edge are paid once per four steps.
    let k = gm.k;
    let unroll = if k >= 8 { 4 } else { 1 };
    cx.for_n(k / unroll, |cx, q| {
        let kk = cx.b.ins().imul_imm_s(q, unroll as i64);
        for u in 0..unroll {
            step(cx, kk, u)?;
        }
        Ok(())
    })?;
    for kt in (k / unroll) * unroll..k {
        let kk = cx.iconst(kt as i64);
        step(cx, kk, 0)?;
    }
    // Epilogue and store.
    let (c_ptr, c_rs) = gm.c;
    let c_row = {
        let off = cx.b.ins().imul_imm_s(i0, c_rs * 4);
        let r = cx.b.ins().iadd(c_ptr, off);
        cx.index(r, j0, 4)
    };
    for r in 0..mr {
        for h in 0..nv {
            let valid = cols.saturating_sub(h * 4).min(4);
            let mut v = cx.b.use_var(accs[r * nv + h]);
            for set in 1..sets {
                let o = cx.b.use_var(accs[set * mr * nv + r * nv + h]);
                v = cx.b.ins().fadd(v, o);
            }
            if gm.epi.alpha != 1.0 {
                let al = cx.fconst(super::Lanes::Four, gm.epi.alpha);
                v = cx.b.ins().fmul(v, al);
            }
            if let Some((bp, rs, cs, beta)) = gm.epi.bias {
                let row = cx.b.ins().iadd_imm_s(i0, r as i64);
                let p0 = cx.index(bp, row, rs * 4);
                let p1 = cx.index(p0, j0, cs * 4);
                let p2 = cx.offset(p1, (h * 4) as i64 * cs * 4);
                let c = load_lanes(cx, p2, cs, valid);
                if beta == 1.0 {
                    v = cx.b.ins().fadd(v, c);
                } else {
                    let be = cx.fconst(super::Lanes::Four, beta);
                    v = cx.fma(c, be, v);
                }
            }
            if let Some(rb) = gm.epi.row_bias {
                let row = cx.b.ins().iadd_imm_s(i0, r as i64);
                let p0 = cx.index(rb, row, 4);
                let c = load_lanes(cx, p0, 0, 4);
                v = cx.b.ins().fadd(v, c);
            }
            v = super::apply_act(cx, v, gm.epi.act);
            let sp = cx.offset(c_row, (r as i64 * c_rs + (h * 4) as i64) * 4);
            store_lanes(cx, v, sp, valid);
        }
    }
    Ok(())
}

/// Emits the whole product.
pub(crate) fn emit(cx: &mut Ctx, gm: &Gemm) -> R<()> {
    let full_rows = gm.m / MR;
    let rem_rows = gm.m % MR;
    let cols_of = |cx: &mut Ctx, mr: usize, i0: Value| -> R<()> {
        let np = panels_for(mr);
        let width = np * NR;
        let full = gm.n / width;
        let rem = gm.n % width;
        cx.for_n(full, |cx, q| {
            let p = cx.b.ins().imul_imm_s(q, np as i64);
            block(cx, gm, mr, width, i0, p)
        })?;
        if rem > 0 {
            let p = cx.iconst((full * np) as i64);
            block(cx, gm, mr, rem, i0, p)?;
        }
        Ok(())
    };
    cx.for_n(full_rows, |cx, ib| {
        let i0 = cx.b.ins().imul_imm_s(ib, MR as i64);
        cols_of(cx, MR, i0)
    })?;
    if rem_rows > 0 {
        let i0 = cx.iconst((full_rows * MR) as i64);
        cols_of(cx, rem_rows, i0)?;
    }
    Ok(())
}

fn const_f32(t: &Tensor) -> R<Vec<f32>> {
    t.to_f32_vec().ok_or_else(|| "constant is not f32".into())
}

/// Lowers Gemm and MatMul.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    match io.op() {
        Op::Gemm(o) => {
            let a = io.input(0)?;
            let b = io.input(1)?;
            let y = io.output(0)?;
            if a.dims.len() != 2 || b.dims.len() != 2 {
                return Err("Gemm takes 2-D A and B".into());
            }
            let (m, k) = if o.trans_a {
                (a.dims[1], a.dims[0])
            } else {
                (a.dims[0], a.dims[1])
            };
            let n = *y.dims.get(1).ok_or("Gemm's output must be 2-D")?;
            let kb = if o.trans_b { b.dims[1] } else { b.dims[0] };
            let nb = if o.trans_b { b.dims[0] } else { b.dims[1] };
            if kb != k || nb != n || y.dims[0] != m {
                return Err("Gemm's operands do not fit".into());
            }
            let a_ptr = cx.addr(io.g, a)?;
            let a_st = if o.trans_a {
                (1, m as i64)
            } else {
                (k as i64, 1)
            };
            let bsrc = b_source(cx, io, b, 1, k, n, o.trans_b)?;
            let bias = match io.opt_input(2) {
                Some(c) if o.beta != 0.0 => {
                    let out = [m, n];
                    let pad = 2usize.saturating_sub(c.dims.len());
                    if c.dims.len() > 2
                        || c.dims
                            .iter()
                            .enumerate()
                            .any(|(k, d)| *d != 1 && *d != out[pad + k])
                    {
                        return Err(format!(
                            "Gemm's C {:?} does not broadcast to {out:?}",
                            c.dims
                        ));
                    }
                    let st = bcast_strides(&c.dims, &out);
                    let p = cx.addr(io.g, c)?;
                    Some((p, st[0], st[1], o.beta))
                }
                _ => None,
            };
            let c_ptr = cx.addr(io.g, y)?;
            emit(
                cx,
                &Gemm {
                    m,
                    n,
                    k,
                    a: (a_ptr, a_st.0, a_st.1),
                    a_panel: false,
                    b: bsrc,
                    c: (c_ptr, n as i64),
                    epi: Epilogue {
                        alpha: o.alpha,
                        bias,
                        row_bias: None,
                        act: io.act,
                    },
                },
            )
        }
        Op::MatMul(_) => {
            let a = io.input(0)?;
            let b = io.input(1)?;
            let y = io.output(0)?;
            if a.dims.is_empty() || b.dims.is_empty() {
                return Err("MatMul operands must have rank 1 or more".into());
            }
            // Promote 1-D operands to matrices.
            let a_dims = if a.dims.len() == 1 {
                vec![1, a.dims[0]]
            } else {
                a.dims.clone()
            };
            let b_dims = if b.dims.len() == 1 {
                vec![b.dims[0], 1]
            } else {
                b.dims.clone()
            };
            let (m, k) = (a_dims[a_dims.len() - 2], a_dims[a_dims.len() - 1]);
            let n = b_dims[b_dims.len() - 1];
            let a_batch = &a_dims[..a_dims.len() - 2];
            let b_batch = &b_dims[..b_dims.len() - 2];
            let rank = a_batch.len().max(b_batch.len());
            let mut batch = vec![1usize; rank];
            for (i, d) in batch.iter_mut().enumerate() {
                let x = a_batch
                    .len()
                    .checked_sub(rank - i)
                    .map(|j| a_batch[j])
                    .unwrap_or(1);
                let z = b_batch
                    .len()
                    .checked_sub(rank - i)
                    .map(|j| b_batch[j])
                    .unwrap_or(1);
                *d = x.max(z);
            }
            let a_st: Vec<i64> = bcast_strides(a_batch, &batch)
                .iter()
                .map(|s| s * (m * k * 4) as i64)
                .collect();
            let nb_b: usize = b_batch.iter().product();
            let b_elems = if io.konst(1).is_some() {
                n.div_ceil(NR) * NR * k
            } else {
                k * n
            };
            let b_st: Vec<i64> = bcast_strides(b_batch, &batch)
                .iter()
                .map(|s| s * (b_elems * 4) as i64)
                .collect();
            let c_st: Vec<i64> = super::strides(&batch)
                .iter()
                .map(|s| s * (m * n * 4) as i64)
                .collect();
            let _ = nb_b;
            if y.len() != batch.iter().product::<usize>() * m * n
                || a_dims.len() < 2
                || b_dims[b_dims.len() - 2] != k
            {
                return Err("MatMul's operands do not fit".into());
            }
            let a_ptr = cx.addr(io.g, a)?;
            let b_src = b_source(cx, io, b, b_batch.iter().product(), k, n, false)?;
            let c_ptr = cx.addr(io.g, y)?;
            let (b_ptr, packed, ks, ns) = match b_src {
                BSrc::Packed(p) => (p, true, 0, 0),
                BSrc::Strided { ptr, ks, ns } => (ptr, false, ks, ns),
            };
            let _ = y;
            cx.nest(
                &batch,
                &[a_st, b_st, c_st],
                vec![a_ptr, b_ptr, c_ptr],
                &mut |cx, p| {
                    let b = if packed {
                        BSrc::Packed(p[1])
                    } else {
                        BSrc::Strided { ptr: p[1], ks, ns }
                    };
                    emit(
                        cx,
                        &Gemm {
                            m,
                            n,
                            k,
                            a: (p[0], k as i64, 1),
                            a_panel: false,
                            b,
                            c: (p[2], n as i64),
                            epi: Epilogue {
                                alpha: 1.0,
                                bias: None,
                                row_bias: None,
                                act: io.act,
                            },
                        },
                    )
                },
            )
        }
        op => Err(format!("{} is not a matrix product", op.op_type())),
    }
}

/// B as the kernel reads it: packed at compile time when constant (`batches` matrices of
/// `k × n`, or `n × k` when `trans`), else in place.
fn b_source(
    cx: &mut Ctx,
    io: &NodeIo,
    b: &Operand,
    batches: usize,
    k: usize,
    n: usize,
    trans: bool,
) -> R<BSrc> {
    if let Some(t) = io.konst(1) {
        let w = const_f32(t)?;
        let mut packed = vec![];
        for bi in 0..batches.max(1) {
            let base = bi * k * n;
            let at = |kk: usize, j: usize| {
                let idx = if trans { j * k + kk } else { kk * n + j };
                w.get(base + idx).copied().unwrap_or(0.0)
            };
            packed.extend(pack_b(k, n, &at));
        }
        let ptr = cx.add_f32s(&packed);
        return Ok(BSrc::Packed(ptr));
    }
    let ptr = cx.addr(io.g, b)?;
    let _ = mf;
    Ok(if trans {
        BSrc::Strided {
            ptr,
            ks: 1,
            ns: k as i64,
        }
    } else {
        BSrc::Strided {
            ptr,
            ks: n as i64,
            ns: 1,
        }
    })
}
