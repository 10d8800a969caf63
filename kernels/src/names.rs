//! Names of the PTX entry points, shared by the kernels (which export them with
//! `#[no_mangle]`) and the host (which loads them by name).

/// Forward projection with Siddon's method: one thread per detector pixel, all views.
pub const FORWARD_SIDDON: &str = "xray_forward_siddon";
/// Forward projection with Joseph's method: one thread per detector pixel, all views.
pub const FORWARD_JOSEPH: &str = "xray_forward_joseph";

/// Every entry point the PTX module must contain.
pub const ALL: [&str; 2] = [FORWARD_SIDDON, FORWARD_JOSEPH];
