//! Data movement: copies, reshapes, Transpose, Concat, Split, Slice, Gather, Expand, Tile, Pad,
//! and the shape-valued ops (Shape, Size, ConstantOfShape), whose results are static.
//!
//! Reshaping ops are aliases in the memory plan and reach this module only when their output
//! must be a copy (a graph output). Everything else is one strided copy nest: static dims,
//! per-operand strides, contiguous rows copied 16 bytes at a time.

use super::elementwise::map;
use super::{axis, mf, strides, Ctx, NodeIo, Operand, R};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smelt_ir::{DType, Graph, Op};

/// Copies `n` bytes from `src` to `dst` (static size).
pub(crate) fn copy_bytes(cx: &mut Ctx, src: Value, dst: Value, n: usize) -> R<()> {
    let chunks = n / 16;
    if chunks > 0 {
        cx.for_n(chunks, |cx, i| {
            let off = cx.b.ins().imul_imm_s(i, 16);
            let s = cx.b.ins().iadd(src, off);
            let d = cx.b.ins().iadd(dst, off);
            let v = cx.b.ins().load(types::I8X16, mf(), s, 0);
            cx.b.ins().store(mf(), v, d, 0);
            Ok(())
        })?;
    }
    let mut at = chunks * 16;
    for (w, ty) in [
        (8, types::I64),
        (4, types::I32),
        (2, types::I16),
        (1, types::I8),
    ] {
        while n - at >= w {
            let v = cx.load(ty, src, at as i64);
            cx.store(v, dst, at as i64);
            at += w;
        }
    }
    Ok(())
}

/// Copies a whole operand into another of the same byte size.
pub(crate) fn copy(cx: &mut Ctx, g: &Graph, src: &Operand, dst: &Operand) -> R<()> {
    let s = cx.addr(g, src)?;
    let d = cx.addr(g, dst)?;
    let n = src.len() * src.elem();
    if n != dst.len() * dst.elem() {
        return Err("copy between tensors of different sizes".into());
    }
    copy_bytes(cx, s, d, n)
}

/// Copies a box of `dims` elements of `elem` bytes: element `i` moves from
/// `src + Σ i_k src_st[k]` to `dst + Σ i_k dst_st[k]` (strides in elements, may be negative).
pub(crate) fn copy_nest(
    cx: &mut Ctx,
    dims: &[usize],
    src: Value,
    src_st: &[i64],
    dst: Value,
    dst_st: &[i64],
    elem: usize,
) -> R<()> {
    if dims.contains(&0) {
        return Ok(());
    }
    // Drop unit dims and merge dims contiguous in both.
    let mut d: Vec<usize> = vec![];
    let mut ss: Vec<i64> = vec![];
    let mut ds: Vec<i64> = vec![];
    for k in 0..dims.len() {
        if dims[k] != 1 {
            d.push(dims[k]);
            ss.push(src_st[k]);
            ds.push(dst_st[k]);
        }
    }
    let mut k = d.len();
    while k >= 2 {
        let (a, b) = (k - 2, k - 1);
        if ss[a] == ss[b] * d[b] as i64 && ds[a] == ds[b] * d[b] as i64 {
            d[b] *= d[a];
            d.remove(a);
            ss.remove(a);
            ds.remove(a);
        }
        k -= 1;
    }
    let e = elem as i64;
    let contiguous_inner = d.last().is_none() || (ss.last() == Some(&1) && ds.last() == Some(&1));
    let (outer, row) = if contiguous_inner {
        let row = d.last().copied().unwrap_or(1);
        (d.len().saturating_sub(1), row)
    } else {
        (d.len(), 1)
    };
    let st = vec![
        ss[..outer].iter().map(|x| x * e).collect::<Vec<_>>(),
        ds[..outer].iter().map(|x| x * e).collect::<Vec<_>>(),
    ];
    let ty = match elem {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        8 => types::I64,
        _ => return Err(format!("{elem}-byte elements are not supported")),
    };
    cx.nest(&d[..outer], &st, vec![src, dst], &mut |cx, p| {
        if contiguous_inner {
            copy_bytes(cx, p[0], p[1], row * elem)
        } else {
            let v = cx.load(ty, p[0], 0);
            cx.store(v, p[1], 0);
            Ok(())
        }
    })
}

