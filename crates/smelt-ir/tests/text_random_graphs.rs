//! Generated graphs round-trip through the text form: odd names (every character the printer
//! must quote), random types, constants of every dtype, attributes of every kind, nested
//! subgraphs with captures, multi-output nodes and absent inputs. Seeded, so a failure
//! reproduces.

use smelt_ir::attr::Attr;
use smelt_ir::graph::Value;
use smelt_ir::text::random::SplitMix64;
use smelt_ir::text::{write_blob, BlobStore};
use smelt_ir::{DType, Dim, Graph, Op, OpaqueOp, Tensor, TensorType, Type, ValueId};
use std::collections::HashSet;

struct Gen {
    rng: SplitMix64,
    serial: usize,
}

const FRAGMENTS: &[&str] = &[
    "a", "x1", "onnx::", ":", "tmp0", "tmp1", " ", "\"", "\\", "\n", "é", "%", "#", "@", "-", ">",
    "_", ".", "/", "1", "2.5", "nan", ";", "{", "}", "\u{7f}", "\t", "return", "graph", "const",
    "?", "*", "=", ",", "(", "[", "<", "\u{1}", "inf", "-1",
];

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn text(&mut self) -> String {
        let n = 1 + self.below(3);
        (0..n)
            .map(|_| FRAGMENTS[self.below(FRAGMENTS.len() as u64) as usize])
            .collect()
    }

    /// A name not in `used` (sometimes empty: unnamed).
    fn name(&mut self, used: &mut HashSet<String>, empty_ok: bool) -> String {
        if empty_ok && self.chance(15) {
            return String::new();
        }
        loop {
            let mut n = self.text();
            if self.chance(30) {
                self.serial += 1;
                n = format!("{n}{}", self.serial);
            }
            if used.insert(n.clone()) {
                return n;
            }
        }
    }

    fn dtype(&mut self) -> DType {
        let all = DType::all();
        all[self.below(all.len() as u64) as usize]
    }

    fn ty(&mut self, depth: usize) -> Type {
        match self.below(if depth > 2 { 3 } else { 8 }) {
            0 => Type::Unknown,
            1 | 2 => Type::Tensor(self.tensor_type()),
            3 => Type::Sequence(Box::new(self.ty(depth + 1))),
            4 => Type::Optional(Box::new(self.ty(depth + 1))),
            5 => Type::Map(self.dtype(), Box::new(self.ty(depth + 1))),
            6 => Type::SparseTensor(self.tensor_type()),
            _ => Type::Tensor(self.tensor_type()),
        }
    }

    fn tensor_type(&mut self) -> TensorType {
        let dtype = if self.chance(85) {
            Some(self.dtype())
        } else {
            None
        };
        let shape = if self.chance(85) {
            let rank = self.below(4);
            Some(
                (0..rank)
                    .map(|_| match self.below(4) {
                        0 => Dim::Unknown,
                        1 => Dim::Sym(self.text()),
                        _ => Dim::Known(self.below(70)),
                    })
                    .collect(),
            )
        } else {
            None
        };
        TensorType { dtype, shape }
    }

    fn tensor(&mut self) -> Tensor {
        let dims: Vec<usize> = (0..self.below(3)).map(|_| self.below(5) as usize).collect();
        let n: usize = dims.iter().product();
        let dtype = self.dtype();
        if dtype == DType::String {
            let strings = (0..n)
                .map(|_| {
                    let mut s = self.text().into_bytes();
                    if self.chance(30) {
                        s.push(0xff);
                    }
                    s
                })
                .collect();
            return Tensor::from_strings(dims, strings).unwrap();
        }
        let len = dtype.bytes_for(n).unwrap();
        let mut bytes: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
        if dtype == DType::Bool {
            bytes.iter_mut().for_each(|b| *b &= 1);
        }
        Tensor::from_bytes(dtype, dims, bytes).unwrap()
    }

    fn attr(&mut self, depth: usize) -> Attr {
        let kinds = if depth >= 2 { 11 } else { 13 };
        match self.below(kinds) {
            0 => Attr::Int(self.rng.next_u64() as i64),
            1 => Attr::Float(f32::from_bits(self.rng.next_u64() as u32)),
            2 => Attr::Str(self.tensor_bytes()),
            3 => Attr::Tensor(self.tensor()),
            4 => Attr::Type(self.ty(0)),
            5 => Attr::Ints(
                (0..self.below(4))
                    .map(|_| self.rng.next_u64() as i64)
                    .collect(),
            ),
            6 => Attr::Floats(
                (0..self.below(4))
                    .map(|_| f32::from_bits(self.rng.next_u64() as u32))
                    .collect(),
            ),
            7 => Attr::Strs((0..self.below(3)).map(|_| self.tensor_bytes()).collect()),
            8 => Attr::Tensors((0..self.below(3)).map(|_| self.tensor()).collect()),
            9 => Attr::Types((0..self.below(3)).map(|_| self.ty(0)).collect()),
            10 => Attr::DType(self.dtype()),
            11 => Attr::Graph(Box::new(self.graph(depth + 1))),
            _ => Attr::Graphs((0..self.below(3)).map(|_| self.graph(depth + 1)).collect()),
        }
    }

    fn tensor_bytes(&mut self) -> Vec<u8> {
        let mut s = self.text().into_bytes();
        if self.chance(20) {
            s.push(0x80);
        }
        s
    }

    fn graph(&mut self, depth: usize) -> Graph {
        let mut used = HashSet::new();
        let name = self.text();
        let mut g = Graph::new(name);
        let mut values: Vec<ValueId> = vec![];
        for _ in 0..self.below(3) {
            let n = self.name(&mut used, true);
            values.push(g.add_input(n, self.ty(0)));
        }
        if depth > 0 {
            for _ in 0..self.below(3) {
                let n = self.name(&mut used, false);
                values.push(g.add_capture(n, self.ty(0)));
            }
        }
        for _ in 0..self.below(3) {
            let n = self.name(&mut used, true);
            values.push(g.add_const(n, self.tensor()));
        }
        for _ in 0..self.below(if depth > 0 { 3 } else { 6 }) {
            let inputs: Vec<Option<ValueId>> = (0..self.below(4))
                .map(|_| {
                    if values.is_empty() || self.chance(20) {
                        None
                    } else {
                        Some(values[self.below(values.len() as u64) as usize])
                    }
                })
                .collect();
            let outs: Vec<Value> = (0..self.below(4))
                .map(|_| Value {
                    name: self.name(&mut used, true),
                    ty: self.ty(0),
                })
                .collect();
            let op = match self.below(4) {
                0 => Op::from_parts(
                    "Gemm",
                    vec![
                        (
                            "alpha".into(),
                            Attr::Float(f32::from_bits(self.rng.next_u64() as u32)),
                        ),
                        ("transA".into(), Attr::Int(1)),
                    ],
                )
                .unwrap(),
                1 => Op::from_parts("Relu", vec![]).unwrap(),
                _ => {
                    let domain = if self.chance(50) {
                        String::new()
                    } else {
                        self.text()
                    };
                    let op_type = self.text();
                    let attrs = (0..self.below(4))
                        .map(|i| (format!("{}{i}", self.text()), self.attr(depth)))
                        .collect();
                    Op::Opaque(OpaqueOp {
                        domain,
                        op_type,
                        attrs,
                    })
                }
            };
            let n = outs.len();
            let id = g.add_node("", op, &inputs, outs).unwrap();
            values.extend((0..n).map(|p| ValueId::new(id, p as u32)));
        }
        let outputs: Vec<ValueId> = values.iter().copied().filter(|_| self.chance(40)).collect();
        g.set_outputs(outputs).unwrap();
        g
    }
}

