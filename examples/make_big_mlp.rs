//! Writes a large MLP (default: 5 Gemm layers of 2240x2240 f32 = 25.1 M parameters, ~100 MB) as
//! ONNX, for measuring how fast and lean `smelt opt` round-trips big models:
//!
//! ```sh
//! cargo run --release --example make_big_mlp -- /tmp/big.onnx [LAYERS] [WIDTH]
//! /usr/bin/time -v target/release/smelt opt /tmp/big.onnx -o /tmp/big2.onnx
//! ```
use smelt_ir::{ops, DType, Graph, Model, Op, Tensor, Type, Value, ValueId};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: make_big_mlp OUT.onnx [LAYERS] [WIDTH]");
        std::process::exit(2);
    };
    let layers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let width: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2240);
    let mut g = Graph::new("big_mlp");
    let mut h = g.add_input("input", Type::tensor(DType::F32, &[1, width]));
    let mut seed = 1u32;
    for l in 0..layers {
        // Small deterministic weights (an LCG), so the file is the same on every run.
        let w: Vec<f32> = (0..width * width)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.02
            })
            .collect();
        let wv = g.add_const(
            format!("fc{l}.weight"),
            Tensor::from_vec(vec![width, width], &w).expect("shape"),
        );
        let bv = g.add_const(
            format!("fc{l}.bias"),
            Tensor::from_vec(vec![width], &vec![0.01f32; width]).expect("shape"),
        );
        let op = Op::Gemm(ops::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        });
        let id = g
            .add_node(
                format!("fc{l}"),
                op,
                &[Some(h), Some(wv), Some(bv)],
                vec![Value {
                    name: if l + 1 == layers {
                        "logits".into()
                    } else {
                        format!("h{l}")
                    },
                    ty: Type::tensor(DType::F32, &[1, width]),
                }],
            )
            .expect("valid node");
        h = ValueId::new(id, 0);
        if l + 1 < layers {
            let r = g
                .add_node(
                    format!("relu{l}"),
                    Op::Relu(ops::Relu {}),
                    &[Some(h)],
                    vec![Value {
                        name: format!("a{l}"),
                        ty: Type::tensor(DType::F32, &[1, width]),
                    }],
                )
                .expect("valid node");
            h = ValueId::new(r, 0);
        }
    }
    g.set_outputs(vec![h]).expect("output");
    let m = Model::new(g, 17);
    smelt_onnx::save_model(&m, std::path::Path::new(out), &Default::default()).expect("write");
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {out}: {} parameters, {size} bytes",
        layers * (width * width + width)
    );
}
