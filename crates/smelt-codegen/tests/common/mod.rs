//! Helpers shared by the integration tests: build small graphs, run them through the JIT.
#![allow(dead_code)]

use smelt_codegen::jit::{compile, Options, TensorView};
use smelt_ir::{infer, DType, Graph, Op, Tensor, Type, Value, ValueId};

/// A graph under construction.
pub struct G {
    pub g: Graph,
    n: usize,
}

impl G {
    pub fn new() -> G {
        G {
            g: Graph::new("t"),
            n: 0,
        }
    }
    pub fn input(&mut self, name: &str, dtype: DType, dims: &[usize]) -> ValueId {
        self.g.add_input(name, Type::tensor(dtype, dims))
    }
    pub fn konst(&mut self, t: Tensor) -> ValueId {
        self.n += 1;
        let name = format!("c{}", self.n);
        self.g.add_const(name, t)
    }
    pub fn cf32(&mut self, dims: &[usize], v: &[f32]) -> ValueId {
        self.konst(Tensor::from_vec(dims.to_vec(), v).unwrap())
    }
    pub fn ci64(&mut self, v: &[i64]) -> ValueId {
        self.konst(Tensor::from_vec(vec![v.len()], v).unwrap())
    }
    /// Adds a node with `n_out` outputs; returns their values.
    pub fn node_n(&mut self, op: Op, ins: &[Option<ValueId>], n_out: usize) -> Vec<ValueId> {
        self.n += 1;
        let outs = (0..n_out)
            .map(|i| Value {
                name: format!("v{}_{i}", self.n),
                ty: Type::Unknown,
            })
            .collect();
        let id = self
            .g
            .add_node(format!("n{}", self.n), op, ins, outs)
            .unwrap();
        (0..n_out).map(|i| ValueId::new(id, i as u32)).collect()
    }
    pub fn node(&mut self, op: Op, ins: &[ValueId]) -> ValueId {
        let ins: Vec<Option<ValueId>> = ins.iter().map(|v| Some(*v)).collect();
        self.node_n(op, &ins, 1)[0]
    }
    pub fn finish(mut self, outs: &[ValueId]) -> Graph {
        self.g.set_outputs(outs.to_vec()).unwrap();
        infer::infer_graph(&mut self.g).unwrap();
        self.g
    }
}

pub fn t32(dims: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(dims.to_vec(), v).unwrap()
}

pub fn run(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let mut m = compile(g, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let views: Vec<TensorView> = inputs.iter().map(TensorView::from).collect();
    m.run(&views).unwrap_or_else(|e| panic!("{e}"))
}

pub fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_f32_vec().unwrap()
}

/// Asserts closeness with rtol/atol, naming the first bad index.
pub fn close(got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= atol + rtol * w.abs();
        assert!(ok, "at {i}: got {g}, want {w}");
    }
}

/// Deterministic pseudo-random f32s in [lo, hi).
pub fn rand(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}