/// Fills `n` elements of `elem` bytes at `dst` with the little-endian `pattern`.
pub(crate) fn fill(cx: &mut Ctx, dst: Value, n: usize, pattern: &[u8]) -> R<()> {
    let elem = pattern.len();
    let mut word = [0u8; 16];
    if elem == 0 || 16 % elem != 0 {
        return Err("unsupported fill element size".into());
    }
    for i in 0..16 {
        word[i] = pattern[i % elem];
    }
    let lo = i64::from_le_bytes(word[..8].try_into().map_err(|_| "fill")?);
    let total = n * elem;
    let v64 = cx.iconst(lo);
    let v128 = cx.b.ins().splat(types::I64X2, v64);
    let chunks = total / 16;
    cx.for_n(chunks, |cx, i| {
        let off = cx.b.ins().imul_imm_s(i, 16);
        let d = cx.b.ins().iadd(dst, off);
        cx.b.ins().store(mf(), v128, d, 0);
        Ok(())
    })?;
    let mut at = chunks * 16;
    for (w, ty) in [
        (8, types::I64),
        (4, types::I32),
        (2, types::I16),
        (1, types::I8),
    ] {
        while total - at >= w {
            let v = cx.b.ins().iconst(ty, lo & mask(w));
            cx.store(v, dst, at as i64);
            at += w;
        }
    }
    Ok(())
}

fn mask(w: usize) -> i64 {
    if w >= 8 {
        -1
    } else {
        (1i64 << (w * 8)) - 1
    }
}

