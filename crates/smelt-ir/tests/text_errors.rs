//! Bad text gives an error that names line, column and the problem, never a panic: a table of
//! hand-written cases, and a corpus generated from valid texts (truncations, bad tokens,
//! deleted tokens, duplicated lines). Corrupt blob files are errors too.

use smelt_ir::attr::Attr;
use smelt_ir::graph::Value;
use smelt_ir::text::{write_blob, BlobError, BlobStore, ConstSource, NoConsts, ParseError};
use smelt_ir::{DType, Graph, Model, Op, OpaqueOp, Tensor, Type, ValueId};
use std::collections::HashMap;

fn parse(src: &str) -> Result<Graph, ParseError> {
    Graph::from_text(src, &NoConsts)
}

fn err(src: &str) -> String {
    match parse(src) {
        Ok(g) => panic!("parsed, but should not:\n{src}\n---\n{}", g.to_text()),
        Err(e) => e.to_string(),
    }
}

/// Every case's error, compared all at once so that one run shows every difference.
fn check_cases(cases: &[(&str, &str)]) {
    let mut wrong = vec![];
    for (body, want) in cases {
        let got = err(&format!("{HEAD}{body}"));
        if got != *want {
            wrong.push(format!("{body}  want: {want}\n  got:  {got}\n"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const HEAD: &str = "graph t(x: f32[2]) -> (y: f32[2]) {\n";

#[test]
fn syntax_errors_name_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        (
            "  %y = Relu(%x, , ) : f32[2]\n  return %y\n}\n",
            "2:17: expected `%name` or `_` but found `,`",
        ),
        (
            "  %y = Relu(%x : f32[2]\n  return %y\n}\n",
            "2:16: expected `,` or `)` but found `:`",
        ),
        (
            "  %y = Relu(%x) : f32[2]\n",
            "3:1: expected a node (`%name = …`) or `return` but found end of input",
        ),
        (
            "  %y = Relu(%x) : f32[2]\n  return %y\n",
            "4:1: expected `}` but found end of input",
        ),
        (
            "  %y = Relu(%x) : f32[2]\n  return %y\n}\n}\n",
            "5:1: expected end of input but found `}`",
        ),
        (
            "  %y = Relu(%x) {alpha 1} : f32[2]\n  return %y\n}\n",
            "2:24: expected `=` but found `1`",
        ),
        (
            "  %y = Relu(%x) {a=[\"a long string that the message does not print in full\"]}\n",
            "2:21: expected an integer but found string \"a long string that the message does not…",
        ),
        (
            "  %y = Relu(%x) $ f32[2]\n  return %y\n}\n",
            "2:17: unexpected character `$`",
        ),
        (
            "  %y = Relu(\"%x) : f32[2]\n  return %y\n}\n",
            "2:13: unterminated string",
        ),
        (
            "  %y = @\"a\\q\"(%x) : ?\n  return %y\n}\n",
            "2:11: unknown escape `\\q` (known: \\\" \\\\ \\n \\t \\xNN)",
        ),
        (
            "  %y = @(%x) : ?\n  return %y\n}\n",
            "2:9: expected an op name but found `(`",
        ),
        (
            "  %y = Relu(%x) : f32[2\n  return %y\n}\n",
            "3:3: expected `,` or `]` but found `return`",
        ),
        (
            "  %y = Relu(%x) : f32<2>\n  return %y\n}\n",
            "2:22: expected `[` but found `<`",
        ),
        (
            "  %y = Relu(%x) : seq[2]\n  return %y\n}\n",
            "2:22: expected `<` but found `[`",
        ),
        (
            "  y = Relu(%x) : f32[2]\n  return %y\n}\n",
            "2:3: expected a node (`%name = …`) or `return` but found `y`",
        ),
        (
            "  %y = 3(%x) : f32[2]\n  return %y\n}\n",
            "2:8: unknown op `3` (ops smelt does not type are written `@Name` or `@domain::Name`)",
        ),
    ];
    check_cases(cases);
}

#[test]
fn meaning_errors_point_at_the_offending_token() {
    let cases: &[(&str, &str)] = &[
        // Unknown ops, dtypes, values.
        ("  %y = Frobnicate(%x) : f32[2]\n  return %y\n}\n", "2:8: unknown op `Frobnicate` (ops smelt does not type are written `@Name` or `@domain::Name`)"),
        ("  %y = Relu(%x) : f33[2]\n  return %y\n}\n", "2:19: unknown dtype `f33`"),
        ("  %y = Relu(%z) : f32[2]\n  return %y\n}\n", "2:14: unknown value `%z` (values are defined before use; a subgraph sees outer values only through `captures(…)`)"),
        ("  %y = Relu(%y) : f32[2]\n  return %y\n}\n", "2:14: unknown value `%y` (values are defined before use; a subgraph sees outer values only through `captures(…)`)"),
        // Duplicate names.
        ("  %x = Relu(%x) : f32[2]\n  return %x\n}\n", "2:4: value `%x` is defined twice (first at 1:9)"),
        ("  %y, %y = Split(%x) {axis=0} : f32[1], f32[1]\n  return %y\n}\n", "2:8: value `%y` is defined twice"),
        ("  %y = Relu(%x) {alpha=1, alpha=2} : f32[2]\n  return %y\n}\n", "2:27: attribute `alpha` is given twice"),
        // Attribute errors from the op, at the op.
        ("  %y = Concat(%x) : f32[2]\n  return %y\n}\n", "2:8: Concat: missing required attribute `axis`"),
        ("  %y = Relu(%x) {alpha=1.0} : f32[2]\n  return %y\n}\n", "2:8: Relu: unknown attribute `alpha`"),
        ("  %y = Concat(%x) {axis=\"0\"} : f32[2]\n  return %y\n}\n", "2:8: Concat: attribute `axis` has the wrong kind"),
        ("  %y = Relu(%x) {a=b} : f32[2]\n  return %y\n}\n", "2:20: expected an attribute value but found `b`"),
        ("  %y = Relu(%x) {a=99999999999999999999} : f32[2]\n  return %y\n}\n", "2:20: integer `99999999999999999999` is out of range"),
        // Wrong shapes and constants.
        ("  %c = const f32[2,2] [1, 2, 3]\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:23: f32[2,2] needs 4 elements, found 3"),
        ("  %c = const f32[?] [1]\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:14: a constant needs known dims, found `f32[?]`"),
        ("  %c = const ?[2] [1, 2]\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:14: a constant needs a dtype and a shape, found `?[2]`"),
        ("  %c = const u8[2] [1, 256]\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:24: `256` is not a u8 (from 0 to 255)"),
        ("  %c = const f32[1] [one]\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:22: expected a number but found `one`"),
        ("  %c = const bool[1] [2]\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:23: expected `true` or `false` but found `2`"),
        ("  %c = const c64[1] [1]\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:21: c64 constants have no inline form: use `#hash` or `random(seed=N)`"),
        ("  %c = const f32[1] #00000000000000ab\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:21: no constant #00000000000000ab: the text summarises it by hash and the constant source (the blob file) has nothing under that hash"),
        ("  %c = const f32[1] #abc\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:21: `#abc` is not a hash of 16 hex digits"),
        ("  %c = const f32[1] random(seed=-1)\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:33: expected a seed (an unsigned integer) but found `-1`"),
        ("  %c, %d = const f32[1] [1]\n  %y = Relu(%x) : f32[2]\n  return %y\n}\n", "2:12: a constant has one output, here 2"),
        ("  %y, %z = Split(%x) {axis=0} : f32[1]\n  return %y\n}\n", "2:31: 2 output(s) but 1 type(s): give one type per output"),
        // Signature and return.
        ("  %y = Relu(%x) : f32[2]\n  return %y, %x\n}\n", "3:3: the signature lists 1 output(s) but `return` gives 2"),
        ("  %z = Relu(%x) : f32[2]\n  return %z\n}\n", "3:10: `return` gives `%z` where the signature lists `y`"),
        ("  %y = Relu(%x) : f32[3]\n  return %y\n}\n", "1:24: output `y` is `f32[2]` in the signature but `f32[3]` where it is defined"),
        ("  %y = Relu(%x) : f32[2], f32[2]\n  return %y\n}\n", "2:17: 1 output(s) but 2 type(s): give one type per output"),
    ];
    check_cases(cases);
    assert_eq!(
        err("graph t(x: f32[2], x: f32[2]) -> () {\n  return\n}\n"),
        "1:20: value `%x` is defined twice (first at 1:9)"
    );
    // A subgraph sees outer values only through its captures.
    let src = "graph t(c: bool[], x: f32[2]) -> (y: f32[2]) {
  %y = If(%c) {else_branch=graph e() -> (o: f32[2]) {
      return %x
    }, then_branch=graph t() -> (o: f32[2]) {
      return %x
    }} : f32[2]
  return %y
}
";
    assert!(
        err(src).starts_with("3:15: unknown value `%x`"),
        "{}",
        err(src)
    );
    // Model header.
    let e = Model::from_text(
        "model ir_version=8 opset(ai.onnx=x)\ngraph g() -> () {\n return\n}\n",
        &NoConsts,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "1:34: expected an integer but found `x`");
    let e = Graph::from_text(
        "model ir_version=8 opset()\ngraph g() -> () {\n return\n}\n",
        &NoConsts,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "1:1: expected `graph` but found `model` (a model's text reads with `Model::from_text`)"
    );
}

#[test]
fn render_shows_the_line_and_a_caret() {
    let src = format!("{HEAD}  %y = Relu(%x : f32[2]\n  return %y\n}}\n");
    let e = parse(&src).unwrap_err();
    assert_eq!(
        e.render(&src),
        "2:16: expected `,` or `)` but found `:`\n    %y = Relu(%x : f32[2]\n                 ^"
    );
    assert_eq!(e.expected.as_deref(), Some("`,` or `)`"));
    assert_eq!(e.found.as_deref(), Some("`:`"));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let src = format!(
        "graph t(x: {}f32[2]{}) -> () {{\n  return\n}}\n",
        "seq<".repeat(100_000),
        ">".repeat(100_000)
    );
    assert!(err(&src).contains("nested too deeply"));
    // 16 levels of subgraphs are fine, 17 are not.
    let nest = |n: usize| {
        let mut src = String::new();
        for _ in 0..n {
            src.push_str("graph g() -> () {\n = @A() {g=");
        }
        src.push_str("graph g() -> () { return }");
        for _ in 0..n {
            src.push_str("}\n return\n}");
        }
        src
    };
    Graph::from_text(&nest(15), &NoConsts).unwrap();
    assert_eq!(
        err(&nest(16)),
        "17:12: nested too deeply (at most 64 levels of types, 16 of subgraphs)"
    );
    let mut src = String::new();
    for _ in 0..200 {
        src.push_str("graph g() -> () {\n = @A() {g=");
    }
    assert!(err(&src).contains("nested too deeply"));
}

#[test]
fn constants_that_disagree_with_the_text_are_errors() {
    let t = Tensor::from_vec(vec![10], &[1.0f32; 10]).unwrap();
    let h = t.content_hash();
    let mut wrong_shape: HashMap<u64, Tensor> = HashMap::new();
    wrong_shape.insert(h, t.reshaped(vec![2, 5]).unwrap());
    let src =
        format!("graph t() -> (c: f32[10]) {{\n  %c = const f32[10] #{h:016x}\n  return %c\n}}\n");
    let e = Graph::from_text(&src, &wrong_shape).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "2:22: constant #{h:016x} is f32[2,5] in the constant source but f32[10] in the text"
        )
    );
    let mut wrong_data: HashMap<u64, Tensor> = HashMap::new();
    let other = Tensor::from_vec(vec![10], &[2.0f32; 10]).unwrap();
    wrong_data.insert(h, other.clone());
    let e = Graph::from_text(&src, &wrong_data).unwrap_err();
    assert!(e.to_string().contains("gave a tensor with hash"), "{e}");
    let mut right: HashMap<u64, Tensor> = HashMap::new();
    right.insert(h, t.clone());
    let g = Graph::from_text(&src, &right).unwrap();
    assert_eq!(g.const_value(g.outputs()[0]), Some(&t));
    assert!(ConstSource::get(&right, h + 1).is_none());
}

