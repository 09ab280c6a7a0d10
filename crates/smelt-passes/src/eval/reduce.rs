//! Reductions (Reduce*, ArgMax/ArgMin) and Softmax/LogSoftmax.

use super::{axis, count, from_num, invalid, num, strides, terr, unsupported, Args, Num, Walk, R};
use smelt_ir::{Op, Tensor};

/// For every input element, the linear index of the output element it reduces into, and the
/// dims with the reduced axes kept as 1.
fn reduce_map(dims: &[usize], axes: &[usize]) -> (Walk, Vec<usize>) {
    let kept: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| if axes.contains(&i) { 1 } else { *d })
        .collect();
    let ost = strides(&kept);
    let st: Vec<i64> = (0..dims.len())
        .map(|i| if axes.contains(&i) { 0 } else { ost[i] as i64 })
        .collect();
    (Walk::new(dims, st, 0), kept)
}

fn out_dims(dims: &[usize], axes: &[usize], keep: bool) -> Vec<usize> {
    dims.iter()
        .enumerate()
        .filter_map(|(i, d)| {
            if axes.contains(&i) {
                keep.then_some(1)
            } else {
                Some(*d)
            }
        })
        .collect()
}

pub(crate) fn reduce(op: &Op, args: &Args) -> R<Tensor> {
    use Op::*;
    let (keepdims, noop) = match op {
        ReduceMean(o) => (o.keepdims, o.noop_with_empty_axes),
        ReduceSum(o) => (o.keepdims, o.noop_with_empty_axes),
        ReduceMax(o) => (o.keepdims, o.noop_with_empty_axes),
        ReduceMin(o) => (o.keepdims, o.noop_with_empty_axes),
        ReduceProd(o) => (o.keepdims, o.noop_with_empty_axes),
        ReduceL2(o) => (o.keepdims, o.noop_with_empty_axes),
        ReduceL1(o) => (o.keepdims, o.noop_with_empty_axes),
        ReduceSumSquare(o) => (o.keepdims, o.noop_with_empty_axes),
        ReduceLogSumExp(o) => (o.keepdims, o.noop_with_empty_axes),
        _ => return unsupported(op.op_type().to_string()),
    };
    let x = args.req(0)?;
    let r = x.dims().len();
    let axes_in = args.opt_ints(1)?.unwrap_or_default();
    if axes_in.is_empty() && noop != 0 {
        return Ok(x.clone());
    }
    let axes: Vec<usize> = if axes_in.is_empty() {
        (0..r).collect()
    } else {
        axes_in.iter().map(|a| axis(*a, r)).collect::<R<_>>()?
    };
    let (map, kept) = reduce_map(x.dims(), &axes);
    let m = count(&kept);
    let per = x.len().checked_div(m).unwrap_or(0);
    let out = out_dims(x.dims(), &axes, keepdims != 0);
    let res = match num(x)? {
        Num::I(v) => {
            let mut acc: Vec<i64> = match op {
                ReduceMax(_) => vec![i64::MIN; m],
                ReduceMin(_) => vec![i64::MAX; m],
                ReduceProd(_) => vec![1; m],
                ReduceSum(_) | ReduceL1(_) | ReduceSumSquare(_) => vec![0; m],
                _ => return unsupported(format!("{} of integers", op.op_type())),
            };
            for (i, a) in v.iter().zip(map.clone()) {
                let s = &mut acc[a];
                *s = match op {
                    ReduceMax(_) => (*s).max(*i),
                    ReduceMin(_) => (*s).min(*i),
                    ReduceProd(_) => s.wrapping_mul(*i),
                    ReduceL1(_) => s.wrapping_add(i.wrapping_abs()),
                    ReduceSumSquare(_) => s.wrapping_add(i.wrapping_mul(*i)),
                    _ => s.wrapping_add(*i),
                };
            }
            Num::I(acc)
        }
        Num::F(v) => {
            let mut acc: Vec<f64> = match op {
                ReduceMax(_) => vec![f64::NEG_INFINITY; m],
                ReduceMin(_) => vec![f64::INFINITY; m],
                ReduceProd(_) => vec![1.0; m],
                _ => vec![0.0; m],
            };
            let mx: Vec<f64> = if let ReduceLogSumExp(_) = op {
                let mut mx = vec![f64::NEG_INFINITY; m];
                for (i, a) in v.iter().zip(map.clone()) {
                    mx[a] = mx[a].max(*i);
                }
                mx
            } else {
                vec![]
            };
            for (i, a) in v.iter().zip(map.clone()) {
                let s = &mut acc[a];
                *s = match op {
                    ReduceMax(_) => s.max(*i),
                    ReduceMin(_) => s.min(*i),
                    ReduceProd(_) => *s * i,
                    ReduceL1(_) => *s + i.abs(),
                    ReduceL2(_) | ReduceSumSquare(_) => *s + i * i,
                    ReduceLogSumExp(_) => *s + (i - mx[a]).exp(),
                    _ => *s + i,
                };
            }
            match op {
                ReduceMean(_) => acc.iter_mut().for_each(|a| *a /= per as f64),
                ReduceL2(_) => acc.iter_mut().for_each(|a| *a = a.sqrt()),
                ReduceLogSumExp(_) => acc.iter_mut().zip(&mx).for_each(|(a, m)| *a = a.ln() + m),
                _ => {}
            }
            Num::F(acc)
        }
    };
    from_num(x.dtype(), out, &res)
}

