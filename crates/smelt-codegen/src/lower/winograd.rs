//! 3×3 stride-1 convolutions by Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2015), m = 2 or 4.
//!
//! Why: Cranelift has 128-bit vectors only, and a direct convolution already runs at the peak
//! of 128-bit FMAs; F(2×2, 3×3) needs 2.25× fewer multiplications and F(4×4, 3×3) 4× fewer,
//! which is how a 3×3-heavy network (ResNet) gets under a 256-bit runtime's latency.
//!
//! The output is cut into m×m tiles, each reading an α×α (α = m + 2) patch of the zero-padded
//! input. With `U = G g Gᵀ` (the weights, transformed at compile time), `V = Bᵀ d B` (each
//! input patch) and `Y = Aᵀ [U ⊙ V] A`, the sum over input channels of `U ⊙ V` is, for each of
//! the α² positions ξ of a patch, one matrix product `M_ξ[M × T] = U_ξ[M × C] · V_ξ[C × T]`
//! over the T tiles — run by the GEMM micro-kernel of [`super::matmul`]. So a conv is:
//!
//! 1. copy the image into a zero-padded buffer whose rows are split into m column planes
//!    (column `m·k + q` at index k of plane q), so that column j of four horizontally adjacent
//!    tiles is one contiguous f32x4 load;
//! 2. input transform, four tiles per vector, into `V` in the GEMM's packed-panel layout
//!    `[ξ][T/8][C][8]`;
//! 3. α² GEMMs into `M[ξ][M][T]`;
//! 4. output transform, bias and fused activation, a 4×4 (m = 4) or 2×2 (m = 2) lane
//!    transpose, and stores of the valid rows and columns.
//!
//! The transforms multiply by small constants (F(2,3): ±1, ½; F(4,3): up to 8), so F(4×4,
//! 3×3) loses a few bits against a direct convolution; the plan picks the tile size with the
//! fewer padded multiplications and m = 2 on ties (tests compare both with tract).

use super::conv::Geom;
use super::matmul::{self, BSrc, Epilogue, Gemm};
use super::{Act, Ctx, R};
use cranelift_codegen::ir::{types, ConstantData, InstBuilder, Value};