// ---- generated corpus ---------------------------------------------------------------------------

fn val(name: &str, ty: Type) -> Value {
    Value {
        name: name.into(),
        ty,
    }
}

/// A graph touching most of the syntax: constants (inline, hashed), opaque ops with every
/// attribute kind, a subgraph with captures, multi-output nodes, absent inputs, odd names.
fn corpus_graph() -> Graph {
    let f = |d: &[usize]| Type::tensor(DType::F32, d);
    let mut g = Graph::new("corpus");
    let x = g.add_input("x", f(&[4, 4]));
    let c = g.add_input("c", Type::tensor(DType::Bool, &[]));
    let w = g.add_const("w", Tensor::from_vec(vec![4, 4], &[0.5f32; 16]).unwrap());
    let b = g.add_const(
        "b b",
        Tensor::from_vec(vec![4], &[1.0f32, -2.0, 1e-5, 0.0]).unwrap(),
    );
    let gemm = g
        .add_node(
            "",
            Op::from_parts("Gemm", vec![("transB".into(), Attr::Int(1))]).unwrap(),
            &[Some(x), Some(w), Some(b)],
            vec![val("h", f(&[4, 4]))],
        )
        .unwrap();
    let h = ValueId::new(gemm, 0);
    let split = g
        .add_node(
            "",
            Op::from_parts("Split", vec![("num_outputs".into(), Attr::Int(2))]).unwrap(),
            &[Some(h), None],
            vec![val("s0", f(&[2, 4])), val("", f(&[2, 4]))],
        )
        .unwrap();
    let mut sub = Graph::new("then");
    let cap = sub.add_capture("cap", f(&[2, 4]));
    let r = sub
        .add_node(
            "",
            Op::from_parts("Relu", vec![]).unwrap(),
            &[Some(cap)],
            vec![val("r", f(&[2, 4]))],
        )
        .unwrap();
    sub.set_outputs(vec![ValueId::new(r, 0)]).unwrap();
    let opq = g
        .add_node(
            "",
            Op::Opaque(OpaqueOp {
                domain: "com.x".into(),
                op_type: "Thing".into(),
                attrs: vec![
                    ("f".into(), Attr::Float(0.25)),
                    ("s".into(), Attr::Str(b"s\"q".to_vec())),
                    ("is".into(), Attr::Ints(vec![1, 2])),
                    ("fs".into(), Attr::Floats(vec![1.5])),
                    ("ss".into(), Attr::Strs(vec![b"a".to_vec()])),
                    ("t".into(), Attr::Tensor(Tensor::scalar(3i64))),
                    ("ty".into(), Attr::Type(Type::Sequence(Box::new(f(&[2]))))),
                    ("tys".into(), Attr::Types(vec![Type::Unknown])),
                    ("dt".into(), Attr::DType(DType::F16)),
                    ("g".into(), Attr::Graph(Box::new(sub))),
                ],
            }),
            &[Some(c), Some(ValueId::new(split, 0))],
            vec![val("o", Type::Unknown)],
        )
        .unwrap();
    g.set_outputs(vec![ValueId::new(opq, 0), ValueId::new(split, 1)])
        .unwrap();
    g
}

