// The Interop messages, generated as ttrpc-codegen 0.8 generates them: rust-protobuf's
// pure-Rust codegen (no protoc) from the proto the TypeScript and Go sides use.
fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let include = format!("{manifest}/../../proto");
    let input = format!("{include}/ttrpces/interop/v1/interop.proto");
    println!("cargo:rerun-if-changed={input}");
    protobuf_codegen::Codegen::new()
        .pure()
        .include(&include)
        .input(&input)
        .cargo_out_dir("protos")
        .run_from_script();
}
