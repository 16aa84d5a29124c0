fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/../link.ld");
    println!("cargo:rerun-if-changed=../link.ld");
    // Test guests built by `cargo xtask build` before the firmware.
    let root = std::path::Path::new(&dir).parent().unwrap();
    for (name, var) in [("hello", "HV_GUEST_HELLO"), ("bad", "HV_GUEST_BAD")] {
        let elf = root.join(format!("build/guests/{name}.elf"));
        if !elf.exists() {
            panic!("{} is missing: build the firmware with `cargo xtask build`, which builds the test guests first", elf.display());
        }
        println!("cargo:rerun-if-changed={}", elf.display());
        println!("cargo:rustc-env={var}={}", elf.display());
    }
}
