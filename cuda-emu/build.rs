//! Gives the shared library the CUDA driver's soname, so that a binary linked against it
//! records `DT_NEEDED libcuda.so.1`, exactly as when linked against the real driver.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so.1");
    println!("cargo:rerun-if-changed=build.rs");
}