/// Lowers the data-movement ops.
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let g = io.g;
    match io.op() {
        Op::Identity(_) | Op::Reshape(_) | Op::Flatten(_) | Op::Squeeze(_) | Op::Unsqueeze(_) => {
            let x = io.input(0)?;
            let y = io.output(0)?;
            copy(cx, g, x, y)
        }
        Op::Dropout(_) => {
            let x = io.input(0)?;
            let y = io.output(0)?;
            if x.v != y.v && cx_needs_copy(io) {
                copy(cx, g, x, y)?;
            }
            if let Some(Some(mask)) = io.outs.get(1) {
                let m = cx.addr(g, mask)?;
                fill(cx, m, mask.len(), &[1])?;
            }
            Ok(())
        }
        Op::Transpose(t) => {
            let x = io.input(0)?;
            let y = io.output(0)?;
            let r = x.dims.len();
            let perm: Vec<usize> = match &t.perm {
                Some(p) => p.iter().map(|a| axis(*a, r)).collect::<R<_>>()?,
                None => (0..r).rev().collect(),
            };
            if perm.len() != r || y.dims.len() != r {
                return Err("Transpose's perm does not fit the input rank".into());
            }
            let xs = strides(&x.dims);
            let src_st: Vec<i64> = perm.iter().map(|p| xs[*p]).collect();
            let dst_st = strides(&y.dims);
            let s = cx.addr(g, x)?;
            let d = cx.addr(g, y)?;
            copy_nest(cx, &y.dims, s, &src_st, d, &dst_st, x.elem())
        }
        Op::Concat(c) => {
            let y = io.output(0)?;
            let a = axis(c.axis, y.dims.len())?;
            parts_fit(io.ins.iter().flatten(), y, a)?;
            let ys = strides(&y.dims);
            let d0 = cx.addr(g, y)?;
            let mut at = 0usize;
            for x in io.ins.iter().flatten() {
                if x.dims.len() != y.dims.len() {
                    return Err("Concat inputs differ in rank".into());
                }
                let s = cx.addr(g, x)?;
                let d = cx.offset(d0, (at as i64) * ys[a] * y.elem() as i64);
                copy_nest(cx, &x.dims, s, &strides(&x.dims), d, &ys, x.elem())?;
                at += x.dims[a];
            }
            Ok(())
        }
        Op::Split(sp) => {
            let x = io.input(0)?;
            let a = axis(sp.axis, x.dims.len())?;
            parts_fit(io.outs.iter().flatten(), x, a)?;
            let xs = strides(&x.dims);
            let s0 = cx.addr(g, x)?;
            let mut at = 0usize;
            for y in io.outs.iter() {
                let Some(y) = y else {
                    continue;
                };
                if y.dims.len() != x.dims.len() {
                    return Err("Split outputs differ in rank from the input".into());
                }
                let s = cx.offset(s0, (at as i64) * xs[a] * x.elem() as i64);
                let d = cx.addr(g, y)?;
                copy_nest(cx, &y.dims, s, &xs, d, &strides(&y.dims), x.elem())?;
                at += y.dims[a];
            }
            Ok(())
        }
        Op::Slice(_) if io.konst(1).is_none() || io.konst(2).is_none() => run_time_slice(cx, io),
        Op::Slice(_) => {
            let x = io.input(0)?;
            let y = io.output(0)?;
            let r = x.dims.len();
            let starts = io.const_ints(1).ok_or("Slice's starts must be constant")?;
            let ends = io.const_ints(2).ok_or("Slice's ends must be constant")?;
            let axes: Vec<i64> = match io.opt_input(3) {
                Some(_) => io.const_ints(3).ok_or("Slice's axes must be constant")?,
                None => (0..starts.len() as i64).collect(),
            };
            let steps: Vec<i64> = match io.opt_input(4) {
                Some(_) => io.const_ints(4).ok_or("Slice's steps must be constant")?,
                None => vec![1; starts.len()],
            };
            let xs = strides(&x.dims);
            let mut first = vec![0i64; r];
            let mut step = vec![1i64; r];
            if ends.len() != starts.len() {
                return Err("Slice's ends do not fit its starts".into());
            }
            for (i, start) in starts.iter().enumerate() {
                let a = axis(*axes.get(i).ok_or("bad Slice axes")?, r)?;
                let st = *steps.get(i).ok_or("bad Slice steps")?;
                if st == 0 {
                    return Err("Slice step 0".into());
                }
                let d = x.dims[a] as i64;
                let mut s = *start;
                if s < 0 {
                    s += d;
                }
                s = if st > 0 {
                    s.clamp(0, d)
                } else {
                    s.clamp(0, (d - 1).max(0))
                };
                first[a] = s;
                step[a] = st;
            }
            if y.dims.len() != r {
                return Err("Slice's output rank differs from the input".into());
            }
            for k in 0..r {
                let n = y.dims[k] as i64;
                let last = first[k] + (n - 1) * step[k];
                if n > 0 && (first[k] >= x.dims[k] as i64 || last < 0 || last >= x.dims[k] as i64) {
                    return Err("Slice reads outside its input".into());
                }
            }
            let off: i64 = (0..r).map(|k| first[k] * xs[k]).sum();
            let src_st: Vec<i64> = (0..r).map(|k| step[k] * xs[k]).collect();
            let s = cx.addr(g, x)?;
            let s = cx.offset(s, off * x.elem() as i64);
            let d = cx.addr(g, y)?;
            copy_nest(cx, &y.dims, s, &src_st, d, &strides(&y.dims), x.elem())
        }
        Op::Expand(_) => {
            let x = io.input(0)?.clone();
            let y = io.output(0)?.clone();
            map(cx, io, &y, &[&x], &|_, _, a| Ok(a[0]))
        }
        Op::Tile(_) => {
            let x = io.input(0)?;
            let y = io.output(0)?;
            let r = x.dims.len();
            if y.dims.len() != r {
                return Err("Tile's output rank differs from the input".into());
            }
            let ys = strides(&y.dims);
            let xs = strides(&x.dims);
            // Dims (rep_0, .., rep_r-1, in_0, .., in_r-1) interleaved as (rep_k, in_k).
            let mut dims = vec![];
            let mut ss = vec![];
            let mut ds = vec![];
            for k in 0..r {
                let reps = y.dims[k] / x.dims[k].max(1);
                dims.push(reps);
                ss.push(0);
                ds.push(ys[k] * x.dims[k] as i64);
                dims.push(x.dims[k]);
                ss.push(xs[k]);
                ds.push(ys[k]);
            }
            let s = cx.addr(g, x)?;
            let d = cx.addr(g, y)?;
            copy_nest(cx, &dims, s, &ss, d, &ds, x.elem())
        }
        Op::Gather(ga) => gather(cx, io, ga.axis),
        Op::GatherElements(ga) => gather_elements(cx, io, ga.axis),
        Op::Range(_) if (0..3).any(|i| io.konst(i).is_none()) => run_time_range(cx, io),
        Op::Range(_) => {
            // Static output extent means static start and delta: the values are constants.
            let y = io.output(0)?;
            let start = io
                .konst(0)
                .and_then(|t| t.to_f64_vec())
                .ok_or("Range's start must be constant")?;
            let delta = io
                .konst(2)
                .and_then(|t| t.to_f64_vec())
                .ok_or("Range's delta must be constant")?;
            let (s0, d) = (
                start.first().copied().unwrap_or(0.0),
                delta.first().copied().unwrap_or(1.0),
            );
            let n = y.len();
            let t = match y.dtype {
                DType::F32 | DType::F64 => smelt_ir::Tensor::from_f64s(
                    y.dtype,
                    vec![n],
                    &(0..n).map(|i| s0 + d * i as f64).collect::<Vec<_>>(),
                ),
                _ => smelt_ir::Tensor::from_i64s(
                    y.dtype,
                    vec![n],
                    &(0..n)
                        .map(|i| s0 as i64 + d as i64 * i as i64)
                        .collect::<Vec<_>>(),
                ),
            }
            .map_err(|e| e.to_string())?;
            let bytes = t.bytes().ok_or("Range of strings")?;
            let off = cx.add_weights(bytes);
            let src = cx.weights_at(off);
            let dst = cx.addr(g, y)?;
            copy_bytes(cx, src, dst, bytes.len())
        }
        Op::Pad(p) => pad(cx, io, &p.mode),
        Op::Shape(_) | Op::Size(_) | Op::ConstantOfShape(_) => {
            let y = io.output(0)?;
            let d = cx.addr(g, y)?;
            let bytes: Vec<u8> = match io.op() {
                Op::Shape(s) => {
                    let x = io.input(0)?;
                    let r = x.dims.len() as i64;
                    let norm = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                    let a = norm(s.start);
                    let b = norm(s.end.unwrap_or(r));
                    let dims: Vec<i64> = x.dims[a..b.max(a)].iter().map(|d| *d as i64).collect();
                    dims.iter().flat_map(|d| d.to_le_bytes()).collect()
                }
                Op::Size(_) => (io.input(0)?.len() as i64).to_le_bytes().to_vec(),
                Op::ConstantOfShape(c) => {
                    let pattern = match &c.value {
                        Some(t) => t.bytes().ok_or("string fill value")?.to_vec(),
                        None => vec![0u8; 4],
                    };
                    return fill(cx, d, y.len(), &pattern);
                }
                _ => vec![],
            };
            if bytes.len() != y.len() * y.elem() {
                return Err("the output does not hold the shape".into());
            }
            // Small: store the words directly.
            for (i, ch) in bytes.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..ch.len()].copy_from_slice(ch);
                let v = cx.b.ins().iconst(types::I64, i64::from_le_bytes(w));
                cx.store(v, d, (i * 8) as i64);
            }
            Ok(())
        }
        op => Err(format!("{} is not a data-movement op", op.op_type())),
    }
}