/// Checks one parse: no panic (a panic fails the test), and an error names a line and a
/// column inside the text (or just past its end) and the problem.
fn check_error_shape(src: &str, consts: &dyn ConstSource) -> bool {
    match Graph::from_text(src, consts) {
        Ok(_) => false,
        Err(e) => {
            let lines = src.split('\n').count();
            assert!(
                e.line >= 1 && e.line <= lines,
                "{e} (text has {lines} lines)\n{src}"
            );
            let len = src
                .split('\n')
                .nth(e.line - 1)
                .map(|l| l.chars().count())
                .unwrap_or(0);
            assert!(
                e.column >= 1 && e.column <= len + 1,
                "{e}: column past the line\n{src}"
            );
            assert!(!e.message.is_empty());
            assert!(e
                .to_string()
                .starts_with(&format!("{}:{}: ", e.line, e.column)));
            true
        }
    }
}

/// The text split into tokens the way a person would edit it: runs of name characters, and
/// single other characters.
fn tokens(src: &str) -> Vec<(usize, usize)> {
    let mut out = vec![];
    let mut it = src.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c.is_whitespace() {
            continue;
        }
        let mut end = i + c.len_utf8();
        if smelt_ir::text::is_name_char(c) {
            while let Some((j, d)) = it.peek().copied() {
                if !smelt_ir::text::is_name_char(d) {
                    break;
                }
                end = j + d.len_utf8();
                it.next();
            }
        }
        out.push((i, end));
    }
    out
}

