//! Convolution, pooling and normalisation — plain loops accumulating in `f64`, so that the
//! reference runner can run whole CNNs in tests (folding never needs them: their inputs are
//! not constant in practice).

use super::{count, invalid, num, strides, terr, unsupported, Num, R};
use smelt_ir::ops::{AveragePool, BatchNormalization, Conv, MaxPool, LRN};
use smelt_ir::Tensor;

fn floats(t: &Tensor) -> R<Vec<f64>> {
    match num(t)? {
        Num::F(v) => Ok(v),
        Num::I(_) => unsupported(format!("{} in a float op", t.dtype())),
    }
}

/// Values of any numeric tensor as f64 (integers of up to 53 bits are exact).
fn values(t: &Tensor) -> R<Vec<f64>> {
    match num(t)? {
        Num::F(v) => Ok(v),
        Num::I(v) => Ok(v.into_iter().map(|x| x as f64).collect()),
    }
}

/// The window geometry along the spatial axes.
struct Window {
    k: Vec<usize>,
    stride: Vec<usize>,
    dil: Vec<usize>,
    pad_begin: Vec<usize>,
    pad_end: Vec<usize>,
    out: Vec<usize>,
}

#[allow(clippy::too_many_arguments)]
fn window(
    spatial: &[usize],
    k: &[usize],
    strides_attr: Option<&[i64]>,
    dil_attr: Option<&[i64]>,
    pads_attr: Option<&[i64]>,
    auto_pad: &str,
    ceil: bool,
) -> R<Window> {
    let n = spatial.len();
    let get = |a: Option<&[i64]>, i: usize, d: i64| a.and_then(|v| v.get(i)).copied().unwrap_or(d);
    let mut w = Window {
        k: k.to_vec(),
        stride: vec![],
        dil: vec![],
        pad_begin: vec![],
        pad_end: vec![],
        out: vec![],
    };
    for i in 0..n {
        let (s, d) = (get(strides_attr, i, 1), get(dil_attr, i, 1));
        if s < 1 || d < 1 || k[i] == 0 {
            return invalid("strides, dilations and kernel must be positive");
        }
        let (s, d) = (s as usize, d as usize);
        let ek = d * (k[i] - 1) + 1;
        let x = spatial[i];
        let (pb, pe, out) = match auto_pad {
            "SAME_UPPER" | "SAME_LOWER" => {
                let out = x.div_ceil(s);
                let total = ((out - 1) * s + ek).saturating_sub(x);
                let pb = if auto_pad == "SAME_UPPER" {
                    total / 2
                } else {
                    total - total / 2
                };
                (pb, total - pb, out)
            }
            "VALID" => {
                if x < ek {
                    return invalid("window larger than the input");
                }
                (0, 0, (x - ek) / s + 1)
            }
            _ => {
                let pb = get(pads_attr, i, 0);
                let pe = get(pads_attr, i + n, 0);
                if pb < 0 || pe < 0 {
                    return unsupported("negative pads");
                }
                let span = x + pb as usize + pe as usize;
                if span < ek {
                    return invalid("window larger than the padded input");
                }
                let mut out = if ceil {
                    (span - ek).div_ceil(s) + 1
                } else {
                    (span - ek) / s + 1
                };
                // With ceil_mode, the last window must start inside the input or left padding.
                if ceil && (out - 1) * s >= x + pb as usize {
                    out -= 1;
                }
                (pb as usize, pe as usize, out)
            }
        };
        w.stride.push(s);
        w.dil.push(d);
        w.pad_begin.push(pb);
        w.pad_end.push(pe);
        w.out.push(out);
    }
    Ok(w)
}

/// Iterates the multi-indices of `dims` row-major.
fn for_each_index(dims: &[usize], mut f: impl FnMut(&[usize])) {
    let n = count(dims);
    let mut pos = vec![0usize; dims.len()];
    for _ in 0..n {
        f(&pos);
        let mut k = dims.len();
        while k > 0 {
            k -= 1;
            pos[k] += 1;
            if pos[k] < dims[k] {
                break;
            }
            pos[k] = 0;
        }
    }
}