/// Checks that the parts of a Concat or Split tile `whole` along axis `a`.
fn parts_fit<'a>(parts: impl Iterator<Item = &'a Operand>, whole: &Operand, a: usize) -> R<()> {
    let mut sum = 0usize;
    for p in parts {
        if p.dims.len() != whole.dims.len()
            || p.elem() != whole.elem()
            || (0..p.dims.len()).any(|k| k != a && p.dims[k] != whole.dims[k])
        {
            return Err("the parts do not fit the whole tensor".into());
        }
        sum += p.dims[a];
    }
    if sum > whole.dims[a] {
        return Err("the parts exceed the whole tensor".into());
    }
    Ok(())
}

fn cx_needs_copy(io: &NodeIo) -> bool {
    // Reaching lowering means the plan did not alias the output.
    io.outs.first().is_some_and(|o| o.is_some())
}

fn gather(cx: &mut Ctx, io: &NodeIo, ax: i64) -> R<()> {
    let g = io.g;
    let x = io.input(0)?;
    let idx = io.input(1)?;
    let y = io.output(0)?;
    let a = axis(ax, x.dims.len())?;
    let outer: usize = x.dims[..a].iter().product();
    let n_axis = x.dims[a];
    let inner: usize = x.dims[a + 1..].iter().product();
    let n_idx = idx.len();
    let e = x.elem();
    if y.len() != outer * n_idx * inner || y.elem() != e {
        return Err("Gather's output does not fit its operands".into());
    }
    let xs = cx.addr(g, x)?;
    let is = cx.addr(g, idx)?;
    let ys = cx.addr(g, y)?;
    let ity = if idx.dtype == DType::I64 {
        types::I64
    } else {
        types::I32
    };
    let ie = if ity == types::I64 { 8 } else { 4 };
    if n_axis == 0 {
        return Ok(());
    }
    cx.for_n(outer, |cx, o| {
        cx.for_n(n_idx, |cx, j| {
            let ia = cx.index(is, j, ie);
            let iv = cx.load(ity, ia, 0);
            let iv = if ity == types::I32 {
                cx.b.ins().sextend(types::I64, iv)
            } else {
                iv
            };
            // Negative indices count from the end; out-of-range ones are clamped (never read
            // outside the tensor).
            let wrapped = cx.b.ins().iadd_imm_s(iv, n_axis as i64);
            let neg = cx.b.ins().icmp_imm_s(IntCC::SignedLessThan, iv, 0);
            let iv = cx.b.ins().select(neg, wrapped, iv);
            let zero = cx.iconst(0);
            let maxi = cx.iconst(n_axis as i64 - 1);
            let iv = cx.b.ins().smax(iv, zero);
            let iv = cx.b.ins().smin(iv, maxi);
            let ob = cx.b.ins().imul_imm_s(o, (n_axis * inner * e) as i64);
            let src = cx.b.ins().iadd(xs, ob);
            let src = cx.index(src, iv, (inner * e) as i64);
            let db = cx.b.ins().imul_imm_s(o, (n_idx * inner * e) as i64);
            let dst = cx.b.ins().iadd(ys, db);
            let dst = cx.index(dst, j, (inner * e) as i64);
            copy_bytes(cx, src, dst, inner * e)
        })
    })
}

