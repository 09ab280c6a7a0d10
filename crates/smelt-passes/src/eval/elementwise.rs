//! Elementwise ops: unary math, binary arithmetic and comparisons with broadcasting,
//! variadic Min/Max/Sum/Mean, Clip.

use super::{broadcast_dims, broadcast_index, from_num, invalid, num, unsupported, Args, Num, R};
use smelt_ir::{DType, Op, Tensor};

/// The error function.
pub(crate) fn erf(x: f64) -> f64 {
    libm::erf(x)
}

/// One-input elementwise ops.
pub(crate) fn unary(op: &Op, x: &Tensor) -> R<Tensor> {
    let dt = x.dtype();
    let dims = x.dims().to_vec();
    let n = num(x)?;
    use Op::*;
    // Ops with a non-numeric result type first.
    match op {
        Not(_) => {
            let Num::I(v) = n else {
                return invalid("Not takes bools");
            };
            let o: Vec<i64> = v.iter().map(|b| (*b == 0) as i64).collect();
            return Tensor::from_i64s(DType::Bool, dims, &o).map_err(super::terr);
        }
        IsNaN(_) => {
            let o: Vec<i64> = match n {
                Num::F(v) => v.iter().map(|f| f.is_nan() as i64).collect(),
                Num::I(v) => vec![0; v.len()],
            };
            return Tensor::from_i64s(DType::Bool, dims, &o).map_err(super::terr);
        }
        _ => {}
    }
    let out = match n {
        Num::I(v) => {
            let f: fn(i64) -> i64 = match op {
                Neg(_) => |a| a.wrapping_neg(),
                Abs(_) => |a| a.wrapping_abs(),
                Sign(_) => |a| a.signum(),
                Relu(_) => |a| a.max(0),
                Identity(_) | Floor(_) | Ceil(_) | Round(_) => |a| a,
                _ => return unsupported(format!("{} on {dt}", op.op_type())),
            };
            Num::I(v.into_iter().map(f).collect())
        }
        Num::F(v) => {
            let f: Box<dyn Fn(f64) -> f64> = match op {
                Relu(_) => Box::new(|a: f64| if a < 0.0 { 0.0 } else { a }),
                Sigmoid(_) => Box::new(|a: f64| 1.0 / (1.0 + (-a).exp())),
                Tanh(_) => Box::new(f64::tanh),
                Erf(_) => Box::new(erf),
                Exp(_) => Box::new(f64::exp),
                Log(_) => Box::new(f64::ln),
                Sqrt(_) => Box::new(f64::sqrt),
                Reciprocal(_) => Box::new(|a: f64| 1.0 / a),
                Neg(_) => Box::new(|a: f64| -a),
                Abs(_) => Box::new(f64::abs),
                Softplus(_) => Box::new(|a: f64| if a > 30.0 { a } else { a.exp().ln_1p() }),
                Softsign(_) => Box::new(|a: f64| a / (1.0 + a.abs())),
                Floor(_) => Box::new(f64::floor),
                Ceil(_) => Box::new(f64::ceil),
                Round(_) => Box::new(f64::round_ties_even),
                Sign(_) => Box::new(|a: f64| {
                    if a > 0.0 {
                        1.0
                    } else if a < 0.0 {
                        -1.0
                    } else {
                        a
                    }
                }),
                Sin(_) => Box::new(f64::sin),
                Cos(_) => Box::new(f64::cos),
                LeakyRelu(l) => {
                    let al = l.alpha as f64;
                    Box::new(move |a: f64| if a >= 0.0 { a } else { al * a })
                }
                Elu(e) => {
                    let al = e.alpha as f64;
                    Box::new(move |a: f64| if a > 0.0 { a } else { al * (a.exp() - 1.0) })
                }
                HardSigmoid(h) => {
                    let (al, be) = (h.alpha as f64, h.beta as f64);
                    Box::new(move |a: f64| (al * a + be).clamp(0.0, 1.0))
                }
                HardSwish(_) => Box::new(|a: f64| a * (a / 6.0 + 0.5).clamp(0.0, 1.0)),
                Gelu(g) if g.approximate == "tanh" => Box::new(|a: f64| {
                    let c = (2.0 / std::f64::consts::PI).sqrt();
                    0.5 * a * (1.0 + (c * (a + 0.044715 * a * a * a)).tanh())
                }),
                Gelu(_) => Box::new(|a: f64| 0.5 * a * (1.0 + erf(a / std::f64::consts::SQRT_2))),
                Identity(_) => Box::new(|a: f64| a),
                _ => return unsupported(format!("{} on {dt}", op.op_type())),
            };
            Num::F(v.into_iter().map(f).collect())
        }
    };
    from_num(dt, dims, &out)
}

