//! Compiles `tests/c/box_chord.c` with the system C compiler (`$CC`, else `cc`) against
//! the committed header `include/xray_projector.h` and the shared library this package
//! builds (`libxray_projector_c.so`, `.dylib` on macOS), runs it, and asserts that it
//! exits 0. The C program checks forward projection against analytic chords, the
//! adjoint identity, the error paths and FDK (see its comments).
//!
//! The library is found next to this test binary (`target/<profile>/deps/..`), where
//! `cargo test -p xray-projector-capi` has just built it along with the rlib.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The file name of the shared library on this platform.
fn library_name() -> String {
    format!(
        "{}xray_projector_c{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The most recently built shared library in `target/<profile>/deps` or
/// `target/<profile>` (cargo writes it to the first and copies it to the second).
fn shared_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary's directory (deps)");
    let profile = deps.parent().expect("the profile directory above deps");
    let name = library_name();
    let hashed_prefix = format!("{}xray_projector_c-", std::env::consts::DLL_PREFIX);
    let mut candidates: Vec<PathBuf> = Vec::new();
    for dir in [deps, profile] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let hashed =
                file.starts_with(&hashed_prefix) && file.ends_with(std::env::consts::DLL_SUFFIX);
            if file == name.as_str() || hashed {
                candidates.push(entry.path());
            }
        }
    }
    candidates
        .into_iter()
        .max_by_key(|path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} not found in {} or {}: build it with \
                 `cargo build -p xray-projector-capi` (same profile as the tests)",
                deps.display(),
                profile.display()
            )
        })
}

/// The C compiler command: `$CC` split on whitespace (it may carry flags), else `cc`.
fn c_compiler() -> Command {
    let cc = std::env::var("CC").unwrap_or_default();
    let mut words = cc.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words);
            command
        }
        None => Command::new("cc"),
    }
}

#[test]
fn the_c_program_passes() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let library = shared_library();
    let library_dir = library.parent().expect("the library's directory");
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("box_chord");
    let mut compile = c_compiler();
    compile
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1"])
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("tests/c/box_chord.c"))
        .arg("-o")
        .arg(&exe)
        .arg(&library)
        .arg(format!("-Wl,-rpath,{}", library_dir.display()))
        .arg("-lm");
    let compiled = compile
        .output()
        .unwrap_or_else(|error| panic!("cannot run the C compiler ({compile:?}): {error}"));
    assert!(
        compiled.status.success(),
        "compiling the C test failed ({compile:?}):\n{}{}",
        String::from_utf8_lossy(&compiled.stdout),
        String::from_utf8_lossy(&compiled.stderr)
    );
    // The rpath finds the library; the search path is prepended to as well, for linkers
    // that record the library by name only (what is already there, such as a software
    // CUDA driver's directory, is kept).
    let search_path = if cfg!(target_os = "macos") {
        "DYLD_LIBRARY_PATH"
    } else {
        "LD_LIBRARY_PATH"
    };
    let mut directories = vec![library_dir.to_path_buf()];
    if let Some(existing) = std::env::var_os(search_path) {
        directories.extend(std::env::split_paths(&existing));
    }
    let search = std::env::join_paths(directories).expect("library directories without ':'");
    let ran = Command::new(&exe)
        .env(search_path, search)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", exe.display()));
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(
        ran.status.success(),
        "the C test failed ({}):\n{stdout}{stderr}",
        ran.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}{stderr}");
}