/// GatherElements: `out[i] = x[i with i[axis] replaced by idx[i]]` (indices clamped).
fn gather_elements(cx: &mut Ctx, io: &NodeIo, ax: i64) -> R<()> {
    let g = io.g;
    let x = io.input(0)?;
    let idx = io.input(1)?;
    let y = io.output(0)?;
    let r = x.dims.len();
    let a = axis(ax, r)?;
    if idx.dims.len() != r || y.dims.len() != r {
        return Err("GatherElements' indices must have the data's rank".into());
    }
    let n_axis = x.dims[a] as i64;
    if n_axis == 0 {
        return Ok(());
    }
    if (0..r).any(|k| k != a && idx.dims[k] > x.dims[k]) || y.dims != idx.dims {
        return Err("GatherElements' indices do not fit the data".into());
    }
    let e = x.elem() as i64;
    let ie = idx.elem() as i64;
    let xs = strides(&x.dims);
    let ist = strides(&idx.dims);
    let ity = if idx.dtype == DType::I64 {
        types::I64
    } else {
        types::I32
    };
    let ety = match e {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    };
    // x offset of every dim but the axis, index and output offsets.
    let x_st: Vec<i64> = (0..r).map(|k| if k == a { 0 } else { xs[k] * e }).collect();
    let i_st: Vec<i64> = ist.iter().map(|s| s * ie).collect();
    let y_st: Vec<i64> = ist.iter().map(|s| s * e).collect();
    let xp = cx.addr(g, x)?;
    let ip = cx.addr(g, idx)?;
    let yp = cx.addr(g, y)?;
    let axis_st = xs[a] * e;
    cx.nest(
        &idx.dims,
        &[x_st, i_st, y_st],
        vec![xp, ip, yp],
        &mut |cx, p| {
            let iv = cx.load(ity, p[1], 0);
            let iv = if ity == types::I32 {
                cx.b.ins().sextend(types::I64, iv)
            } else {
                iv
            };
            let wrapped = cx.b.ins().iadd_imm_s(iv, n_axis);
            let neg = cx.b.ins().icmp_imm_s(IntCC::SignedLessThan, iv, 0);
            let iv = cx.b.ins().select(neg, wrapped, iv);
            let zero = cx.iconst(0);
            let maxi = cx.iconst(n_axis - 1);
            let iv = cx.b.ins().smax(iv, zero);
            let iv = cx.b.ins().smin(iv, maxi);
            let src = cx.index(p[0], iv, axis_st);
            let v = cx.load(ety, src, 0);
            cx.store(v, p[2], 0);
            Ok(())
        },
    )
}

