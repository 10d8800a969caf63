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

/// `x[i] = value`: one element per thread of a grid-stride loop (as every vector
/// kernel).
pub const VEC_FILL: &str = "xray_vec_fill";
/// `y[i] = y[i] + alpha x[i]`.
pub const VEC_AXPY: &str = "xray_vec_axpy";
/// `y[i] = x[i] + beta y[i]`.
pub const VEC_XPBY: &str = "xray_vec_xpby";
/// `r[i] = b[i] - r[i]`.
pub const VEC_RESIDUAL: &str = "xray_vec_residual";
/// `r[i] = r[i] w[i]`.
pub const VEC_MUL: &str = "xray_vec_mul";
/// `s[i] = weight(s[i], scale)` (SIRT's row and column weights).
pub const VEC_WEIGHTS: &str = "xray_vec_weights";
/// `x[i] = sirt_step(x[i], c[i], u[i], nonnegative)`.
pub const VEC_SIRT_STEP: &str = "xray_vec_sirt_step";
/// `x[i] = max(x[i], 0)`.
pub const VEC_CLIP: &str = "xray_vec_clip";
/// The `DOT_PARTIALS` partial sums of a dot product.
pub const VEC_DOT_PARTIALS: &str = "xray_vec_dot_partials";

/// Every entry point the PTX module must contain.
pub const ALL: [&str; 14] = [
    FORWARD_SIDDON,
    FORWARD_JOSEPH,
    BACKWARD_SIDDON,
    BACKWARD_JOSEPH,
    FDK_BACKPROJECT,
    VEC_FILL,
    VEC_AXPY,
    VEC_XPBY,
    VEC_RESIDUAL,
    VEC_MUL,
    VEC_WEIGHTS,
    VEC_SIRT_STEP,
    VEC_CLIP,
    VEC_DOT_PARTIALS,
];
