//! Build script: with the `cuda` feature, compiles `kernels/` to PTX with nightly rustc's
//! NVPTX backend and leaves it at `$OUT_DIR/xray_kernels.ptx` for the host to embed.
//! When nightly or its rust-src component is missing, it uses the committed copy
//! `kernels/xray_kernels.ptx` and says so in a cargo warning. Without `cuda` it does
//! nothing. The recipe is the one of TOOLCHAIN.md (and `scripts/build-ptx.sh`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed=kernels/src");
    println!("cargo:rerun-if-changed=kernels/Cargo.toml");
    println!("cargo:rerun-if-changed=kernels/xray_kernels.ptx");
    println!("cargo:rerun-if-env-changed=XRAY_USE_COMMITTED_PTX");

    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let committed = root.join("kernels").join("xray_kernels.ptx");
    let dest = out_dir.join("xray_kernels.ptx");

    let fresh = if env::var_os("XRAY_USE_COMMITTED_PTX").is_some() {
        Err("XRAY_USE_COMMITTED_PTX is set".to_string())
    } else {
        build_ptx(&root, &out_dir)
    };
    match fresh {
        Ok(ptx) => {
            fs::copy(&ptx, &dest).expect("copy the fresh PTX into OUT_DIR");
        }
        Err(why) => {
            println!(
                "cargo:warning=using the committed kernels/xray_kernels.ptx ({why}); \
                 install nightly with rust-src to build the kernels from source"
            );
            fs::copy(&committed, &dest).expect("kernels/xray_kernels.ptx is part of the source");
        }
    }
}

/// Runs the nested nightly cargo build of the kernels crate and returns the PTX path.
fn build_ptx(root: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let target_dir = out_dir.join("ptx-target");
    let mut cmd = Command::new("cargo");
    // A clean environment for the nested build: its own target dir (the outer one is
    // locked), nightly, and none of the outer build's flags, wrappers or cfgs.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_str(),
                "RUSTFLAGS"
                    | "CARGO_ENCODED_RUSTFLAGS"
                    | "RUSTC"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTDOC"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET"
                    | "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "CARGO"
            )
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env("RUSTUP_TOOLCHAIN", "nightly")
        .env("CARGO_TARGET_DIR", &target_dir)
        .env(
            "RUSTFLAGS",
            "-Zunstable-options -Cpanic=immediate-abort -Ctarget-cpu=sm_70",
        )
        .args([
            "rustc",
            "--release",
            "--target",
            "nvptx64-nvidia-cuda",
            "-Zbuild-std=core",
        ])
        .arg("--manifest-path")
        .arg(root.join("kernels").join("Cargo.toml"))
        .args(["--", "--emit=asm"]);
    let output = cmd
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("nightly build of the kernels failed: {last}"));
    }
    let deps = target_dir
        .join("nvptx64-nvidia-cuda")
        .join("release")
        .join("deps");
    newest_ptx(&deps).ok_or_else(|| format!("no PTX found in {}", deps.display()))
}

/// The most recently written `xray_kernels-*.s` in `deps`.
fn newest_ptx(deps: &Path) -> Option<PathBuf> {
    fs::read_dir(deps)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("xray_kernels-") && name.ends_with(".s")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}