/// Slice whose starts and ends are run-time values (a Loop body's iteration counter): the
/// output extents are static (binding fixed them), so the code computes the clamped start of
/// every sliced axis, checks that the run-time bounds give exactly the static extent (status 1
/// otherwise, never a wrong or partial answer) and copies from there. Axes and steps must be
/// constants.
fn run_time_slice(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let g = io.g;
    let x = io.input(0)?;
    let y = io.output(0)?;
    let (starts, ends) = (io.input(1)?, io.input(2)?);
    let r = x.dims.len();
    let k = starts.len();
    if y.dims.len() != r || ends.len() != k || starts.dims.len() != 1 || ends.dims.len() != 1 {
        return Err("Slice's bounds do not fit its input".into());
    }
    let axes: Vec<i64> = match io.opt_input(3) {
        Some(_) => io.const_ints(3).ok_or("Slice's axes must be constant")?,
        None => (0..k as i64).collect(),
    };
    let steps: Vec<i64> = match io.opt_input(4) {
        Some(_) => io.const_ints(4).ok_or("Slice's steps must be constant")?,
        None => vec![1; k],
    };
    if axes.len() != k || steps.len() != k || steps.contains(&0) {
        return Err("Slice's axes and steps do not fit its starts".into());
    }
    let int_ty = |o: &Operand| match o.dtype {
        DType::I64 => Ok(types::I64),
        DType::I32 => Ok(types::I32),
        d => Err(format!("Slice bounds of {d} are not supported")),
    };
    let (sty, ety) = (int_ty(starts)?, int_ty(ends)?);
    let xs = strides(&x.dims);
    let e = x.elem() as i64;
    let mut src_st: Vec<i64> = xs.iter().map(|s| s * e).collect();
    let sp = cx.addr(g, starts)?;
    let ep = cx.addr(g, ends)?;
    let mut src = cx.addr(g, x)?;
    let fail = cx.b.create_block();
    for i in 0..k {
        let a = axis(axes[i], r)?;
        let st = steps[i];
        let d = x.dims[a] as i64;
        let n = y.dims[a] as i64;
        let load = |cx: &mut Ctx, p: Value, ty: types::Type, sz: i64| {
            let v = cx.load(ty, p, i as i64 * sz);
            if ty == types::I64 {
                v
            } else {
                cx.b.ins().sextend(types::I64, v)
            }
        };
        // Clamp into [-d - 1, d] first (no overflow), then shift negatives by d and clamp to
        // the step direction's range, as ONNX does.
        let norm = |cx: &mut Ctx, v: Value, lo: i64, hi: i64| {
            let v = {
                let l = cx.iconst(-d - 1);
                let h = cx.iconst(d);
                let v = cx.b.ins().smax(v, l);
                cx.b.ins().smin(v, h)
            };
            let neg = cx.b.ins().icmp_imm_s(IntCC::SignedLessThan, v, 0);
            let shifted = cx.b.ins().iadd_imm_s(v, d);
            let v = cx.b.ins().select(neg, shifted, v);
            let l = cx.iconst(lo);
            let h = cx.iconst(hi);
            let v = cx.b.ins().smax(v, l);
            cx.b.ins().smin(v, h)
        };
        let s0 = load(cx, sp, sty, (sty.bits() / 8) as i64);
        let e0 = load(cx, ep, ety, (ety.bits() / 8) as i64);
        let (s1, e1) = if st > 0 {
            (norm(cx, s0, 0, d), norm(cx, e0, 0, d))
        } else {
            (norm(cx, s0, 0, d - 1), norm(cx, e0, -1, d - 1))
        };
        // Elements taken: ceil(span / |step|) for a positive span, else 0.
        let span = if st > 0 {
            cx.b.ins().isub(e1, s1)
        } else {
            cx.b.ins().isub(s1, e1)
        };
        let zero = cx.iconst(0);
        let span = cx.b.ins().smax(span, zero);
        let m = st.abs();
        let span = cx.b.ins().iadd_imm_s(span, m - 1);
        let count = cx.b.ins().udiv_imm_s(span, m);
        let bad = cx.b.ins().icmp_imm_s(IntCC::NotEqual, count, n);
        let ok = cx.b.create_block();
        cx.b.ins().brif(bad, fail, &[], ok, &[]);
        cx.b.seal_block(ok);
        cx.b.switch_to_block(ok);
        let off = cx.b.ins().imul_imm_s(s1, xs[a] * e);
        src = cx.b.ins().iadd(src, off);
        src_st[a] = st * xs[a] * e;
    }
    let cont = cx.b.create_block();
    cx.b.ins().jump(cont, &[]);
    cx.b.seal_block(fail);
    cx.b.switch_to_block(fail);
    let code = cx.b.ins().iconst(types::I32, 1);
    cx.b.ins().return_(&[code]);
    cx.b.seal_block(cont);
    cx.b.switch_to_block(cont);
    let d = cx.addr(g, y)?;
    let src_el: Vec<i64> = src_st.iter().map(|s| s / e).collect();
    copy_nest(cx, &y.dims, src, &src_el, d, &strides(&y.dims), x.elem())
}

