fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/../link.ld");
    println!("cargo:rerun-if-changed=../link.ld");
    // Test guests built by `cargo xtask build` before the firmware.
    let root = std::path::Path::new(&dir).parent().unwrap();
    let hello = root.join("build/guests/hello.elf");
    println!("cargo:rerun-if-changed={}", hello.display());
    println!("cargo:rustc-env=HV_GUEST_HELLO={}", hello.display());
}
