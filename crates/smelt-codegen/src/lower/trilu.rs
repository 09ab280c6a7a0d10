//! Trilu: the upper or lower triangle of the last two dims (from diagonal `k`), zero
//! elsewhere. One element at a time, as bits of the element's width (any dtype): exporters
//! use it to build causal attention masks, which are small next to the attention itself.

use super::{clif_ty, Ctx, NodeIo, R};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder};
use smelt_ir::Op;

/// Lowers Trilu (`k` must be a constant).
pub(crate) fn lower(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let Op::Trilu(t) = io.op() else {
        return Err("not a Trilu".into());
    };
    let x = io.input(0)?;
    let y = io.output(0)?;
    let k = match io.opt_input(1) {
        Some(_) => io
            .const_ints(1)
            .and_then(|v| v.first().copied())
            .ok_or("Trilu's k must be a constant")?,
        None => 0,
    };
    let n = x.dims.len();
    if n < 2 || y.dims != x.dims {
        return Err("Trilu takes rank 2 or more, output shaped as the input".into());
    }
    let (r, c) = (x.dims[n - 2], x.dims[n - 1]);
    let batch: usize = x.dims[..n - 2].iter().product();
    // The element as an integer of its width: zero bits are 0, 0.0 and false alike.
    let ty = match clif_ty(x.dtype).ok_or("unsupported Trilu dtype")?.bits() {
        8 => types::I8,
        16 => types::I16,
        32 => types::I32,
        _ => types::I64,
    };
    let esz = i64::from(ty.bytes());
    let xp = cx.addr(io.g, x)?;
    let yp = cx.addr(io.g, y)?;
    let upper = t.upper != 0;
    cx.for_n(batch * r, |cx, br| {
        // Row i of this matrix: br mod r.
        let i = cx.b.ins().urem_imm_u(br, r as i64);
        let xr = cx.index(xp, br, c as i64 * esz);
        let yr = cx.index(yp, br, c as i64 * esz);
        cx.for_n(c, |cx, j| {
            let d = cx.b.ins().isub(j, i);
            let keep = if upper {
                cx.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, d, k)
            } else {
                cx.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, d, k)
            };
            let a = cx.index(xr, j, esz);
            let v = cx.load(ty, a, 0);
            let zero = cx.b.ins().iconst(ty, 0);
            let v = cx.b.ins().select(keep, v, zero);
            let o = cx.index(yr, j, esz);
            cx.store(v, o, 0);
            Ok(())
        })
    })
}