/// The input offsets (within one channel plane) and kernel offsets of the taps of the window
/// at output position `o`; taps in the padding are skipped.
fn taps(w: &Window, spatial: &[usize], o: &[usize], out: &mut Vec<(usize, usize)>) {
    out.clear();
    let sst = strides(spatial);
    let kst = strides(&w.k);
    for_each_index(&w.k, |kp| {
        let mut off = 0usize;
        let mut koff = 0usize;
        for i in 0..spatial.len() {
            let p = (o[i] * w.stride[i] + kp[i] * w.dil[i]) as isize - w.pad_begin[i] as isize;
            if p < 0 || p as usize >= spatial[i] {
                return;
            }
            off += p as usize * sst[i];
            koff += kp[i] * kst[i];
        }
        out.push((off, koff));
    });
}

pub(crate) fn conv(x: &Tensor, wt: &Tensor, b: Option<&Tensor>, c: &Conv) -> R<Tensor> {
    let xd = x.dims();
    let wd = wt.dims();
    if xd.len() < 3 || wd.len() != xd.len() {
        return invalid("Conv takes N-d data and weights of the same rank");
    }
    let (n, ci) = (xd[0], xd[1]);
    let m = wd[0];
    let g = c.group.max(1) as usize;
    if ci != wd[1] * g || !m.is_multiple_of(g) {
        return invalid(format!("Conv of {xd:?} with {wd:?} in {g} groups"));
    }
    let spatial = &xd[2..];
    let k: Vec<usize> = match &c.kernel_shape {
        Some(k) => k.iter().map(|v| *v as usize).collect(),
        None => wd[2..].to_vec(),
    };
    let w = window(
        spatial,
        &k,
        c.strides.as_deref(),
        c.dilations.as_deref(),
        c.pads.as_deref(),
        &c.auto_pad,
        false,
    )?;
    let xv = floats(x)?;
    let wv = floats(wt)?;
    let bv = match b {
        Some(b) => floats(b)?,
        None => vec![0.0; m],
    };
    let plane = count(spatial);
    let kplane = count(&w.k);
    let oplane = count(&w.out);
    let cg = wd[1];
    let mg = m / g;
    let mut out = vec![0f64; n * m * oplane];
    let mut tp = vec![];
    let mut opos = 0;
    for_each_index(&w.out, |o| {
        taps(&w, spatial, o, &mut tp);
        for bi in 0..n {
            for mo in 0..m {
                let grp = mo / mg;
                let mut acc = bv[mo];
                for cc in 0..cg {
                    let xbase = (bi * ci + grp * cg + cc) * plane;
                    let wbase = (mo * cg + cc) * kplane;
                    for (off, koff) in &tp {
                        acc += xv[xbase + off] * wv[wbase + koff];
                    }
                }
                out[(bi * m + mo) * oplane + opos] = acc;
            }
        }
        opos += 1;
    });
    let mut dims = vec![n, m];
    dims.extend_from_slice(&w.out);
    Tensor::from_f64s(x.dtype(), dims, &out).map_err(terr)
}

/// Runs `f(values, padded_count)` over every window: the values of the taps inside the input
/// and the number of taps inside the padded input.
fn pool(x: &Tensor, w: &Window, f: impl Fn(&[f64], usize) -> f64) -> R<Tensor> {
    let xd = x.dims();
    let spatial = &xd[2..];
    let (n, c) = (xd[0], xd[1]);
    let xv = values(x)?;
    let plane = count(spatial);
    let oplane = count(&w.out);
    let mut out = vec![0f64; n * c * oplane];
    let mut tp = vec![];
    let mut vals = vec![];
    let mut opos = 0;
    for_each_index(&w.out, |o| {
        taps(w, spatial, o, &mut tp);
        let mut full = 1usize;
        for i in 0..spatial.len() {
            let lo = -(w.pad_begin[i] as isize);
            let hi = (spatial[i] + w.pad_end[i]) as isize;
            full *= (0..w.k[i])
                .filter(|kk| {
                    let p = (o[i] * w.stride[i] + kk * w.dil[i]) as isize - w.pad_begin[i] as isize;
                    p >= lo && p < hi
                })
                .count();
        }
        for ch in 0..n * c {
            vals.clear();
            vals.extend(tp.iter().map(|(off, _)| xv[ch * plane + off]));
            out[ch * oplane + opos] = f(&vals, full);
        }
        opos += 1;
    });
    let mut dims = vec![n, c];
    dims.extend_from_slice(&w.out);
    Tensor::from_f64s(x.dtype(), dims, &out).map_err(terr)
}

