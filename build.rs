//! Build script: hands the linker script to rust-lld for every kernel image
//! (the binary and each test kernel), so the layout lives in one file.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg=--no-rosegment");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=boot/entry.S");
}