#[test]
fn generated_malformed_corpus_never_panics_and_errors_have_positions() {
    let g = corpus_graph();
    let src = g.to_text();
    let store = BlobStore::from_graph(&g);
    assert_eq!(Graph::from_text(&src, &store).unwrap().to_text(), src);
    let end = src.rfind('}').unwrap();

    // Every truncation before the closing brace is an error.
    let mut errors = 0;
    for (i, _) in src.char_indices() {
        let failed = check_error_shape(&src[..i], &store);
        assert!(
            failed || i > end,
            "truncation at {i} parsed:\n{}",
            &src[..i]
        );
        errors += failed as usize;
    }

    // Tokens replaced by bad ones, and deleted.
    let bad = [
        ")",
        "(",
        "%",
        "_",
        "@",
        "#",
        "#zz",
        "\"",
        "\"open",
        "$",
        "f33[2]",
        "?",
        "*",
        "->",
        "[",
        "]",
        "{",
        "}",
        ",",
        "=",
        ":",
        "99999999999999999999999",
        "nan",
        "-",
        "Frobnicate",
        "const",
        "graph",
        "return",
        "random(seed=1)",
        "seq<",
        "\\",
        "\u{0}",
        "é",
        "",
    ];
    let toks = tokens(&src);
    let mut mutants = 0;
    for &(a, b) in &toks {
        for r in bad {
            let m = format!("{}{}{}", &src[..a], r, &src[b..]);
            errors += check_error_shape(&m, &store) as usize;
            mutants += 1;
        }
    }

    // Every line duplicated (duplicate names, two returns, …) and dropped.
    let lines: Vec<&str> = src.lines().collect();
    for i in 0..lines.len() {
        let mut dup = lines.clone();
        dup.insert(i, lines[i]);
        errors += check_error_shape(&dup.join("\n"), &store) as usize;
        let mut drop = lines.clone();
        drop.remove(i);
        errors += check_error_shape(&drop.join("\n"), &store) as usize;
    }

    // Without the blob, the hashed weight is the error.
    assert!(check_error_shape(&src, &NoConsts));
    assert!(mutants > 1000, "{mutants}");
    assert!(errors > mutants / 2, "{errors} errors of {mutants} mutants");
}