pub(crate) fn max_pool(x: &Tensor, p: &MaxPool, n_outputs: usize) -> R<Tensor> {
    if n_outputs > 1 || p.storage_order != 0 {
        return unsupported("MaxPool indices");
    }
    if x.dims().len() < 3 {
        return invalid("MaxPool takes N-d data");
    }
    let k: Vec<usize> = p.kernel_shape.iter().map(|v| *v as usize).collect();
    let w = window(
        &x.dims()[2..],
        &k,
        p.strides.as_deref(),
        p.dilations.as_deref(),
        p.pads.as_deref(),
        &p.auto_pad,
        p.ceil_mode != 0,
    )?;
    pool(x, &w, |v, _| {
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    })
}

pub(crate) fn average_pool(x: &Tensor, p: &AveragePool) -> R<Tensor> {
    if x.dims().len() < 3 {
        return invalid("AveragePool takes N-d data");
    }
    let k: Vec<usize> = p.kernel_shape.iter().map(|v| *v as usize).collect();
    let w = window(
        &x.dims()[2..],
        &k,
        p.strides.as_deref(),
        p.dilations.as_deref(),
        p.pads.as_deref(),
        &p.auto_pad,
        p.ceil_mode != 0,
    )?;
    let include = p.count_include_pad != 0;
    pool(x, &w, |v, full| {
        let s: f64 = v.iter().sum();
        let d = if include { full } else { v.len().max(1) };
        s / d as f64
    })
}

pub(crate) fn global_pool(x: &Tensor, max: bool) -> R<Tensor> {
    let xd = x.dims();
    if xd.len() < 3 {
        return invalid("global pooling takes N-d data");
    }
    let xv = floats(x)?;
    let plane = count(&xd[2..]);
    let out: Vec<f64> = xv
        .chunks(plane.max(1))
        .take(xd[0] * xd[1])
        .map(|c| {
            if max {
                c.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            } else {
                c.iter().sum::<f64>() / plane as f64
            }
        })
        .collect();
    let mut dims = vec![xd[0], xd[1]];
    dims.extend(std::iter::repeat_n(1, xd.len() - 2));
    Tensor::from_f64s(x.dtype(), dims, &out).map_err(terr)
}

pub(crate) fn batch_norm(
    ins: [&Tensor; 5],
    bn: &BatchNormalization,
    n_outputs: usize,
) -> R<Tensor> {
    if bn.training_mode != 0 || n_outputs > 1 {
        return unsupported("BatchNormalization in training mode");
    }
    let x = ins[0];
    let xd = x.dims();
    if xd.len() < 2 {
        return invalid("BatchNormalization takes N-d data");
    }
    let c = xd[1];
    let p: Vec<Vec<f64>> = ins[1..].iter().map(|t| floats(t)).collect::<R<_>>()?;
    if p.iter().any(|v| v.len() != c) {
        return invalid("BatchNormalization parameters must have one value per channel");
    }
    let plane = count(&xd[2..]);
    let xv = floats(x)?;
    let eps = bn.epsilon as f64;
    let out: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / plane.max(1)) % c;
            (v - p[2][ch]) / (p[3][ch] + eps).sqrt() * p[0][ch] + p[1][ch]
        })
        .collect();
    Tensor::from_f64s(x.dtype(), xd.to_vec(), &out).map_err(terr)
}

pub(crate) fn lrn(x: &Tensor, l: &LRN) -> R<Tensor> {
    let xd = x.dims();
    if xd.len() < 3 || l.size < 1 {
        return invalid("LRN takes N-d data and a positive size");
    }
    let c = xd[1] as i64;
    let plane = count(&xd[2..]);
    let xv = floats(x)?;
    let size = l.size;
    let (lo, hi) = ((size - 1) / 2, (size - 1) - (size - 1) / 2);
    let (alpha, beta, bias) = (l.alpha as f64, l.beta as f64, l.bias as f64);
    let out: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = ((i / plane) as i64) % c;
            let base = i - (ch as usize) * plane;
            let mut sq = 0.0;
            for cc in (ch - lo).max(0)..=(ch + hi).min(c - 1) {
                let u = xv[base + cc as usize * plane];
                sq += u * u;
            }
            v / (bias + alpha / size as f64 * sq).powf(beta)
        })
        .collect();
    Tensor::from_f64s(x.dtype(), xd.to_vec(), &out).map_err(terr)
}
