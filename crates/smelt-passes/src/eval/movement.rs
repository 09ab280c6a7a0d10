//! Data movement and shape ops: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat,
//! Split, Slice, Gather, Expand, Tile, Where, ConstantOfShape, Range. They copy element bytes,
//! so they take every dtype.

use super::{
    axis, broadcast_dims, broadcast_index, count, invalid, num, strides, take, terr, unsupported,
    Num, Walk, R,
};
use smelt_ir::{DType, Tensor};

fn dims_of(v: &[i64]) -> R<Vec<usize>> {
    v.iter()
        .map(|d| usize::try_from(*d).or_else(|_| invalid(format!("negative dim {d} in {v:?}"))))
        .collect()
}

pub(crate) fn reshape(x: &Tensor, shape: &[i64], allowzero: bool) -> R<Tensor> {
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, d) in shape.iter().enumerate() {
        match *d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            -1 => return invalid("Reshape shape has two -1"),
            0 if !allowzero => match x.dims().get(i) {
                Some(v) => out.push(*v),
                None => return invalid("Reshape copies a dim the input does not have"),
            },
            d if d < 0 => return invalid(format!("Reshape dim {d}")),
            d => out.push(d as usize),
        }
    }
    if let Some(i) = infer {
        let rest = count(&out);
        if rest == 0 || !x.len().is_multiple_of(rest) {
            return invalid(format!("cannot reshape {:?} to {shape:?}", x.dims()));
        }
        out[i] = x.len() / rest;
    }
    x.reshaped(out)
        .or_else(|_| invalid(format!("cannot reshape {:?} to {shape:?}", x.dims())))
}

pub(crate) fn flatten(x: &Tensor, ax: i64) -> R<Tensor> {
    let r = x.dims().len() as i64;
    let a = if ax < 0 { ax + r } else { ax };
    if a < 0 || a > r {
        return invalid(format!("Flatten axis {ax} for rank {r}"));
    }
    let a = a as usize;
    let outer = count(&x.dims()[..a]);
    let inner = count(&x.dims()[a..]);
    x.reshaped(vec![outer, inner]).map_err(terr)
}

pub(crate) fn squeeze(x: &Tensor, axes: Option<Vec<i64>>) -> R<Tensor> {
    let r = x.dims().len();
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|v| axis(*v, r)).collect::<R<_>>()?,
        None => (0..r).filter(|i| x.dims()[*i] == 1).collect(),
    };
    let mut out = vec![];
    for (i, d) in x.dims().iter().enumerate() {
        if axes.contains(&i) {
            if *d != 1 {
                return invalid(format!("Squeeze of axis {i} of extent {d}"));
            }
        } else {
            out.push(*d);
        }
    }
    x.reshaped(out).map_err(terr)
}

pub(crate) fn unsqueeze(x: &Tensor, axes: &[i64]) -> R<Tensor> {
    let r = x.dims().len() + axes.len();
    let mut ax: Vec<usize> = axes.iter().map(|a| axis(*a, r)).collect::<R<_>>()?;
    ax.sort();
    ax.dedup();
    if ax.len() != axes.len() {
        return invalid("Unsqueeze axes repeat");
    }
    let mut out = Vec::with_capacity(r);
    let mut src = x.dims().iter();
    for i in 0..r {
        if ax.contains(&i) {
            out.push(1);
        } else {
            out.push(*src.next().unwrap_or(&1));
        }
    }
    x.reshaped(out).map_err(terr)
}

pub(crate) fn transpose(x: &Tensor, perm: Option<&[i64]>) -> R<Tensor> {
    let r = x.dims().len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.iter().map(|a| axis(*a, r)).collect::<R<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut seen = vec![false; r];
    for p in &perm {
        if std::mem::replace(&mut seen[*p], true) {
            return invalid(format!("bad perm {perm:?}"));
        }
    }
    if perm.len() != r {
        return invalid(format!("perm {perm:?} for rank {r}"));
    }
    let dims = x.dims();
    let out: Vec<usize> = perm.iter().map(|p| dims[*p]).collect();
    let st = strides(dims);
    let pst: Vec<i64> = perm.iter().map(|p| st[*p] as i64).collect();
    let idx = Walk::new(&out, pst, 0);
    take(x, out, idx)
}