// ---- blob files ---------------------------------------------------------------------------------

fn blob_of(g: &Graph) -> Vec<u8> {
    let mut b = vec![];
    write_blob(g, &mut b).unwrap();
    b
}

fn blob_graph() -> Graph {
    let mut g = Graph::new("blob");
    let a = g.add_const("a", Tensor::from_vec(vec![3, 5], &[7i64; 15]).unwrap());
    let s = g.add_const(
        "s",
        Tensor::from_strings(vec![2, 1], vec![b"hi".to_vec(), vec![]]).unwrap(),
    );
    let f = g.add_const("f", Tensor::from_vec(vec![9], &[0.5f32; 9]).unwrap());
    let z = g.add_const("z", Tensor::from_vec::<f32>(vec![0, 9], &[]).unwrap());
    g.set_outputs(vec![a, s, f, z]).unwrap();
    g
}

#[test]
fn blob_round_trips_and_is_deterministic() {
    let g = blob_graph();
    let b = blob_of(&g);
    assert_eq!(&b[..8], b"SMELTBLB");
    assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 1);
    assert_eq!(
        u64::from_le_bytes(b[12..20].try_into().unwrap()),
        3,
        "z prints inline"
    );
    assert_eq!(b, blob_of(&g));
    let store = BlobStore::read(&b).unwrap();
    assert_eq!(store.len(), 3);
    let g2 = Graph::from_text(&g.to_text(), &store).unwrap();
    assert_eq!(g2.to_text(), g.to_text());
    let empty = blob_of(&Graph::new("e"));
    assert_eq!(empty.len(), 20);
    assert!(BlobStore::read(&empty).unwrap().is_empty());
}

