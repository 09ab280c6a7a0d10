//! A pass of your own, tested as text: `Relu(Relu(x))` becomes `Relu(x)`.
//!
//! `cargo run --example custom_pass` runs the pass on a small graph and prints the result;
//! `cargo test --example custom_pass` runs the same checks as tests. docs/testing.md explains
//! the testing API (`smelt::testing`) this uses.

use smelt::ir::{Graph, Op};
use smelt::passes::{Changed, Pass, PassCtx, PassError};

/// `Relu(Relu(x))` → `Relu(x)`: Relu is idempotent. The outer Relu reads `x` directly and keeps
/// its output name (the same numbers under the same name); the inner one goes when nothing else
/// reads it.
struct DoubleRelu;

impl Pass for DoubleRelu {
    fn name(&self) -> &'static str {
        "double-relu"
    }

    fn run(&self, g: &mut Graph, cx: &mut PassCtx) -> Result<Changed, PassError> {
        let mut n = 0;
        for outer in g.node_ids() {
            if !matches!(g.node(outer).op, Op::Relu(_)) {
                continue;
            }
            let Some(mid) = g.node_input(outer, 0) else {
                continue;
            };
            if !matches!(g.node(mid.node).op, Op::Relu(_)) {
                continue;
            }
            let Some(x) = g.node_input(mid.node, 0) else {
                continue;
            };
            g.set_node_input(outer, 0, Some(x))
                .map_err(|source| PassError::Graph {
                    pass: "double-relu",
                    source,
                })?;
            n += 1;
        }
        g.remove_dead_nodes();
        cx.note(format!("{n} double Relu(s) removed"));
        Ok(Changed::count(n))
    }
}

/// The pass on a graph where it applies: `y = Relu(Relu(x))` and a triple Relu.
const BEFORE: &str = "
graph g(x: f32[4]) -> (y: f32[4], z: f32[4]) {
  %a = Relu(%x)
  %y = Relu(%a)
  %b = Relu(%x)
  %c = Relu(%b)
  %z = Relu(%c)
  return %y, %z
}";

/// What the pass must give: every chain of Relus is one Relu, under the output's name.
const AFTER: &str = "graph g(x: f32[4]) -> (y: f32[4], z: f32[4]) {
  %y = Relu(%x) : f32[4]
  %z = Relu(%x) : f32[4]
  return %y, %z
}
";

/// A graph where it must not apply: the inner Relu's value is also a graph output.
const KEPT: &str = "graph g(x: f32[4]) -> (a: f32[4], y: f32[4]) {
  %a = Relu(%x) : f32[4]
  %y = Sigmoid(%a) : f32[4]
  return %a, %y
}
";

fn check() -> Result<String, smelt::testing::TestingError> {
    let after = smelt::testing::run_pass(BEFORE, &DoubleRelu)?;
    // With insta: insta::assert_snapshot!(after);
    assert_eq!(after, AFTER);
    assert_eq!(smelt::testing::run_pass(KEPT, &DoubleRelu)?, KEPT);
    // The built-in passes compose with it: fold then merges the two Relu(x) (CSE), and the
    // second output keeps its name through an Identity.
    let folded = smelt::testing::run_passes(&after, "fold")?;
    assert!(folded.contains("%z = Identity(%y)"), "{folded}");
    Ok(after)
}

fn main() {
    match check() {
        Ok(after) => print!("{BEFORE}\n\nafter double-relu:\n{after}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn double_relu() {
        super::check().unwrap();
    }

    #[test]
    fn parse_errors_point_at_the_line() {
        let e = smelt::testing::run_pass(
            "graph g(x: f32[4]) -> (y: f32[4]) {\n  %y = Relu(%q)\n  return %y\n}",
            &super::DoubleRelu,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("2:"), "{e}");
    }
}