pub(crate) fn arg(x: &Tensor, ax: i64, keep: bool, last: bool, max: bool) -> R<Tensor> {
    let a = axis(ax, x.dims().len())?;
    let (map, kept) = reduce_map(x.dims(), &[a]);
    let m = count(&kept);
    let v: Vec<f64> = match num(x)? {
        Num::F(v) => v,
        Num::I(v) => v.into_iter().map(|i| i as f64).collect(),
    };
    let st = strides(x.dims())[a];
    let d = x.dims()[a];
    let mut best: Vec<Option<(f64, i64)>> = vec![None; m];
    for (k, (val, o)) in v.iter().zip(map.clone()).enumerate() {
        let pos = ((k / st) % d.max(1)) as i64;
        let better = match best[o] {
            None => true,
            Some((b, _)) => {
                if max {
                    *val > b || (last && *val == b)
                } else {
                    *val < b || (last && *val == b)
                }
            }
        };
        if better {
            best[o] = Some((*val, pos));
        }
    }
    let out = out_dims(x.dims(), &[a], keep);
    let idx: Vec<i64> = best.iter().map(|b| b.map(|b| b.1).unwrap_or(0)).collect();
    Tensor::from_vec(out, &idx).map_err(terr)
}

pub(crate) fn softmax(x: &Tensor, ax: i64, log: bool) -> R<Tensor> {
    let a = axis(ax, x.dims().len())?;
    let Num::F(v) = num(x)? else {
        return invalid("Softmax takes floats");
    };
    let (map, kept) = reduce_map(x.dims(), &[a]);
    let m = count(&kept);
    let mut mx = vec![f64::NEG_INFINITY; m];
    for (i, o) in v.iter().zip(map.clone()) {
        mx[o] = mx[o].max(*i);
    }
    let mut sum = vec![0.0; m];
    for (i, o) in v.iter().zip(map.clone()) {
        sum[o] += (i - mx[o]).exp();
    }
    let out: Vec<f64> = v
        .iter()
        .zip(map.clone())
        .map(|(i, o)| {
            if log {
                i - mx[o] - sum[o].ln()
            } else {
                (i - mx[o]).exp() / sum[o]
            }
        })
        .collect();
    Tensor::from_f64s(x.dtype(), x.dims().to_vec(), &out).map_err(terr)
}
