//! Style rules as a test (as rust-analyzer's tidy): every Rust file opens with a `//!` doc
//! saying what it is, and no test is marked should-panic or ignored.

mod common;

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') && name != "data" {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_rust_file_has_a_module_doc_and_no_test_is_hidden() {
    let root = common::root();
    let mut files = vec![];
    for d in ["crates", "tests", "benches", "examples", "src"] {
        rust_files(&root.join(d), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut problems = vec![];
    // Spelled in two pieces so that this file does not match itself.
    let banned = [concat!("#[should", "_panic"), concat!("#[ig", "nore]")];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{}: no `//!` module doc at the top", f.display()));
        }
        for b in banned {
            if text.contains(b) {
                problems.push(format!("{}: uses {b}", f.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