/// Broadcast two tensors' numbers to a common shape.
fn bcast2(a: &Tensor, b: &Tensor) -> R<(Vec<usize>, super::Walk, super::Walk)> {
    let out = broadcast_dims(a.dims(), b.dims())?;
    let ia = broadcast_index(a.dims(), &out);
    let ib = broadcast_index(b.dims(), &out);
    Ok((out, ia, ib))
}

/// Two-input elementwise ops with numpy broadcasting.
pub(crate) fn binary(op: &Op, a: &Tensor, b: &Tensor) -> R<Tensor> {
    use Op::*;
    let (dims, ia, ib) = bcast2(a, b)?;
    let (na, nb) = (num(a)?, num(b)?);
    let dt = a.dtype();
    let cmp = matches!(
        op,
        Equal(_) | Less(_) | Greater(_) | LessOrEqual(_) | GreaterOrEqual(_)
    );
    if cmp {
        let f = |x: f64, y: f64| -> bool {
            match op {
                Equal(_) => x == y,
                Less(_) => x < y,
                Greater(_) => x > y,
                LessOrEqual(_) => x <= y,
                _ => x >= y,
            }
        };
        let o: Vec<i64> = match (&na, &nb) {
            (Num::I(x), Num::I(y)) => ia
                .clone()
                .zip(ib.clone())
                .map(|(i, j)| {
                    let (p, q) = (x[i], y[j]);
                    (match op {
                        Equal(_) => p == q,
                        Less(_) => p < q,
                        Greater(_) => p > q,
                        LessOrEqual(_) => p <= q,
                        _ => p >= q,
                    }) as i64
                })
                .collect(),
            (Num::F(x), Num::F(y)) => ia
                .clone()
                .zip(ib.clone())
                .map(|(i, j)| f(x[i], y[j]) as i64)
                .collect(),
            _ => return invalid("comparison of different dtypes"),
        };
        return Tensor::from_i64s(DType::Bool, dims, &o).map_err(super::terr);
    }
    if matches!(op, And(_) | Or(_) | Xor(_)) {
        let (Num::I(x), Num::I(y)) = (&na, &nb) else {
            return invalid("logical ops take bools");
        };
        let o: Vec<i64> = ia
            .clone()
            .zip(ib.clone())
            .map(|(i, j)| {
                let (p, q) = (x[i] != 0, y[j] != 0);
                (match op {
                    And(_) => p && q,
                    Or(_) => p || q,
                    _ => p ^ q,
                }) as i64
            })
            .collect();
        return Tensor::from_i64s(DType::Bool, dims, &o).map_err(super::terr);
    }
    let out = match (&na, &nb) {
        (Num::I(x), Num::I(y)) => {
            let mut o = Vec::with_capacity(ia.size_hint().0);
            for (i, j) in ia.clone().zip(ib.clone()) {
                let (p, q) = (x[i], y[j]);
                o.push(match op {
                    Add(_) => p.wrapping_add(q),
                    Sub(_) => p.wrapping_sub(q),
                    Mul(_) => p.wrapping_mul(q),
                    Div(_) => {
                        if q == 0 {
                            return invalid("integer division by zero");
                        }
                        p.wrapping_div(q)
                    }
                    Mod(m) => {
                        if q == 0 {
                            return invalid("integer modulo by zero");
                        }
                        if m.fmod != 0 {
                            p.wrapping_rem(q)
                        } else {
                            let r = p.wrapping_rem(q);
                            if r != 0 && ((r < 0) != (q < 0)) {
                                r + q
                            } else {
                                r
                            }
                        }
                    }
                    Pow(_) => {
                        if q < 0 {
                            return unsupported("integer power with a negative exponent");
                        }
                        p.wrapping_pow(q.min(u32::MAX as i64) as u32)
                    }
                    PRelu(_) => {
                        if p >= 0 {
                            p
                        } else {
                            p.wrapping_mul(q)
                        }
                    }
                    _ => return unsupported(op.op_type().to_string()),
                });
            }
            Num::I(o)
        }
        _ => {
            let x = to_f(&na);
            let y = to_f(&nb);
            let mut o = Vec::with_capacity(ia.size_hint().0);
            for (i, j) in ia.clone().zip(ib.clone()) {
                let (p, q) = (x[i], y[j]);
                o.push(match op {
                    Add(_) => p + q,
                    Sub(_) => p - q,
                    Mul(_) => p * q,
                    Div(_) => p / q,
                    Pow(_) => p.powf(q),
                    Mod(m) => {
                        if m.fmod != 0 {
                            p % q
                        } else {
                            let r = p % q;
                            if r != 0.0 && ((r < 0.0) != (q < 0.0)) {
                                r + q
                            } else {
                                r
                            }
                        }
                    }
                    PRelu(_) => {
                        if p >= 0.0 {
                            p
                        } else {
                            p * q
                        }
                    }
                    _ => return unsupported(op.op_type().to_string()),
                });
            }
            // A float result of an integer base (Pow with a float exponent) stays integer.
            if !dt.is_float() {
                Num::I(o.into_iter().map(|v| v as i64).collect())
            } else {
                Num::F(o)
            }
        }
    };
    from_num(dt, dims, &out)
}

