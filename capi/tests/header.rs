//! The committed header `include/xray_projector.h` is what cbindgen generates from
//! `src/` with `cbindgen.toml`.
//!
//! After changing the API, regenerate ("bless") it with
//! `XRAY_BLESS=1 cargo test -p xray-projector-capi --test header`, and commit it.

use std::path::Path;

/// The header as cbindgen generates it now.
fn generated_header(crate_dir: &Path) -> String {
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .unwrap_or_else(|error| panic!("cannot read cbindgen.toml: {error}"));
    // `with_src` parses this crate's sources (following `mod` declarations) without
    // running `cargo metadata`.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .unwrap_or_else(|error| panic!("cbindgen failed: {error}"));
    let mut bytes = Vec::new();
    bindings.write(&mut bytes);
    String::from_utf8(bytes).expect("cbindgen writes UTF-8")
}

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = crate_dir.join("include/xray_projector.h");
    let generated = generated_header(crate_dir);
    if std::env::var_os("XRAY_BLESS").is_some_and(|value| !value.is_empty() && value != "0") {
        std::fs::write(&path, generated.as_bytes())
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
        .replace("\r\n", "\n");
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (old, new))| old != new)
            .map_or_else(
                || {
                    format!(
                        "one is a prefix of the other ({} vs {} lines)",
                        committed.lines().count(),
                        generated.lines().count()
                    )
                },
                |(line, (old, new))| {
                    format!(
                        "first difference at line {}:\n  committed: {old}\n  generated: {new}",
                        line + 1
                    )
                },
            );
        panic!(
            "{} is out of date ({first_difference}).\nRegenerate it with\n  \
             XRAY_BLESS=1 cargo test -p xray-projector-capi --test header\nand commit it.",
            path.display()
        );
    }
}
