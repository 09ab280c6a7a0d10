//! Prints the text form of an ONNX model: `cargo run --example print_ir -- model.onnx`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: print_ir MODEL.onnx");
        std::process::exit(2);
    };
    match smelt_onnx::load_model(std::path::Path::new(&path)) {
        Ok(m) => print!("{}", m.to_text()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