pub(crate) fn concat(ts: &[&Tensor], ax: i64) -> R<Tensor> {
    let Some(first) = ts.first() else {
        return invalid("Concat of nothing");
    };
    let r = first.dims().len();
    let a = axis(ax, r)?;
    let mut out = first.dims().to_vec();
    out[a] = 0;
    for t in ts {
        if t.dims().len() != r || t.dtype() != first.dtype() {
            return invalid("Concat inputs differ in rank or dtype");
        }
        for k in 0..r {
            if k != a && t.dims()[k] != first.dims()[k] {
                return invalid(format!("Concat of {:?} and {:?}", first.dims(), t.dims()));
            }
        }
        out[a] += t.dims()[a];
    }
    let outer = count(&out[..a]);
    let inner = count(&out[a + 1..]);
    if let (Some(_), true) = (first.bytes(), first.dtype().bits() % 8 == 0) {
        let es = first.dtype().bits() / 8;
        let mut bytes = Vec::with_capacity(count(&out) * es);
        for o in 0..outer {
            for t in ts {
                let chunk = t.dims()[a] * inner * es;
                let b = t.bytes().unwrap_or_default();
                bytes.extend_from_slice(&b[o * chunk..(o + 1) * chunk]);
            }
        }
        return Tensor::from_bytes(first.dtype(), out, bytes).map_err(terr);
    }
    // Strings and packed types: through a joined index space.
    let mut all_i = vec![];
    let mut all_s = vec![];
    for t in ts {
        match (t.to_i64_vec(), t.strings()) {
            (Some(v), _) => all_i.push(v),
            (None, Some(s)) => all_s.push(s.to_vec()),
            _ => return unsupported(format!("Concat of {}", t.dtype())),
        }
    }
    let mut vi = vec![];
    let mut vs = vec![];
    for o in 0..outer {
        for (k, t) in ts.iter().enumerate() {
            let chunk = t.dims()[a] * inner;
            if let Some(v) = all_i.get(k) {
                vi.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
            } else if let Some(s) = all_s.get(k) {
                vs.extend_from_slice(&s[o * chunk..(o + 1) * chunk]);
            }
        }
    }
    if first.dtype() == DType::String {
        Tensor::from_strings(out, vs).map_err(terr)
    } else {
        Tensor::from_i64s(first.dtype(), out, &vi).map_err(terr)
    }
}

fn slice_axis(x: &Tensor, a: usize, start: usize, len: usize) -> R<Tensor> {
    let dims = x.dims();
    let mut out = dims.to_vec();
    out[a] = len;
    let st = strides(dims);
    let base = start * st[a];
    let st: Vec<i64> = st.iter().map(|v| *v as i64).collect();
    take(x, out.clone(), Walk::new(&out, st, base as i64))
}