/// Range whose start, limit or delta is a run-time value but whose output extent is static:
/// `start + i * delta` computed at run time (in f64 for floats, i64 for integers), after
/// checking that the bounds give exactly the static number of elements (status 1 otherwise).
fn run_time_range(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let g = io.g;
    let y = io.output(0)?;
    let n = y.len();
    let dt = y.dtype;
    let ty = super::clif_ty(dt).ok_or("Range of this dtype is not supported")?;
    let float = dt.is_float();
    let mut v = vec![];
    for i in 0..3 {
        let o = io.input(i)?;
        if o.len() != 1 || o.dtype != dt {
            return Err("Range's start, limit and delta must be scalars of one dtype".into());
        }
        let p = cx.addr(g, o)?;
        let x = cx.load(ty, p, 0);
        v.push(match (float, dt) {
            (true, DType::F64) => x,
            (true, _) => cx.b.ins().fpromote(types::F64, x),
            (false, DType::I64) => x,
            (false, _) => cx.b.ins().sextend(types::I64, x),
        });
    }
    let (start, limit, delta) = (v[0], v[1], v[2]);
    // The element count ONNX gives: max(ceil((limit - start) / delta), 0).
    let count = if float {
        let span = cx.b.ins().fsub(limit, start);
        let q = cx.b.ins().fdiv(span, delta);
        // ceil without a libcall: truncate, then add one where the truncation went down.
        let t = cx.b.ins().fcvt_to_sint_sat(types::I64, q);
        let tf = cx.b.ins().fcvt_from_sint(types::F64, t);
        let below = cx.b.ins().fcmp(FloatCC::LessThan, tf, q);
        let one = cx.iconst(1);
        let zero = cx.iconst(0);
        let inc = cx.b.ins().select(below, one, zero);
        let c = cx.b.ins().iadd(t, inc);
        cx.b.ins().smax(c, zero)
    } else {
        // Integer ceil division, with delta 0 giving no elements.
        let span = cx.b.ins().isub(limit, start);
        let zero = cx.iconst(0);
        let one = cx.iconst(1);
        let dz = cx.b.ins().icmp_imm_s(IntCC::Equal, delta, 0);
        let d = cx.b.ins().select(dz, one, delta);
        let q = cx.b.ins().sdiv(span, d);
        let back = cx.b.ins().imul(q, d);
        let rem = cx.b.ins().icmp(IntCC::NotEqual, back, span);
        let same_sign = {
            let x = cx.b.ins().bxor(span, d);
            cx.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, x, 0)
        };
        let up = cx.b.ins().band(rem, same_sign);
        let inc = cx.b.ins().select(up, one, zero);
        let c = cx.b.ins().iadd(q, inc);
        let c = cx.b.ins().smax(c, zero);
        cx.b.ins().select(dz, zero, c)
    };
    let bad = cx.b.ins().icmp_imm_s(IntCC::NotEqual, count, n as i64);
    let fail = cx.b.create_block();
    let ok = cx.b.create_block();
    cx.b.ins().brif(bad, fail, &[], ok, &[]);
    cx.b.seal_block(fail);
    cx.b.switch_to_block(fail);
    let code = cx.b.ins().iconst(types::I32, 1);
    cx.b.ins().return_(&[code]);
    cx.b.seal_block(ok);
    cx.b.switch_to_block(ok);
    let yp = cx.addr(g, y)?;
    let e = y.elem() as i64;
    cx.for_n(n, |cx, i| {
        let r = if float {
            let fi = cx.b.ins().fcvt_from_sint(types::F64, i);
            let m = cx.b.ins().fmul(fi, delta);
            let r = cx.b.ins().fadd(start, m);
            if dt == DType::F64 {
                r
            } else {
                cx.b.ins().fdemote(ty, r)
            }
        } else {
            let m = cx.b.ins().imul(i, delta);
            let r = cx.b.ins().iadd(start, m);
            if ty == types::I64 {
                r
            } else {
                cx.b.ins().ireduce(ty, r)
            }
        };
        let a = cx.index(yp, i, e);
        cx.store(r, a, 0);
        Ok(())
    })
}

/// The integer Cranelift type of an element of `e` bytes (for moving elements as bits).
fn clif_ty_of(e: usize) -> R<types::Type> {
    Ok(match e {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        8 => types::I64,
        _ => return Err(format!("elements of {e} bytes are not supported")),
    })
}