/// F(2×2, 3×3): Bᵀ (4×4), G (4×3), Aᵀ (2×4).
const BT2: [[f32; 4]; 4] = [
    [1.0, 0.0, -1.0, 0.0],
    [0.0, 1.0, 1.0, 0.0],
    [0.0, -1.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, -1.0],
];
const G2: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];
const AT2: [[f32; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];

/// F(4×4, 3×3) with interpolation points 0, ±1, ±2, ∞: Bᵀ (6×6), G (6×3), Aᵀ (4×6).
const BT4: [[f32; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
const G4: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];
const AT4: [[f32; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// The transform matrices of one tile size, as slices.
struct Mats {
    bt: Vec<Vec<f32>>,
    g: Vec<Vec<f64>>,
    at: Vec<Vec<f32>>,
}

fn mats(m: usize) -> Mats {
    if m == 4 {
        Mats {
            bt: BT4.iter().map(|r| r.to_vec()).collect(),
            g: G4.iter().map(|r| r.to_vec()).collect(),
            at: AT4.iter().map(|r| r.to_vec()).collect(),
        }
    } else {
        Mats {
            bt: BT2.iter().map(|r| r.to_vec()).collect(),
            g: G2.iter().map(|r| r.to_vec()).collect(),
            at: AT2.iter().map(|r| r.to_vec()).collect(),
        }
    }
}

/// How one convolution runs by Winograd: tile size and the buffers' extents.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WinogradPlan {
    /// Output tile side m (2 or 4).
    pub m: usize,
    /// Input patch side α = m + 2.
    pub alpha: usize,
    /// Tile rows.
    pub th: usize,
    /// Tiles per row, rounded up to a multiple of 4 (one f32x4 of tiles).
    pub twp: usize,
    /// Rows of the padded, plane-split input copy.
    pub p_rows: usize,
    /// Floats per row of that copy (m planes of `twp + 1`).
    pub p_row: usize,
}

impl WinogradPlan {
    /// Tiles per image (including the padding tiles of the last group of each row).
    pub fn tiles(&self) -> usize {
        self.th * self.twp
    }
    fn panels(&self) -> usize {
        self.tiles().div_ceil(8)
    }
    fn xi(&self) -> usize {
        self.alpha * self.alpha
    }
    /// Bytes between the α² matrices of `V` and of `M`. The transforms touch all α² of them
    /// at once; a stride that is a multiple of 4 KiB would map every stream to the same L1
    /// sets, so the stride is one cache line more than a multiple of 64 bytes.
    fn xi_strides(&self, gm: &Geom) -> (usize, usize) {
        let skew = |b: usize| b.div_ceil(64) * 64 + 64;
        (
            skew(self.panels() * gm.c * 8 * 4),
            skew(gm.m * self.tiles() * 4),
        )
    }
    /// Byte offsets in the node's scratch of the padded input, `V` and `M`, and the total.
    fn layout(&self, gm: &Geom) -> (usize, usize, usize, usize) {
        let up = |b: usize| b.div_ceil(64) * 64;
        let p = up((gm.c * self.p_rows * self.p_row + 16) * 4);
        let (vs, ms) = self.xi_strides(gm);
        let v = self.xi() * vs;
        let mm = self.xi() * ms;
        (0, p, p + v, p + v + mm)
    }
    /// Arena bytes the node needs.
    pub fn scratch_bytes(&self, gm: &Geom) -> usize {
        self.layout(gm).3
    }
}

/// The Winograd plan for a convolution, or `None` when it does not apply (not 3×3 stride 1
/// dilation 1 ungrouped 2-D) or would not pay (few channels: the transforms dominate).
pub(crate) fn plan(gm: &Geom) -> Option<WinogradPlan> {
    let shape_ok = (gm.kh, gm.kw, gm.sh, gm.sw, gm.dh, gm.dw, gm.group) == (3, 3, 1, 1, 1, 1, 1)
        && gm.h > 1
        && gm.oh >= 2
        && gm.ow >= 2;
    if !shape_ok || gm.c < 16 || gm.m < 16 {
        return None;
    }
    let direct = 9 * gm.oh * gm.ow;
    let make = |m: usize| {
        let th = gm.oh.div_ceil(m);
        let twp = gm.ow.div_ceil(m).div_ceil(4) * 4;
        WinogradPlan {
            m,
            alpha: m + 2,
            th,
            twp,
            p_rows: m * th + 2,
            p_row: m * (twp + 1),
        }
    };
    let cost = |p: &WinogradPlan| p.xi() * p.tiles();
    let (p2, p4) = (make(2), make(4));
    let best = if cost(&p4) < cost(&p2) { p4 } else { p2 };
    // The transforms cost about as much as a few GEMM columns; ask for a clear gain. The
    // buffers hold every tile of the image at once (no tiling of the image yet): past 64 MiB
    // of scratch the direct convolution, which needs only a padded copy, is the better deal.
    let fits = best.scratch_bytes(gm) <= 64 << 20;
    (fits && cost(&best) * 10 < direct * 7).then_some(best)
}

/// `U[ξ]` = `(G g Gᵀ)[i][j]` for every (output, input) channel pair, ξ = i·α + j, computed in
/// f64, each `U[ξ]` (an M × C matrix) packed in blocks of four rows, `[M/4][C][4]`, for the
/// GEMM kernel's linear stream (see [`Gemm::a_panel`]).
pub(crate) fn transform_weights(w: &[f32], gm: &Geom, p: &WinogradPlan) -> Vec<f32> {
    let mt = mats(p.m);
    let a = p.alpha;
    let mp = gm.m.div_ceil(4) * 4;
    let mut u = vec![0f32; p.xi() * mp * gm.c];
    // Fixed-size copies of G: this runs for every channel pair of the model (a million for
    // ResNet-18), so no allocation or bounds-checked closure per pair.
    let mut gmat = [[0f64; 3]; 6];
    for (dst, src) in gmat.iter_mut().zip(&mt.g) {
        dst.copy_from_slice(src);
    }
    let plane = mp * gm.c;
    for mo in 0..gm.m {
        for c in 0..gm.c {
            let mut g = [[0f64; 3]; 3];
            if let Some(src) = w.get((mo * gm.c + c) * 9..(mo * gm.c + c) * 9 + 9) {
                for (k, v) in src.iter().enumerate() {
                    g[k / 3][k % 3] = f64::from(*v);
                }
            }
            // t = G g (α×3), then U = t Gᵀ (α×α).
            let mut t = [[0f64; 3]; 6];
            for i in 0..a {
                for s in 0..3 {
                    t[i][s] = gmat[i][0] * g[0][s] + gmat[i][1] * g[1][s] + gmat[i][2] * g[2][s];
                }
            }
            let at = ((mo / 4) * gm.c + c) * 4 + mo % 4;
            for i in 0..a {
                for j in 0..a {
                    let v = t[i][0] * gmat[j][0] + t[i][1] * gmat[j][1] + t[i][2] * gmat[j][2];
                    u[(i * a + j) * plane + at] = v as f32;
                }
            }
        }
    }
    u
}

/// A splatted f32 constant from the constant pool (one load, no shuffle).
fn vconst(cx: &mut Ctx, v: f32) -> Value {
    let mut bytes = [0u8; 16];
    for l in 0..4 {
        bytes[l * 4..l * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    let h =
        cx.b.func
            .dfg
            .constants
            .insert(ConstantData::from(&bytes[..]));
    cx.b.ins().vconst(types::F32X4, h)
}

/// `Σ_k coef[k] · x(k)` over the non-zero coefficients, ±1 as adds and subtractions.
fn combine(cx: &mut Ctx, coef: &[f32], x: &mut dyn FnMut(&mut Ctx, usize) -> Value) -> Value {
    let mut acc: Option<Value> = None;
    for (k, &c) in coef.iter().enumerate() {
        if c == 0.0 {
            continue;
        }
        let v = x(cx, k);
        acc = Some(match (acc, c) {
            (None, 1.0) => v,
            (None, c) => {
                let k = vconst(cx, c);
                cx.b.ins().fmul(k, v)
            }
            (Some(a), 1.0) => cx.b.ins().fadd(a, v),
            (Some(a), -1.0) => cx.b.ins().fsub(a, v),
            (Some(a), c) => {
                let k = vconst(cx, c);
                cx.fma(k, v, a)
            }
        });
    }
    match acc {
        Some(a) => a,
        None => vconst(cx, 0.0),
    }
}

/// Lane shuffle of two f32x4: `lanes` index 0..4 into `a`, 4..8 into `b`.
fn shuf(cx: &mut Ctx, a: Value, b: Value, lanes: [u8; 4]) -> Value {
    let mut mask = [0u8; 16];
    for (i, l) in lanes.iter().enumerate() {
        for k in 0..4 {
            mask[i * 4 + k] = l * 4 + k as u8;
        }
    }
    let imm = cx.b.func.dfg.immediates.push(ConstantData::from(&mask[..]));
    let a = cx.b.ins().bitcast(types::I8X16, super::bc(), a);
    let b = cx.b.ins().bitcast(types::I8X16, super::bc(), b);
    let v = cx.b.ins().shuffle(a, b, imm);
    cx.b.ins().bitcast(types::F32X4, super::bc(), v)
}

/// What the lowering of one Winograd conv needs besides the plan.
pub(crate) struct WinogradConv<'a> {
    pub gm: &'a Geom,
    pub plan: &'a WinogradPlan,
    /// Transformed weights `U` and the bias (M floats), in the weights object.
    pub u: Value,
    pub bias: Value,
    /// Input and output of the node, and the node's scratch.
    pub x: Value,
    pub y: Value,
    pub scratch: Value,
    pub act: Act,
}

/// Emits the convolution.
pub(crate) fn lower(cx: &mut Ctx, w: &WinogradConv) -> R<()> {
    let (gm, p) = (w.gm, w.plan);
    let (_, v_off, m_off, _) = p.layout(gm);
    let pbuf = w.scratch;
    let vbuf = cx.offset(w.scratch, v_off as i64);
    let mbuf = cx.offset(w.scratch, m_off as i64);
    let image = (gm.c * gm.h * gm.w * 4) as i64;
    let out_image = (gm.m * gm.oh * gm.ow * 4) as i64;
    cx.for_n(gm.n, |cx, n| {
        let src = cx.index(w.x, n, image);
        copy_split(cx, gm, p, src, pbuf)?;
        input_transform(cx, gm, p, pbuf, vbuf)?;
        let xi_n = p.xi();
        let tiles = p.tiles();
        let (vs, ms) = p.xi_strides(gm);
        cx.for_n(xi_n, |cx, xi| {
            let a = cx.index(w.u, xi, (gm.m.div_ceil(4) * 4 * gm.c * 4) as i64);
            let b = cx.index(vbuf, xi, vs as i64);
            let c = cx.index(mbuf, xi, ms as i64);
            matmul::emit(
                cx,
                &Gemm {
                    m: gm.m,
                    n: tiles,
                    k: gm.c,
                    a: (a, gm.c as i64, 1),
                    a_panel: true,
                    b: BSrc::Packed(b),
                    c: (c, tiles as i64),
                    epi: Epilogue {
                        alpha: 1.0,
                        bias: None,
                        row_bias: None,
                        act: None,
                    },
                },
            )
        })?;
        let dst = cx.index(w.y, n, out_image);
        output_transform(cx, gm, p, mbuf, w.bias, dst, w.act)
    })
}

/// Step 1: zero the padded buffer and copy the image into it, rows split into m planes.
fn copy_split(cx: &mut Ctx, gm: &Geom, p: &WinogradPlan, src: Value, dst: Value) -> R<()> {
    let plane = p.twp + 1;
    super::shape::fill(cx, dst, gm.c * p.p_rows * p.p_row + 16, &[0, 0, 0, 0])?;
    for q in 0..p.m {
        // First input column landing in plane q: (iw + pl) ≡ q (mod m).
        let iw0 = (q as i64 - gm.pl as i64).rem_euclid(p.m as i64) as usize;
        if iw0 >= gm.w {
            continue;
        }
        let count = (gm.w - iw0).div_ceil(p.m);
        let s = cx.offset(src, (iw0 * 4) as i64);
        let at = gm.pt * p.p_row + q * plane + (iw0 + gm.pl) / p.m;
        let d = cx.offset(dst, (at * 4) as i64);
        super::shape::copy_nest(
            cx,
            &[gm.c, gm.h, count],
            s,
            &[(gm.h * gm.w) as i64, gm.w as i64, p.m as i64],
            d,
            &[(p.p_rows * p.p_row) as i64, p.p_row as i64, 1],
            4,
        )?;
    }
    Ok(())
}

/// Step 2: `V = Bᵀ d B` for every channel and tile, four horizontally adjacent tiles per vector.
fn input_transform(cx: &mut Ctx, gm: &Geom, p: &WinogradPlan, pbuf: Value, vbuf: Value) -> R<()> {
    let mt = mats(p.m);
    let (a, m) = (p.alpha, p.m);
    let plane = p.twp + 1;
    let groups = p.twp / 4;
    let xi_stride = p.xi_strides(gm).0 as i64;
    cx.for_n(p.th, |cx, ty| {
        let row0 = cx.index(pbuf, ty, (m * p.p_row * 4) as i64);
        cx.for_n(groups, |cx, g| {
            let base = cx.index(row0, g, 16);
            // Tile group q = ty * groups + g holds tiles 4q..4q+4: panel q / 2, half q % 2.
            let q = {
                let t = cx.b.ins().imul_imm_s(ty, groups as i64);
                cx.b.ins().iadd(t, g)
            };
            let panel = cx.b.ins().ushr_imm_u(q, 1);
            let half = cx.b.ins().band_imm_u(q, 1);
            let vb = cx.index(vbuf, panel, (gm.c * 32) as i64);
            let vb = cx.index(vb, half, 16);
            cx.for_n(gm.c, |cx, c| {
                let d = cx.index(base, c, (p.p_rows * p.p_row * 4) as i64);
                let vc = cx.index(vb, c, 32);
                // Row i of Bᵀ d, then row i of (Bᵀ d) B: α values, stored at once.
                for i in 0..a {
                    let row: Vec<Value> = (0..a)
                        .map(|j| {
                            let off = ((j % m) * plane + j / m) as i64 * 4;
                            combine(cx, &mt.bt[i], &mut |cx, r| {
                                cx.load(types::F32X4, d, (r * p.p_row * 4) as i64 + off)
                            })
                        })
                        .collect();
                    for j in 0..a {
                        let v = combine(cx, &mt.bt[j], &mut |_, k| row[k]);
                        cx.store(v, vc, (i * a + j) as i64 * xi_stride);
                    }
                }
                Ok(())
            })
        })
    })
}

/// Step 4: `Y = Aᵀ M A` + bias, activation, stores of the valid part of each tile group.
fn output_transform(
    cx: &mut Ctx,
    gm: &Geom,
    p: &WinogradPlan,
    mbuf: Value,
    bias: Value,
    y: Value,
    act: Act,
) -> R<()> {
    let m = p.m;
    let full_rows = gm.oh / m;
    let rest_rows = gm.oh % m;
    let groups = p.twp / 4;
    let full_groups = gm.ow / (4 * m);
    let rest_cols = gm.ow % (4 * m);
    debug_assert_eq!(full_groups + usize::from(rest_cols > 0), groups);
    cx.for_n(gm.m, |cx, mo| {
        let bp = cx.index(bias, mo, 4);
        let b = cx.load(types::F32, bp, 0);
        let b = cx.b.ins().splat(types::F32X4, b);
        let mrow = cx.index(mbuf, mo, (p.tiles() * 4) as i64);
        let yc = cx.index(y, mo, (gm.oh * gm.ow * 4) as i64);
        let tile_row = |cx: &mut Ctx, ty: Value, rows: usize| -> R<()> {
            cx.for_n(full_groups, |cx, g| {
                group(cx, gm, p, mrow, yc, b, act, ty, g, rows, 4 * m)
            })?;
            if rest_cols > 0 {
                let g = cx.iconst(full_groups as i64);
                group(cx, gm, p, mrow, yc, b, act, ty, g, rows, rest_cols)?;
            }
            Ok(())
        };
        cx.for_n(full_rows, |cx, ty| tile_row(cx, ty, m))?;
        if rest_rows > 0 {
            let ty = cx.iconst(full_rows as i64);
            tile_row(cx, ty, rest_rows)?;
        }
        Ok(())
    })
}

/// One group of four tiles of one output channel: `rows` × `cols` outputs stored.
#[allow(clippy::too_many_arguments)]
fn group(
    cx: &mut Ctx,
    gm: &Geom,
    p: &WinogradPlan,
    mrow: Value,
    yc: Value,
    bias: Value,
    act: Act,
    ty: Value,
    g: Value,
    rows: usize,
    cols: usize,
) -> R<()> {
    let mt = mats(p.m);
    let (a, m) = (p.alpha, p.m);
    let xi_stride = p.xi_strides(gm).1 as i64;
    // First tile of the group: ty * twp + 4g.
    let t0 = {
        let t = cx.b.ins().imul_imm_s(ty, p.twp as i64);
        let g4 = cx.b.ins().imul_imm_s(g, 4);
        cx.b.ins().iadd(t, g4)
    };
    let src = cx.index(mrow, t0, 4);
    // Output (m·ty, 4m·g).
    let dst = {
        let r = cx.index(yc, ty, (m * gm.ow * 4) as i64);
        cx.index(r, g, (4 * m * 4) as i64)
    };
    for i in 0..rows {
        // Row i of Aᵀ M (α values), then row i of Y = (Aᵀ M) A (m values, lanes = tiles).
        let row: Vec<Value> = (0..a)
            .map(|j| {
                combine(cx, &mt.at[i], &mut |cx, r| {
                    cx.load(types::F32X4, src, (r * a + j) as i64 * xi_stride)
                })
            })
            .collect();
        let yv: Vec<Value> = (0..m)
            .map(|j| {
                let v = combine(cx, &mt.at[j], &mut |_, k| row[k]);
                let v = cx.b.ins().fadd(v, bias);
                super::apply_act(cx, v, act)
            })
            .collect();
        // Lanes are tiles; memory wants each tile's m columns together.
        let out: Vec<Value> = if m == 4 {
            let t0 = shuf(cx, yv[0], yv[1], [0, 4, 1, 5]);
            let t1 = shuf(cx, yv[0], yv[1], [2, 6, 3, 7]);
            let t2 = shuf(cx, yv[2], yv[3], [0, 4, 1, 5]);
            let t3 = shuf(cx, yv[2], yv[3], [2, 6, 3, 7]);
            vec![
                shuf(cx, t0, t2, [0, 1, 4, 5]),
                shuf(cx, t0, t2, [2, 3, 6, 7]),
                shuf(cx, t1, t3, [0, 1, 4, 5]),
                shuf(cx, t1, t3, [2, 3, 6, 7]),
            ]
        } else {
            vec![
                shuf(cx, yv[0], yv[1], [0, 4, 1, 5]),
                shuf(cx, yv[0], yv[1], [2, 6, 3, 7]),
            ]
        };
        let row_off = (i * gm.ow * 4) as i64;
        for (k, v) in out.into_iter().enumerate() {
            let valid = cols.saturating_sub(k * 4).min(4);
            let at = row_off + (k * 16) as i64;
            if valid == 4 {
                cx.store(v, dst, at);
            } else {
                for l in 0..valid {
                    let e = cx.b.ins().extractlane(v, l as u8);
                    cx.store(e, dst, at + l as i64 * 4);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index arithmetic mirrors the formulas
mod tests {
    //! The transform matrices against a direct 1-D and 2-D correlation in f64 (hand-checkable
    //! arithmetic: the identity `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A` must reproduce it).
    use super::*;

    fn check(m: usize) {
        let mt = mats(m);
        let a = m + 2;
        // A deterministic patch and filter.
        let d: Vec<Vec<f64>> = (0..a)
            .map(|i| {
                (0..a)
                    .map(|j| ((i * 7 + j * 3) % 11) as f64 - 5.0)
                    .collect()
            })
            .collect();
        let g: Vec<Vec<f64>> = (0..3)
            .map(|i| {
                (0..3)
                    .map(|j| ((i * 5 + j) % 7) as f64 * 0.5 - 1.0)
                    .collect()
            })
            .collect();
        let bt = |i: usize, k: usize| f64::from(mt.bt[i][k]);
        let at = |i: usize, k: usize| f64::from(mt.at[i][k]);
        let mut u = vec![vec![0f64; a]; a];
        let mut v = vec![vec![0f64; a]; a];
        for i in 0..a {
            for j in 0..a {
                for r in 0..3 {
                    for s in 0..3 {
                        u[i][j] += mt.g[i][r] * g[r][s] * mt.g[j][s];
                    }
                }
                for r in 0..a {
                    for s in 0..a {
                        v[i][j] += bt(i, r) * d[r][s] * bt(j, s);
                    }
                }
            }
        }
        for oy in 0..m {
            for ox in 0..m {
                let mut y = 0.0;
                for i in 0..a {
                    for j in 0..a {
                        y += at(oy, i) * u[i][j] * v[i][j] * at(ox, j);
                    }
                }
                let mut direct = 0.0;
                for r in 0..3 {
                    for s in 0..3 {
                        direct += d[oy + r][ox + s] * g[r][s];
                    }
                }
                assert!(
                    (y - direct).abs() < 1e-9,
                    "F({m},3) at ({oy},{ox}): {y} vs {direct}"
                );
            }
        }
    }

    fn geom(c: usize, m: usize, h: usize, w: usize) -> Geom {
        Geom {
            n: 1,
            c,
            h,
            w,
            m,
            kh: 3,
            kw: 3,
            oh: h,
            ow: w,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: 1,
            pl: 1,
            group: 1,
        }
    }

    #[test]
    fn the_plan_picks_the_tile_with_fewer_padded_multiplications() {
        // ResNet-18's stages: 56 and 14 pad least with 4x4 tiles, 7x7 with 2x2 tiles.
        assert_eq!(plan(&geom(64, 64, 56, 56)).map(|p| p.m), Some(4));
        assert_eq!(plan(&geom(256, 256, 14, 14)).map(|p| p.m), Some(4));
        assert_eq!(plan(&geom(512, 512, 7, 7)).map(|p| p.m), Some(2));
        // 7x7 with 2x2 tiles: 4 tile rows, 4 tiles per row (one f32x4 group).
        let p = plan(&geom(512, 512, 7, 7)).unwrap();
        assert_eq!((p.th, p.twp, p.tiles()), (4, 4, 16));
        // Few channels, tiny images, strides and groups stay direct.
        assert_eq!(plan(&geom(8, 64, 56, 56)), None);
        assert_eq!(plan(&geom(64, 64, 4, 4)), None);
        assert_eq!(
            plan(&Geom {
                sh: 2,
                ..geom(64, 64, 56, 56)
            }),
            None
        );
        assert_eq!(
            plan(&Geom {
                group: 2,
                ..geom(64, 64, 56, 56)
            }),
            None
        );
    }

    #[test]
    fn f2x2_3x3_matrices_compute_a_correlation() {
        check(2);
    }

    #[test]
    fn f4x4_3x3_matrices_compute_a_correlation() {
        check(4);
    }
}