pub(crate) fn split(
    x: &Tensor,
    ax: i64,
    sizes: Option<Vec<i64>>,
    num_outputs: Option<i64>,
    n_outputs: usize,
) -> R<Vec<Tensor>> {
    let a = axis(ax, x.dims().len())?;
    let d = x.dims()[a];
    let sizes: Vec<usize> = match sizes {
        Some(s) => dims_of(&s)?,
        None => {
            let n = num_outputs.map(|n| n as usize).unwrap_or(n_outputs).max(1);
            let each = d.div_ceil(n);
            (0..n)
                .map(|i| each.min(d.saturating_sub(i * each)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != d || sizes.len() != n_outputs {
        return invalid(format!("Split sizes {sizes:?} of extent {d}"));
    }
    let mut start = 0;
    let mut out = vec![];
    for s in sizes {
        out.push(slice_axis(x, a, start, s)?);
        start += s;
    }
    Ok(out)
}

pub(crate) fn slice(
    x: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> R<Tensor> {
    let r = x.dims().len();
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|v| axis(*v, r)).collect::<R<_>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return invalid("Slice inputs differ in length");
    }
    let dims = x.dims();
    // per axis: (start, step, count)
    let mut plan: Vec<(i64, i64, usize)> = dims.iter().map(|d| (0, 1, *d)).collect();
    for k in 0..starts.len() {
        let a = axes[k];
        let d = dims[a] as i64;
        let step = steps[k];
        if step == 0 {
            return invalid("Slice step 0");
        }
        let clampi = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
        let mut s = starts[k];
        let mut e = ends[k];
        if s < 0 {
            s += d;
        }
        if e < 0 {
            e += d;
        }
        let (s, e) = if step > 0 {
            (clampi(s, 0, d), clampi(e, 0, d))
        } else {
            (clampi(s, 0, d - 1), clampi(e, -1, d - 1))
        };
        let n = if step > 0 {
            ((e - s).max(0) + step - 1) / step
        } else {
            ((s - e).max(0) + (-step) - 1) / (-step)
        };
        plan[a] = (s, step, n as usize);
    }
    let st = strides(dims);
    let out: Vec<usize> = plan.iter().map(|p| p.2).collect();
    let mut base: i64 = 0;
    let mut ist: Vec<i64> = vec![];
    for (k, (s, step, _)) in plan.iter().enumerate() {
        base += s * st[k] as i64;
        ist.push(step * st[k] as i64);
    }
    take(x, out.clone(), Walk::new(&out, ist, base))
}

pub(crate) fn gather(x: &Tensor, indices: &Tensor, ax: i64) -> R<Tensor> {
    let dims = x.dims();
    let a = axis(ax, dims.len())?;
    let Some(ind) = indices.to_i64_vec() else {
        return invalid("Gather indices must be integers");
    };
    let d = dims[a] as i64;
    let mut out: Vec<usize> = dims[..a].to_vec();
    out.extend_from_slice(indices.dims());
    out.extend_from_slice(&dims[a + 1..]);
    let outer = count(&dims[..a]);
    let inner = count(&dims[a + 1..]);
    let mut idx = Vec::with_capacity(count(&out));
    for o in 0..outer {
        for &i in &ind {
            let j = if i < 0 { i + d } else { i };
            if j < 0 || j >= d {
                return invalid(format!("Gather index {i} out of range for extent {d}"));
            }
            let base = (o * dims[a] + j as usize) * inner;
            idx.extend(base..base + inner);
        }
    }
    take(x, out, idx)
}

pub(crate) fn expand(x: &Tensor, shape: &[i64]) -> R<Tensor> {
    let s = dims_of(shape)?;
    let out = broadcast_dims(x.dims(), &s)?;
    super::check_size(&out)?;
    let idx = broadcast_index(x.dims(), &out);
    take(x, out, idx)
}

pub(crate) fn tile(x: &Tensor, reps: &[i64]) -> R<Tensor> {
    let dims = x.dims();
    if reps.len() != dims.len() {
        return invalid("Tile repeats must match the rank");
    }
    let reps = dims_of(reps)?;
    let out: Vec<usize> = dims
        .iter()
        .zip(&reps)
        .map(|(d, r)| d.checked_mul(*r).unwrap_or(usize::MAX))
        .collect();
    super::check_size(&out)?;
    let st = strides(dims);
    let n = count(&out);
    let r = dims.len();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; r];
    for _ in 0..n {
        idx.push(
            pos.iter()
                .enumerate()
                .map(|(k, p)| (p % dims[k].max(1)) * st[k])
                .sum(),
        );
        let mut k = r;
        while k > 0 {
            k -= 1;
            pos[k] += 1;
            if pos[k] < out[k] {
                break;
            }
            pos[k] = 0;
        }
    }
    take(x, out, idx)
}

/// Trilu: the upper (`j - i >= k`) or lower (`j - i <= k`) triangle of the last two dims,
/// zero elsewhere; any dtype of whole bytes (zero bytes are 0, 0.0 and false).
pub(crate) fn trilu(x: &Tensor, k: i64, upper: bool) -> R<Tensor> {
    let d = x.dims();
    if d.len() < 2 {
        return unsupported("Trilu of rank below 2");
    }
    let (r, c) = (d[d.len() - 2], d[d.len() - 1]);
    let bits = x.dtype().bits();
    let Some(bytes) = x.bytes().filter(|_| bits >= 8 && bits.is_multiple_of(8)) else {
        return unsupported(format!("Trilu of {}", x.dtype()));
    };
    let esz = bits / 8;
    let mut out = bytes.to_vec();
    for (idx, e) in out.chunks_mut(esz).enumerate() {
        let j = (idx % c.max(1)) as i64;
        let i = ((idx / c.max(1)) % r.max(1)) as i64;
        let keep = if upper { j - i >= k } else { j - i <= k };
        if !keep {
            e.fill(0);
        }
    }
    Tensor::from_bytes(x.dtype(), d.to_vec(), out).map_err(terr)
}

pub(crate) fn where_(c: &Tensor, x: &Tensor, y: &Tensor) -> R<Tensor> {
    let out = broadcast_dims(&broadcast_dims(c.dims(), x.dims())?, y.dims())?;
    let ic = broadcast_index(c.dims(), &out);
    let ix = broadcast_index(x.dims(), &out);
    let iy = broadcast_index(y.dims(), &out);
    let Some(cv) = c.to_i64_vec() else {
        return invalid("Where condition must be bool");
    };
    if x.dtype() != y.dtype() {
        return invalid("Where branches differ in dtype");
    }
    // Join x and y in one index space: x's elements first, then y's.
    let joined = concat(
        &[
            &x.reshaped(vec![x.len()]).map_err(terr)?,
            &y.reshaped(vec![y.len()]).map_err(terr)?,
        ],
        0,
    )?;
    let xl = x.len();
    let idx = ic
        .zip(ix.zip(iy))
        .map(|(c, (i, j))| if cv[c] != 0 { i } else { xl + j });
    take(&joined, out, idx)
}

pub(crate) fn constant_of_shape(shape: &[i64], value: Option<&Tensor>) -> R<Tensor> {
    let dims = dims_of(shape)?;
    super::check_size(&dims)?;
    let value = match value {
        Some(v) => v.clone(),
        None => Tensor::scalar(0f32),
    };
    if value.len() != 1 {
        return invalid("ConstantOfShape value must have one element");
    }
    let n = smelt_ir::tensor::element_count(&dims)
        .ok_or_else(|| super::EvalError::Invalid(format!("shape {dims:?} is too large")))?;
    match value.bytes() {
        Some(b) if value.dtype().bits() % 8 == 0 => {
            let bytes = if b.iter().all(|x| *x == 0) {
                vec![0u8; n * b.len()]
            } else {
                b.repeat(n)
            };
            Tensor::from_bytes(value.dtype(), dims, bytes).map_err(terr)
        }
        _ => unsupported(format!("ConstantOfShape of {}", value.dtype())),
    }
}

pub(crate) fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> R<Tensor> {
    let dt = start.dtype();
    match (num(start)?, num(limit)?, num(delta)?) {
        (Num::I(s), Num::I(l), Num::I(d)) if s.len() == 1 && l.len() == 1 && d.len() == 1 => {
            let (s, l, d) = (s[0], l[0], d[0]);
            if d == 0 {
                return invalid("Range delta 0");
            }
            let n = ((l - s) as f64 / d as f64).ceil().max(0.0) as usize;
            if n > (1 << 31) {
                return invalid("Range too long");
            }
            let v: Vec<i64> = (0..n as i64).map(|i| s + i * d).collect();
            Tensor::from_i64s(dt, vec![n], &v).map_err(terr)
        }
        (Num::F(s), Num::F(l), Num::F(d)) if s.len() == 1 && l.len() == 1 && d.len() == 1 => {
            let (s, l, d) = (s[0], l[0], d[0]);
            if d == 0.0 {
                return invalid("Range delta 0");
            }
            let n = ((l - s) / d).ceil().max(0.0);
            if !n.is_finite() || n > (1u64 << 31) as f64 {
                return invalid("Range too long");
            }
            // ONNX accumulates in the input dtype: start, start + delta, ...
            let mut v = Vec::with_capacity(n as usize);
            let mut acc = s;
            for _ in 0..n as usize {
                v.push(acc);
                acc = if dt == DType::F32 {
                    (acc as f32 + d as f32) as f64
                } else {
                    acc + d
                };
            }
            Tensor::from_f64s(dt, vec![v.len()], &v).map_err(terr)
        }
        _ => invalid("Range takes three scalars of one type"),
    }
}

/// Pad (constant, edge, reflect, wrap; negative pads crop).
pub(crate) fn pad(
    x: &Tensor,
    pads: &[i64],
    value: Option<&Tensor>,
    axes: Option<Vec<i64>>,
    mode: &str,
) -> R<Tensor> {
    let dims = x.dims();
    let r = dims.len();
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|v| axis(*v, r)).collect::<R<_>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return invalid(format!(
            "Pad takes {} pads, got {}",
            2 * axes.len(),
            pads.len()
        ));
    }
    let mut begin = vec![0i64; r];
    let mut end = vec![0i64; r];
    for (k, a) in axes.iter().enumerate() {
        begin[*a] = pads[k];
        end[*a] = pads[k + axes.len()];
    }
    // Per axis, the source coordinate of every output coordinate (None: the pad value).
    let mut maps: Vec<Vec<Option<usize>>> = vec![];
    let mut out = vec![];
    for k in 0..r {
        let d = dims[k] as i64;
        let n = d + begin[k] + end[k];
        if n < 0 {
            return invalid(format!("Pad leaves axis {k} with {n} elements"));
        }
        if d == 0 && n > 0 && mode != "constant" {
            return invalid(format!("Pad mode {mode} of an empty axis"));
        }
        let m: Vec<Option<usize>> = (0..n)
            .map(|o| {
                let s = o - begin[k];
                if (0..d).contains(&s) {
                    return Some(s as usize);
                }
                match mode {
                    "edge" => Some(s.clamp(0, d - 1) as usize),
                    "wrap" => Some(s.rem_euclid(d) as usize),
                    "reflect" if d == 1 => Some(0),
                    "reflect" => {
                        let p = 2 * (d - 1);
                        let t = s.rem_euclid(p);
                        Some((if t >= d { p - t } else { t }) as usize)
                    }
                    _ => None,
                }
            })
            .collect();
        out.push(n as usize);
        maps.push(m);
    }
    if !matches!(mode, "constant" | "edge" | "wrap" | "reflect") {
        return unsupported(format!("Pad mode {mode}"));
    }
    super::check_size(&out)?;
    let fill = match value {
        Some(v) if v.len() == 1 => v.reshaped(vec![1]).map_err(terr)?,
        Some(_) => return invalid("Pad constant_value must be a scalar"),
        None => Tensor::zeros(x.dtype(), vec![1]).map_err(terr)?,
    };
    let joined = concat(&[&x.reshaped(vec![x.len()]).map_err(terr)?, &fill], 0)?;
    let st = strides(dims);
    let n = count(&out);
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; r];
    for _ in 0..n {
        let mut lin = Some(0usize);
        for k in 0..r {
            lin = match (lin, maps[k][pos[k]]) {
                (Some(l), Some(s)) => Some(l + s * st[k]),
                _ => None,
            };
        }
        idx.push(lin.unwrap_or(x.len()));
        let mut k = r;
        while k > 0 {
            k -= 1;
            pos[k] += 1;
            if pos[k] < out[k] {
                break;
            }
            pos[k] = 0;
        }
    }
    take(&joined, out, idx)
}

/// GatherElements: `out[i][j] = data[index[i][j]][j]` for axis 0, and so on.
pub(crate) fn gather_elements(x: &Tensor, indices: &Tensor, ax: i64) -> R<Tensor> {
    let dims = x.dims();
    let a = axis(ax, dims.len())?;
    let id = indices.dims();
    if id.len() != dims.len() {
        return invalid("GatherElements indices must have the data's rank");
    }
    let Some(ind) = indices.to_i64_vec() else {
        return invalid("GatherElements indices must be integers");
    };
    let st = strides(dims);
    let ist = strides(id);
    let d = dims[a] as i64;
    let mut idx = Vec::with_capacity(ind.len());
    for (k, i) in ind.iter().enumerate() {
        let j = if *i < 0 { i + d } else { *i };
        if j < 0 || j >= d {
            return invalid(format!(
                "GatherElements index {i} out of range for extent {d}"
            ));
        }
        let mut lin = 0;
        for q in 0..dims.len() {
            let c = (k / ist[q]) % id[q];
            let c = if q == a { j as usize } else { c };
            if c >= dims[q] {
                return invalid("GatherElements indices larger than the data");
            }
            lin += c * st[q];
        }
        idx.push(lin);
    }
    take(x, id.to_vec(), idx)
}