fn pad(cx: &mut Ctx, io: &NodeIo, mode: &str) -> R<()> {
    let g = io.g;
    let x = io.input(0)?;
    let y = io.output(0)?;
    let r = x.dims.len();
    if y.dims.len() != r {
        return Err("Pad's output rank differs from the input".into());
    }
    let pads = io.const_ints(1).ok_or("Pad's pads must be constant")?;
    let axes: Vec<usize> = match io.opt_input(3) {
        Some(_) => io
            .const_ints(3)
            .ok_or("Pad's axes must be constant")?
            .iter()
            .map(|a| axis(*a, r))
            .collect::<R<_>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err("Pad's pads do not fit its axes".into());
    }
    let mut begin = vec![0i64; r];
    for (i, a) in axes.iter().enumerate() {
        begin[*a] = pads[i];
    }
    if pads.iter().any(|p| *p < 0) {
        return Err("negative pads are not supported".into());
    }
    let e = x.elem();
    let xs = cx.addr(g, x)?;
    let ys = cx.addr(g, y)?;
    let xst = strides(&x.dims);
    let yst = strides(&y.dims);
    if mode == "constant" && io.opt_input(2).is_some() && io.konst(2).is_none() {
        // A run-time fill value (one element): stored at every output element, then the
        // input copied over.
        let v = io.input(2)?;
        if v.len() != 1 || v.dtype != x.dtype {
            return Err("Pad's value must be one element of the input's dtype".into());
        }
        if (0..r).any(|k| y.dims[k] < x.dims[k] + begin[k] as usize) {
            return Err("Pad's output does not hold its input".into());
        }
        let ty = clif_ty_of(e)?;
        let vp = cx.addr(g, v)?;
        let val = cx.load(ty, vp, 0);
        cx.for_n(y.len(), |cx, i| {
            let a = cx.index(ys, i, e as i64);
            cx.store(val, a, 0);
            Ok(())
        })?;
        let off: i64 = (0..r).map(|k| begin[k] * yst[k]).sum::<i64>() * e as i64;
        let d = cx.offset(ys, off);
        return copy_nest(cx, &x.dims, xs, &xst, d, &yst, e);
    }
    if mode == "constant" {
        let pattern: Vec<u8> = match io.opt_input(2) {
            Some(_) => {
                let t = io.konst(2).ok_or("Pad's value must be constant")?;
                t.bytes().ok_or("string pad value")?.to_vec()
            }
            None => vec![0u8; e],
        };
        let pattern = if pattern.len() == e {
            pattern
        } else {
            vec![0u8; e]
        };
        if (0..r).any(|k| y.dims[k] < x.dims[k] + begin[k] as usize) {
            return Err("Pad's output does not hold its input".into());
        }
        fill(cx, ys, y.len(), &pattern)?;
        let off: i64 = (0..r).map(|k| begin[k] * yst[k]).sum::<i64>() * e as i64;
        let d = cx.offset(ys, off);
        return copy_nest(cx, &x.dims, xs, &xst, d, &yst, e);
    }
    // edge / reflect / wrap: per-axis index tables built at compile time.
    if x.dims.contains(&0) {
        return Err(format!("Pad mode `{mode}` of an empty tensor"));
    }
    let mut tables = vec![];
    for k in 0..r {
        let n = x.dims[k] as i64;
        let t: Vec<i64> = (0..y.dims[k] as i64)
            .map(|o| {
                let i = o - begin[k];
                let src = if mode == "wrap" {
                    i.rem_euclid(n)
                } else if mode == "edge" || n == 1 {
                    i.clamp(0, n - 1)
                } else {
                    let period = 2 * (n - 1);
                    let m = i.rem_euclid(period);
                    if m < n {
                        m
                    } else {
                        period - m
                    }
                };
                src * xst[k] * e as i64
            })
            .collect();
        let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
        let off = cx.add_weights(&bytes);
        tables.push(off);
    }
    let ty = match e {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    };
    let mut dst_st: Vec<i64> = yst.iter().map(|s| s * e as i64).collect();
    dst_st.truncate(r);
    let dims = y.dims.clone();
    pad_rec(cx, &dims, &tables, &dst_st, 0, xs, ys, ty)
}

#[allow(clippy::too_many_arguments)]
fn pad_rec(
    cx: &mut Ctx,
    dims: &[usize],
    tables: &[u64],
    dst_st: &[i64],
    k: usize,
    src: Value,
    dst: Value,
    ty: types::Type,
) -> R<()> {
    if k == dims.len() {
        let v = cx.load(ty, src, 0);
        cx.store(v, dst, 0);
        return Ok(());
    }
    let table = tables[k];
    cx.for_n(dims[k], |cx, i| {
        let w = cx.weights_at(table);
        let ta = cx.index(w, i, 8);
        let so = cx.load(types::I64, ta, 0);
        let s = cx.b.ins().iadd(src, so);
        let d = cx.index(dst, i, dst_st[k]);
        pad_rec(cx, dims, tables, dst_st, k + 1, s, d, ty)
    })
}
