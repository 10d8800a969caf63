//! `xray info`.

use anyhow::Result;
use xray_projector::backend_statuses;

/// Prints each backend, whether it is usable here, and why not; and whether this build
/// runs under `mpirun`.
pub fn run() -> Result<()> {
    println!("xray-projector {}", env!("CARGO_PKG_VERSION"));
    for status in backend_statuses() {
        let state = if status.usable {
            "usable"
        } else {
            "unavailable"
        };
        println!("{:<5} {:<12} {}", status.kind, state, status.detail);
    }
    if cfg!(feature = "mpi") {
        println!("mpi   built in     mpirun -n N xray project|backproject|recon splits the views");
    } else {
        println!("mpi   not built    rebuild with --features mpi to run under mpirun");
    }
    Ok(())
}
