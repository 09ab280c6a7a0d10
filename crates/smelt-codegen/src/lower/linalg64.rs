//! MatMul of f64 matrices (rank 2 or more, numpy broadcasting of the batch dims), one
//! element at a time: a plain triple loop per batch, accumulating in f64. The f32 kernels
//! live in `matmul.rs`; this is the correct, unhurried path for the rarer f64 models.

use super::{strides, Ctx, NodeIo, R};
use cranelift_codegen::ir::{types, InstBuilder};
use smelt_ir::DType;

/// Why an f64 MatMul cannot be lowered, if it cannot: both inputs f64 of rank 2 or more.
pub(crate) fn check(a: Option<(DType, usize)>, b: Option<(DType, usize)>) -> R<()> {
    match (a, b) {
        (Some((DType::F64, ra)), Some((DType::F64, rb))) if ra >= 2 && rb >= 2 => Ok(()),
        _ => Err("f64 MatMul takes two f64 inputs of rank 2 or more".into()),
    }
}

/// Lowers an f64 MatMul.
pub(crate) fn matmul(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let a = io.input(0)?;
    let b = io.input(1)?;
    let y = io.output(0)?;
    check(Some((a.dtype, a.dims.len())), Some((b.dtype, b.dims.len())))?;
    let (ra, rb, ry) = (a.dims.len(), b.dims.len(), y.dims.len());
    let (m, k) = (a.dims[ra - 2], a.dims[ra - 1]);
    let (k2, n) = (b.dims[rb - 2], b.dims[rb - 1]);
    if k != k2 || ry < 2 || y.dims[ry - 2] != m || y.dims[ry - 1] != n || y.dtype != DType::F64 {
        return Err("MatMul's shapes do not fit".into());
    }
    // Batch dims of the output; each input's batch strides (0 where it broadcasts).
    let batch = &y.dims[..ry - 2];
    let bst = |dims: &[usize], r: usize| -> Vec<i64> {
        let own = &dims[..r - 2];
        let st = strides(own);
        let pad = batch.len() - own.len().min(batch.len());
        (0..batch.len())
            .map(|i| {
                if i < pad || own[i - pad] == 1 {
                    0
                } else {
                    st[i - pad]
                }
            })
            .collect()
    };
    let (sa, sb) = (bst(&a.dims, ra), bst(&b.dims, rb));
    let (ma, mb, my) = ((m * k * 8) as i64, (k * n * 8) as i64, (m * n * 8) as i64);
    let ys = strides(batch);
    let st = vec![
        sa.iter().map(|s| s * ma).collect::<Vec<_>>(),
        sb.iter().map(|s| s * mb).collect(),
        ys.iter().map(|s| s * my).collect(),
    ];
    let ap = cx.addr(io.g, a)?;
    let bp = cx.addr(io.g, b)?;
    let yp = cx.addr(io.g, y)?;
    cx.nest(batch, &st, vec![ap, bp, yp], &mut |cx, p| {
        let (a0, b0, y0) = (p[0], p[1], p[2]);
        cx.for_n(m, |cx, i| {
            let arow = cx.index(a0, i, (k * 8) as i64);
            let yrow = cx.index(y0, i, (n * 8) as i64);
            cx.for_n(n, |cx, j| {
                let bcol = cx.index(b0, j, 8);
                let z = cx.b.ins().f64const(0.0);
                let acc = cx.var(types::F64, z);
                cx.for_n(k, |cx, t| {
                    let aa = cx.index(arow, t, 8);
                    let av = cx.load(types::F64, aa, 0);
                    let ba = cx.index(bcol, t, (n * 8) as i64);
                    let bv = cx.load(types::F64, ba, 0);
                    let s = cx.b.use_var(acc);
                    let s = cx.fma(av, bv, s);
                    cx.b.def_var(acc, s);
                    Ok(())
                })?;
                let s = cx.b.use_var(acc);
                let ya = cx.index(yrow, j, 8);
                cx.store(s, ya, 0);
                Ok(())
            })
        })
    })
}