#[test]
fn generated_graphs_round_trip() {
    let mut gen = Gen {
        rng: SplitMix64::new(7),
        serial: 0,
    };
    for case in 0..300 {
        let g = gen.graph(0);
        let t1 = g.to_text();
        let mut blob = vec![];
        write_blob(&g, &mut blob).unwrap();
        let store = BlobStore::read(&blob).unwrap();
        let g2 = Graph::from_text(&t1, &store)
            .unwrap_or_else(|e| panic!("case {case}: {}\n--- text:\n{t1}", e.render(&t1)));
        let t2 = g2.to_text();
        assert_eq!(t1, t2, "case {case}");
    }
}

/// Random edits of generated texts: no panic, and every error has a position in the text.
#[test]
fn random_edits_of_generated_texts_never_panic() {
    let mut gen = Gen {
        rng: SplitMix64::new(11),
        serial: 0,
    };
    let pieces = [
        "",
        " ",
        "%",
        "_",
        "=",
        ",",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "<",
        ">",
        ":",
        "\"",
        "\\",
        "#",
        "@",
        "?",
        "*",
        "->",
        "graph",
        "return",
        "const",
        "f32[2]",
        "seq<",
        "random(seed=1)",
        "\n",
        ";",
        "9",
        "-",
        "é",
    ];
    let mut errors = 0;
    for _ in 0..60 {
        let g = gen.graph(0);
        let src = g.to_text();
        let store = BlobStore::from_graph(&g);
        let bounds: Vec<usize> = src
            .char_indices()
            .map(|(i, _)| i)
            .chain([src.len()])
            .collect();
        for _ in 0..40 {
            // Replace 0 to 7 characters at a random place with a random piece.
            let i = gen.below(bounds.len() as u64) as usize;
            let j = (i + gen.below(8) as usize).min(bounds.len() - 1);
            let (a, b) = (bounds[i], bounds[j]);
            let piece = pieces[gen.below(pieces.len() as u64) as usize];
            let m = format!("{}{}{}", &src[..a], piece, &src[b..]);
            if let Err(e) = Graph::from_text(&m, &store) {
                let lines = m.split('\n').count();
                assert!(e.line >= 1 && e.line <= lines && e.column >= 1, "{e}\n{m}");
                assert!(e
                    .to_string()
                    .starts_with(&format!("{}:{}: ", e.line, e.column)));
                errors += 1;
            }
        }
    }
    assert!(errors > 1000, "{errors}");
}