#[test]
fn corrupt_blobs_are_errors_never_panics() {
    let b = blob_of(&blob_graph());
    for n in 0..b.len() {
        assert!(BlobStore::read(&b[..n]).is_err(), "truncated to {n} bytes");
    }
    for i in 0..b.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut c = b.clone();
            c[i] ^= flip;
            assert!(
                BlobStore::read(&c).is_err(),
                "byte {i} ^ {flip:#x} read fine"
            );
        }
    }
    let mut extra = b.clone();
    extra.push(0);
    assert_eq!(
        BlobStore::read(&extra).unwrap_err(),
        BlobError::TrailingBytes(1)
    );
    assert_eq!(
        BlobStore::read(b"NOTABLOB").unwrap_err(),
        BlobError::BadMagic
    );
    let mut v2 = b.clone();
    v2[8] = 2;
    assert_eq!(BlobStore::read(&v2).unwrap_err(), BlobError::Version(2));

    // Huge counts and lengths fail on the bytes that are left, before any allocation.
    let header = |count: u64| {
        let mut h = b"SMELTBLB".to_vec();
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&count.to_le_bytes());
        h
    };
    assert!(matches!(
        BlobStore::read(&header(u64::MAX)),
        Err(BlobError::Truncated { .. })
    ));
    let entry = |code: u32, dims: &[u64], len: u64| {
        let mut e = header(1);
        e.extend_from_slice(&0u64.to_le_bytes());
        e.extend_from_slice(&code.to_le_bytes());
        e.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            e.extend_from_slice(&d.to_le_bytes());
        }
        e.extend_from_slice(&len.to_le_bytes());
        e
    };
    let mut huge_rank = header(1);
    huge_rank.extend_from_slice(&0u64.to_le_bytes());
    huge_rank.extend_from_slice(&1u32.to_le_bytes());
    huge_rank.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        BlobStore::read(&huge_rank),
        Err(BlobError::Truncated { what: "dims", .. })
    ));
    assert!(matches!(
        BlobStore::read(&entry(1, &[4], u64::MAX)),
        Err(BlobError::Truncated { what: "data", .. })
    ));
    assert!(matches!(
        BlobStore::read(&entry(1, &[u64::MAX, u64::MAX], 0)),
        Err(BlobError::BadShape { .. })
    ));
    assert!(matches!(
        BlobStore::read(&entry(8, &[1 << 40], 0)),
        Err(BlobError::BadLength { .. })
    ));
    assert!(matches!(
        BlobStore::read(&entry(99, &[1], 0)),
        Err(BlobError::BadDType { code: 99, .. })
    ));
    let mut short = entry(1, &[2], 8);
    short.extend_from_slice(&[0; 8]);
    assert!(matches!(
        BlobStore::read(&short),
        Err(BlobError::HashMismatch { .. })
    ));
    let mut bad_len = entry(1, &[2], 4);
    bad_len.extend_from_slice(&[0; 4]);
    assert!(matches!(
        BlobStore::read(&bad_len),
        Err(BlobError::BadLength {
            expected: 8,
            got: 4,
            ..
        })
    ));
}