fn to_f(n: &Num) -> Vec<f64> {
    match n {
        Num::F(v) => v.clone(),
        Num::I(v) => v.iter().map(|x| *x as f64).collect(),
    }
}

/// Min/Max/Sum/Mean over any number of inputs.
pub(crate) fn variadic(op: &Op, args: &Args) -> R<Tensor> {
    let ts = args.all();
    let Some(first) = ts.first() else {
        return invalid("no inputs");
    };
    let mut acc = (*first).clone();
    for t in &ts[1..] {
        let (dims, ia, ib) = bcast2(&acc, t)?;
        let out = match (num(&acc)?, num(t)?) {
            (Num::I(x), Num::I(y)) => Num::I(
                ia.clone()
                    .zip(ib.clone())
                    .map(|(i, j)| match op {
                        Op::Min(_) => x[i].min(y[j]),
                        Op::Max(_) => x[i].max(y[j]),
                        _ => x[i].wrapping_add(y[j]),
                    })
                    .collect(),
            ),
            (a, b) => {
                let (x, y) = (to_f(&a), to_f(&b));
                Num::F(
                    ia.clone()
                        .zip(ib.clone())
                        .map(|(i, j)| {
                            let (p, q) = (x[i], y[j]);
                            match op {
                                Op::Min(_) if p.is_nan() || q.is_nan() => f64::NAN,
                                Op::Max(_) if p.is_nan() || q.is_nan() => f64::NAN,
                                Op::Min(_) => p.min(q),
                                Op::Max(_) => p.max(q),
                                _ => p + q,
                            }
                        })
                        .collect(),
                )
            }
        };
        // Sum/Mean accumulate in f64 without rounding in between.
        acc = match (&out, op) {
            (Num::F(_), Op::Sum(_) | Op::Mean(_)) => from_num(DType::F64, dims, &out)?,
            _ => from_num(first.dtype(), dims, &out)?,
        };
    }
    if let Op::Mean(_) = op {
        let n = ts.len() as f64;
        let v: Vec<f64> = to_f(&num(&acc)?).into_iter().map(|x| x / n).collect();
        if !first.dtype().is_float() {
            return unsupported("Mean of integers");
        }
        return Tensor::from_f64s(first.dtype(), acc.dims().to_vec(), &v).map_err(super::terr);
    }
    if acc.dtype() != first.dtype() {
        let v = to_f(&num(&acc)?);
        return Tensor::from_f64s(first.dtype(), acc.dims().to_vec(), &v).map_err(super::terr);
    }
    Ok(acc)
}

/// Clip with optional min and max inputs.
pub(crate) fn clip(args: &Args) -> R<Tensor> {
    let x = args.req(0)?;
    let lo = args.opt(1);
    let hi = args.opt(2);
    let scalar = |t: Option<&Tensor>| -> R<Option<f64>> {
        match t {
            None => Ok(None),
            Some(t) if t.len() == 1 => Ok(t.to_f64_vec().and_then(|v| v.first().copied())),
            Some(_) => invalid("Clip bounds must be scalars"),
        }
    };
    let (lo, hi) = (scalar(lo)?, scalar(hi)?);
    let out = match num(x)? {
        Num::I(v) => Num::I(
            v.into_iter()
                .map(|a| {
                    let mut a = a;
                    if let Some(l) = lo {
                        a = a.max(l as i64);
                    }
                    if let Some(h) = hi {
                        a = a.min(h as i64);
                    }
                    a
                })
                .collect(),
        ),
        Num::F(v) => Num::F(
            v.into_iter()
                .map(|a| {
                    let mut a = a;
                    if let Some(l) = lo {
                        if a < l {
                            a = l;
                        }
                    }
                    if let Some(h) = hi {
                        if a > h {
                            a = h;
                        }
                    }
                    a
                })
                .collect(),
        ),
    };
    from_num(x.dtype(), x.dims().to_vec(), &out)
}
