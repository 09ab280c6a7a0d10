//! MatMul (numpy batched, broadcasting) and Gemm, accumulating in `f64` (integers in `i64`).

use super::{broadcast_dims, broadcast_index, count, from_num, invalid, num, Args, Num, R};
use smelt_ir::ops::Gemm;
use smelt_ir::Tensor;

fn nums(n: Num) -> (Option<Vec<f64>>, Option<Vec<i64>>) {
    match n {
        Num::F(v) => (Some(v), None),
        Num::I(v) => (None, Some(v)),
    }
}

pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> R<Tensor> {
    let (mut ad, mut bd) = (a.dims().to_vec(), b.dims().to_vec());
    if ad.is_empty() || bd.is_empty() {
        return invalid("MatMul of a scalar");
    }
    let a_vec = ad.len() == 1;
    let b_vec = bd.len() == 1;
    if a_vec {
        ad.insert(0, 1);
    }
    if b_vec {
        bd.push(1);
    }
    let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (k2, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    if k != k2 {
        return invalid(format!("MatMul of {:?} and {:?}", a.dims(), b.dims()));
    }
    let batch = broadcast_dims(&ad[..ad.len() - 2], &bd[..bd.len() - 2])?;
    let ia: Vec<usize> = broadcast_index(&ad[..ad.len() - 2], &batch).collect();
    let ib: Vec<usize> = broadcast_index(&bd[..bd.len() - 2], &batch).collect();
    let nb = count(&batch);
    let (af, ai) = nums(num(a)?);
    let (bf, bi) = nums(num(b)?);
    let mut out_dims = batch.clone();
    if !a_vec {
        out_dims.push(m);
    }
    if !b_vec {
        out_dims.push(n);
    }
    let res = match (af, ai, bf, bi) {
        (_, Some(x), _, Some(y)) => {
            let mut o = vec![0i64; nb * m * n];
            for bt in 0..nb {
                let (xa, yb) = (ia[bt] * m * k, ib[bt] * k * n);
                for i in 0..m {
                    for kk in 0..k {
                        let av = x[xa + i * k + kk];
                        for j in 0..n {
                            let p = &mut o[(bt * m + i) * n + j];
                            *p = p.wrapping_add(av.wrapping_mul(y[yb + kk * n + j]));
                        }
                    }
                }
            }
            Num::I(o)
        }
        (Some(x), _, Some(y), _) => {
            let mut o = vec![0f64; nb * m * n];
            for bt in 0..nb {
                let (xa, yb) = (ia[bt] * m * k, ib[bt] * k * n);
                for i in 0..m {
                    for kk in 0..k {
                        let av = x[xa + i * k + kk];
                        for j in 0..n {
                            o[(bt * m + i) * n + j] += av * y[yb + kk * n + j];
                        }
                    }
                }
            }
            Num::F(o)
        }
        _ => return invalid("MatMul of mixed dtypes"),
    };
    from_num(a.dtype(), out_dims, &res)
}

pub(crate) fn gemm(args: &Args, g: &Gemm) -> R<Tensor> {
    let a = args.req(0)?;
    let b = args.req(1)?;
    if a.dims().len() != 2 || b.dims().len() != 2 {
        return invalid("Gemm takes matrices");
    }
    let (Num::F(x), Num::F(y)) = (num(a)?, num(b)?) else {
        return super::unsupported("Gemm on integers");
    };
    let (m, k) = if g.trans_a {
        (a.dims()[1], a.dims()[0])
    } else {
        (a.dims()[0], a.dims()[1])
    };
    let (k2, n) = if g.trans_b {
        (b.dims()[1], b.dims()[0])
    } else {
        (b.dims()[0], b.dims()[1])
    };
    if k != k2 {
        return invalid(format!("Gemm of {:?} and {:?}", a.dims(), b.dims()));
    }
    let at = |i: usize, kk: usize| {
        if g.trans_a {
            x[kk * m + i]
        } else {
            x[i * k + kk]
        }
    };
    let bt = |kk: usize, j: usize| {
        if g.trans_b {
            y[j * k + kk]
        } else {
            y[kk * n + j]
        }
    };
    let mut o = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for kk in 0..k {
                s += at(i, kk) * bt(kk, j);
            }
            o[i * n + j] = g.alpha as f64 * s;
        }
    }
    if let Some(c) = args.opt(2) {
        let out = [m, n];
        if broadcast_dims(c.dims(), &out)? != out {
            return invalid(format!("Gemm C of shape {:?}", c.dims()));
        }
        let ic = broadcast_index(c.dims(), &out);
        let Num::F(cv) = num(c)? else {
            return invalid("Gemm C must be float");
        };
        for (p, i) in o.iter_mut().zip(ic) {
            *p += g.beta as f64 * cv[i];
        }
    }
    from_num(a.dtype(), vec![m, n], &Num::F(o))
}
