//! Convolutions with large strides (patch embeddings: kernel = stride = 8, 14, 16; AlexNet's
//! 11×11/4 stem) as one GEMM over gathered patches: `Y[M × P] = W[M × K] · cols[K × P]`,
//! K = C·kh·kw, P = oh·ow.
//!
//! Why: the direct kernel reads four output columns' inputs per tap as one vector, which
//! for strides above 2 becomes four scalar loads; here each input element is copied into
//! its patch column once (for non-overlapping patches the copy is a permutation of the
//! input), and the product runs on the GEMM micro-kernel with W packed by row blocks.
//! Padding goes through a zero-padded copy of the image first, so the gather has no bounds.

use super::conv::Geom;
use super::matmul::{self, BSrc, Epilogue, Gemm};
use super::{Act, Ctx, R};
use cranelift_codegen::ir::{InstBuilder, Value};

/// Whether a convolution goes this way: ungrouped, a stride above 2 (where the direct
/// kernel gathers), 2-D.
pub(crate) fn applies(gm: &Geom) -> bool {
    gm.group == 1 && (gm.sw > 2 || gm.sh > 2) && gm.h > 1
}

/// Padded image extents `(hp, wp)` when the convolution pads (or reads past the input).
fn padded(gm: &Geom) -> Option<(usize, usize)> {
    let need_h = (gm.oh.saturating_sub(1)) * gm.sh + (gm.kh - 1) * gm.dh + 1;
    let need_w = (gm.ow.saturating_sub(1)) * gm.sw + (gm.kw - 1) * gm.dw + 1;
    let hp = (gm.h + gm.pt).max(need_h);
    let wp = (gm.w + gm.pl).max(need_w);
    (gm.pt > 0 || gm.pl > 0 || hp > gm.h || wp > gm.w).then_some((hp, wp))
}

/// Bytes of scratch: the padded image (if any) and the patch matrix, 64-byte aligned.
pub(crate) fn scratch_bytes(gm: &Geom) -> usize {
    let up = |b: usize| b.div_ceil(64) * 64;
    let pad = padded(gm)
        .map(|(hp, wp)| up(gm.c * hp * wp * 4))
        .unwrap_or(0);
    pad + up(gm.c * gm.kh * gm.kw * gm.oh * gm.ow * 4)
}

/// Packs `[M][K]` weights into blocks of four rows, `[M/4][K][4]`, zero rows past M.
pub(crate) fn pack_rows(w: &[f32], m: usize, k: usize) -> Vec<f32> {
    let mp = m.div_ceil(4) * 4;
    let mut out = vec![0f32; mp * k];
    for mo in 0..m {
        for kk in 0..k {
            out[((mo / 4) * k + kk) * 4 + mo % 4] = w.get(mo * k + kk).copied().unwrap_or(0.0);
        }
    }
    out
}

/// What the lowering needs besides the geometry.
pub(crate) struct Im2colConv {
    /// Weights packed by [`pack_rows`], bias (M floats, padded to a multiple of 4).
    pub w: Value,
    pub bias: Value,
    pub x: Value,
    pub y: Value,
    pub scratch: Value,
    pub act: Act,
}

/// Emits the convolution.
pub(crate) fn lower(cx: &mut Ctx, gm: &Geom, c: &Im2colConv) -> R<()> {
    let up = |b: usize| b.div_ceil(64) * 64;
    let pad = padded(gm);
    let cols = cx.offset(
        c.scratch,
        pad.map(|(hp, wp)| up(gm.c * hp * wp * 4)).unwrap_or(0) as i64,
    );
    let (hp, wp) = pad.unwrap_or((gm.h, gm.w));
    let p = gm.oh * gm.ow;
    let k = gm.c * gm.kh * gm.kw;
    cx.for_n(gm.n, |cx, n| {
        let img = cx.index(c.x, n, (gm.c * gm.h * gm.w * 4) as i64);
        let src = match pad {
            Some(_) => {
                super::shape::fill(cx, c.scratch, gm.c * hp * wp, &[0, 0, 0, 0])?;
                let d = cx.offset(c.scratch, ((gm.pt * wp + gm.pl) * 4) as i64);
                super::shape::copy_nest(
                    cx,
                    &[gm.c, gm.h, gm.w],
                    img,
                    &[(gm.h * gm.w) as i64, gm.w as i64, 1],
                    d,
                    &[(hp * wp) as i64, wp as i64, 1],
                    4,
                )?;
                c.scratch
            }
            None => img,
        };
        // Row (ci, ky, kx) of the patch matrix: the input at (oy·sh + ky·dh, ox·sw + kx·dw).
        cx.for_n(gm.c, |cx, ci| {
            let plane = cx.index(src, ci, (hp * wp * 4) as i64);
            cx.for_n(gm.kh, |cx, ky| {
                let row = cx.index(plane, ky, (gm.dh * wp * 4) as i64);
                cx.for_n(gm.kw, |cx, kx| {
                    let s = cx.index(row, kx, (gm.dw * 4) as i64);
                    let r = {
                        let a = cx.b.ins().imul_imm_s(ci, (gm.kh * gm.kw) as i64);
                        let b = cx.b.ins().imul_imm_s(ky, gm.kw as i64);
                        let ab = cx.b.ins().iadd(a, b);
                        cx.b.ins().iadd(ab, kx)
                    };
                    let d = cx.index(cols, r, (p * 4) as i64);
                    super::shape::copy_nest(
                        cx,
                        &[gm.oh, gm.ow],
                        s,
                        &[(gm.sh * wp) as i64, gm.sw as i64],
                        d,
                        &[gm.ow as i64, 1],
                        4,
                    )
                })
            })
        })?;
        let out = cx.index(c.y, n, (gm.m * p * 4) as i64);
        matmul::emit(
            cx,
            &Gemm {
                m: gm.m,
                n: p,
                k,
                a: (c.w, 0, 0),
                a_panel: true,
                b: BSrc::Strided {
                    ptr: cols,
                    ks: p as i64,
                    ns: 1,
                },
                c: (out, p as i64),
                epi: Epilogue {
                    alpha: 1.0,
                    bias: None,
                    row_bias: Some(c.bias),
                    act: c.act,
                },
            },
        )
    })
}
