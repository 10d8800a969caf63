//! Names of the PTX entry points, shared by the kernels (which export them with
//! `#[no_mangle]`) and the host (which loads them by name).

/// Forward projection with Siddon's method: one thread per detector pixel, all views.
pub const FORWARD_SIDDON: &str = "xray_forward_siddon";
/// Forward projection with Joseph's method: one thread per detector pixel, all views.
pub const FORWARD_JOSEPH: &str = "xray_forward_joseph";

/// Backprojection (transpose of the Siddon projector): one thread per detector pixel,
/// all views, atomic adds into the volume.
pub const BACKWARD_SIDDON: &str = "xray_backward_siddon";
/// Backprojection (transpose of the Joseph projector): one thread per detector pixel,
/// all views, atomic adds into the volume.
pub const BACKWARD_JOSEPH: &str = "xray_backward_joseph";

/// Voxel-driven FDK backprojection of filtered projections: one thread per voxel, all
/// views, adding into the volume.
pub const FDK_BACKPROJECT: &str = "xray_fdk_backproject";

/// Every entry point the PTX module must contain.
pub const ALL: [&str; 5] = [
    FORWARD_SIDDON,
    FORWARD_JOSEPH,
    BACKWARD_SIDDON,
    BACKWARD_JOSEPH,
    FDK_BACKPROJECT,
];
