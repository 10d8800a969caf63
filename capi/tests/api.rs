//! The C API called from Rust (through the rlib): results equal the library's, and every
//! misuse the API promises to catch gives its status and a message.

use std::ffi::{c_int, CStr};
use std::ptr;

use ndarray::Array3;
use xray_projector::{recon, Backend, CircularScan, Method, Projector, VolumeGeometry};
use xray_projector_c::*;

/// The calling thread's last error message.
fn message() -> String {
    // SAFETY: a NUL-terminated string valid until this thread's next status-returning
    // call; copied at once.
    unsafe { CStr::from_ptr(xray_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// A CPU projector handle, freed on drop.
struct Handle(*mut XrayProjector);

impl Handle {
    fn cpu() -> Handle {
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is a valid place for one pointer.
        let status = unsafe { xray_projector_new(XrayBackend::Cpu as c_int, &mut raw) };
        assert_eq!(status, XrayStatus::Ok, "{}", message());
        assert!(!raw.is_null());
        Handle(raw)
    }
}

// SAFETY: the C API promises that a handle may be used by several threads at once (the
// library's `Projector` is Send + Sync); the tests free it only when no thread uses it.
unsafe impl Send for Handle {}
// SAFETY: as for Send.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a live handle from xray_projector_new, used by nothing else now.
        unsafe { xray_projector_free(self.0) };
    }
}

/// One cone-beam view along +x: source at x = -500, detector centre at x = 300.
fn one_view() -> [f64; 12] {
    [
        -500.0, 0.0, 0.0, 300.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0,
    ]
}

/// An 8^3 test volume whose voxels all differ (finite, positive).
fn test_volume() -> Vec<f32> {
    (0..512).map(|i| 0.01 + 0.001 * (i % 37) as f32).collect()
}

/// `xray_forward` of `volume` on `grid` with `vectors`, into a new buffer.
fn forward(
    handle: &Handle,
    volume: &[f32],
    grid: &XrayVolumeGrid,
    vectors: &[f64],
    [rows, cols]: [usize; 2],
    method: XrayMethod,
) -> (XrayStatus, Vec<f32>) {
    let views = vectors.len() / 12;
    let mut out = vec![0.0f32; views * rows * cols];
    // SAFETY: every pointer is valid for the length passed with it.
    let status = unsafe {
        xray_forward(
            handle.0,
            volume.as_ptr(),
            volume.len(),
            grid,
            vectors.as_ptr(),
            views,
            rows,
            cols,
            XrayBeam::Cone as c_int,
            method as c_int,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    (status, out)
}

#[test]
fn forward_equals_the_library_and_the_message_is_empty_after_success() {
    let handle = Handle::cpu();
    // SAFETY: a live handle.
    assert_eq!(
        unsafe { xray_projector_backend(handle.0) },
        XrayBackend::Cpu
    );
    let grid = xray_volume_grid_centered(8, 8, 8, 1.0, 1.0, 1.0);
    assert_eq!(grid.origin, [-4.0, -4.0, -4.0]);
    let volume = test_volume();
    let vectors = one_view();
    for method in [XrayMethod::Siddon, XrayMethod::Joseph] {
        let (status, out) = forward(&handle, &volume, &grid, &vectors, [6, 5], method);
        assert_eq!(status, XrayStatus::Ok, "{}", message());
        assert_eq!(message(), "");
        let library = Projector::new(Backend::Cpu)
            .unwrap()
            .forward(
                &Array3::from_shape_vec((8, 8, 8), volume.clone()).unwrap(),
                &VolumeGeometry::centered([8, 8, 8], [1.0; 3]),
                &xray_projector::ProjectionGeometry {
                    beam: xray_projector::Beam::Cone,
                    rows: 6,
                    cols: 5,
                    views: vec![xray_projector::View {
                        source: [-500.0, 0.0, 0.0],
                        detector: [300.0, 0.0, 0.0],
                        u: [0.0, 1.0, 0.0],
                        v: [0.0, 0.0, 1.0],
                    }],
                },
                match method {
                    XrayMethod::Siddon => Method::Siddon,
                    XrayMethod::Joseph => Method::Joseph,
                },
            )
            .unwrap();
        assert_eq!(out, library.as_slice().unwrap());
    }
}

#[test]
fn backward_is_the_transpose_of_forward() {
    let handle = Handle::cpu();
    let grid = xray_volume_grid_centered(8, 8, 8, 1.0, 1.0, 1.0);
    let x = test_volume();
    let vectors = one_view();
    let (status, ax) = forward(&handle, &x, &grid, &vectors, [6, 5], XrayMethod::Siddon);
    assert_eq!(status, XrayStatus::Ok, "{}", message());
    let y: Vec<f32> = (0..30).map(|i| 1.0 + (i % 7) as f32).collect();
    let mut aty = vec![0.0f32; 512];
    // SAFETY: every pointer is valid for the length passed with it.
    let status = unsafe {
        xray_backward(
            handle.0,
            y.as_ptr(),
            y.len(),
            vectors.as_ptr(),
            1,
            6,
            5,
            XrayBeam::Cone as c_int,
            &grid,
            XrayMethod::Siddon as c_int,
            aty.as_mut_ptr(),
            aty.len(),
        )
    };
    assert_eq!(status, XrayStatus::Ok, "{}", message());
    let dot = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| *p as f64 * *q as f64)
            .sum::<f64>()
    };
    let (left, right) = (dot(&ax, &y), dot(&x, &aty));
    assert!(
        (left - right).abs() <= 1e-5 * left.abs(),
        "{left} vs {right}"
    );
}

/// The pointer and length arguments of an `xray_forward` call (one view, 6 x 5 pixels).
#[derive(Clone, Copy)]
struct ForwardArgs {
    projector: *const XrayProjector,
    volume: *const f32,
    volume_len: usize,
    grid: *const XrayVolumeGrid,
    method: c_int,
    out: *mut f32,
    out_len: usize,
}

#[test]
fn wrong_lengths_null_pointers_and_bad_enums_are_invalid_arguments() {
    let handle = Handle::cpu();
    let grid = xray_volume_grid_centered(8, 8, 8, 1.0, 1.0, 1.0);
    let volume = test_volume();
    let vectors = one_view();
    let mut out = vec![0.0f32; 30];
    let good = ForwardArgs {
        projector: handle.0,
        volume: volume.as_ptr(),
        volume_len: 512,
        grid: &grid,
        method: XrayMethod::Siddon as c_int,
        out: out.as_mut_ptr(),
        out_len: 30,
    };
    let cases = [
        (
            "out_len = 29",
            ForwardArgs {
                out_len: 29,
                ..good
            },
        ),
        (
            "out_len = 31",
            ForwardArgs {
                out_len: 31,
                ..good
            },
        ),
        (
            "volume_len = 511",
            ForwardArgs {
                volume_len: 511,
                ..good
            },
        ),
        (
            "projector is NULL",
            ForwardArgs {
                projector: ptr::null(),
                ..good
            },
        ),
        (
            "volume is NULL",
            ForwardArgs {
                volume: ptr::null(),
                ..good
            },
        ),
        (
            "grid is NULL",
            ForwardArgs {
                grid: ptr::null(),
                ..good
            },
        ),
        (
            "out is NULL",
            ForwardArgs {
                out: ptr::null_mut(),
                ..good
            },
        ),
        ("method = 7", ForwardArgs { method: 7, ..good }),
    ];
    for (needle, args) in cases {
        // SAFETY: every non-null pointer is valid for 512 (volume) and 30 (out)
        // elements; the wrong lengths are refused before any access.
        let status = unsafe {
            xray_forward(
                args.projector,
                args.volume,
                args.volume_len,
                args.grid,
                vectors.as_ptr(),
                1,
                6,
                5,
                XrayBeam::Cone as c_int,
                args.method,
                args.out,
                args.out_len,
            )
        };
        assert_eq!(status, XrayStatus::InvalidArgument, "{needle}");
        assert!(
            message().contains(needle),
            "{:?} lacks {needle:?}",
            message()
        );
    }
    // SAFETY: as above, with a beam code that is not an XrayBeam.
    let status = unsafe {
        xray_forward(
            good.projector,
            good.volume,
            good.volume_len,
            good.grid,
            vectors.as_ptr(),
            1,
            6,
            5,
            2,
            good.method,
            good.out,
            good.out_len,
        )
    };
    assert_eq!(status, XrayStatus::InvalidArgument);
    assert!(message().contains("beam = 2"), "{}", message());
    // Nothing was written on failure.
    assert!(out.iter().all(|&v| v == 0.0));
}

#[test]
fn an_output_overlapping_the_input_is_refused() {
    let handle = Handle::cpu();
    let grid = xray_volume_grid_centered(8, 8, 8, 1.0, 1.0, 1.0);
    let mut volume = test_volume();
    let vectors = one_view();
    let base = volume.as_mut_ptr();
    // SAFETY: both ranges lie inside `volume` (30 floats from index 100); the call
    // refuses them before reading or writing.
    let status = unsafe {
        xray_forward(
            handle.0,
            base,
            512,
            &grid,
            vectors.as_ptr(),
            1,
            6,
            5,
            XrayBeam::Cone as c_int,
            XrayMethod::Siddon as c_int,
            base.add(100),
            30,
        )
    };
    assert_eq!(status, XrayStatus::InvalidArgument);
    assert!(message().contains("overlap"), "{}", message());
}

#[test]
fn non_finite_inputs_and_bad_geometry_have_their_statuses() {
    let handle = Handle::cpu();
    let grid = xray_volume_grid_centered(8, 8, 8, 1.0, 1.0, 1.0);
    let mut volume = test_volume();
    volume[77] = f32::NAN;
    let vectors = one_view();
    let (status, _) = forward(
        &handle,
        &volume,
        &grid,
        &vectors,
        [6, 5],
        XrayMethod::Siddon,
    );
    assert_eq!(status, XrayStatus::NonFinite, "{}", message());
    assert!(!message().is_empty());

    let volume = test_volume();
    let flat = XrayVolumeGrid {
        spacing: [1.0, 0.0, 1.0],
        ..grid
    };
    let (status, _) = forward(
        &handle,
        &volume,
        &flat,
        &vectors,
        [6, 5],
        XrayMethod::Siddon,
    );
    assert_eq!(status, XrayStatus::Geometry, "{}", message());
    assert!(message().contains("spacing"), "{}", message());

    let mut parallel_axes = vectors;
    parallel_axes[9..12].copy_from_slice(&[0.0, 2.0, 0.0]);
    let (status, _) = forward(
        &handle,
        &volume,
        &grid,
        &parallel_axes,
        [6, 5],
        XrayMethod::Siddon,
    );
    assert_eq!(status, XrayStatus::Geometry, "{}", message());

    let mut projections = [1.0f32; 30];
    projections[3] = f32::INFINITY;
    let mut out = vec![0.0f32; 512];
    // SAFETY: every pointer is valid for the length passed with it.
    let status = unsafe {
        xray_backward(
            handle.0,
            projections.as_ptr(),
            projections.len(),
            vectors.as_ptr(),
            1,
            6,
            5,
            XrayBeam::Cone as c_int,
            &grid,
            XrayMethod::Siddon as c_int,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    assert_eq!(status, XrayStatus::NonFinite, "{}", message());
}

#[test]
fn circular_vectors_are_the_library_scan() {
    let scan = XrayCircularScan {
        start_angle: 0.3,
        detector_offset: [1.5, -2.0],
        ..xray_circular_scan_new(400.0, 600.0, 5, 10, 12, 1.25)
    };
    let mut out = vec![0.0f64; 5 * XRAY_VECTORS_PER_VIEW];
    // SAFETY: `out` holds `out.len()` doubles.
    let status = unsafe { xray_circular_vectors(&scan, out.as_mut_ptr(), out.len()) };
    assert_eq!(status, XrayStatus::Ok, "{}", message());
    let mut library = CircularScan::new(400.0, 600.0, 5, [10, 12], 1.25).starting_at(0.3);
    library.detector_offset = [1.5, -2.0];
    let want: Vec<f64> = library
        .geometry()
        .unwrap()
        .views
        .iter()
        .flat_map(|v| [v.source, v.detector, v.u, v.v])
        .flatten()
        .collect();
    assert_eq!(out, want);

    // SAFETY: `out` holds more doubles than the length passed.
    let status = unsafe { xray_circular_vectors(&scan, out.as_mut_ptr(), out.len() - 1) };
    assert_eq!(status, XrayStatus::InvalidArgument);
    let bad = XrayCircularScan { sdd: 300.0, ..scan };
    // SAFETY: as above.
    let status = unsafe { xray_circular_vectors(&bad, out.as_mut_ptr(), out.len()) };
    assert_eq!(status, XrayStatus::Geometry, "{}", message());
    let bad = XrayCircularScan { beam: 5, ..scan };
    // SAFETY: as above.
    let status = unsafe { xray_circular_vectors(&bad, out.as_mut_ptr(), out.len()) };
    assert_eq!(status, XrayStatus::InvalidArgument);
    assert!(message().contains("beam = 5"), "{}", message());
}

#[test]
fn fdk_equals_the_library() {
    let handle = Handle::cpu();
    let scan = xray_circular_scan_new(400.0, 600.0, 24, 16, 20, 2.0);
    let grid = xray_volume_grid_centered(8, 8, 8, 2.0, 2.0, 2.0);
    let projections: Vec<f32> = (0..24 * 16 * 20)
        .map(|i| 0.5 + 0.01 * (i % 13) as f32)
        .collect();
    let mut out = vec![0.0f32; 512];
    // SAFETY: every pointer is valid for the length passed with it.
    let status = unsafe {
        xray_fdk(
            handle.0,
            projections.as_ptr(),
            projections.len(),
            &scan,
            &grid,
            XrayFilter::Hann as c_int,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    assert_eq!(status, XrayStatus::Ok, "{}", message());
    let library = recon::fdk(
        &Projector::new(Backend::Cpu).unwrap(),
        &Array3::from_shape_vec((24, 16, 20), projections.clone()).unwrap(),
        &CircularScan::new(400.0, 600.0, 24, [16, 20], 2.0),
        &VolumeGeometry::centered([8, 8, 8], [2.0; 3]),
        recon::Filter::Hann,
    )
    .unwrap();
    assert_eq!(out, library.as_slice().unwrap());

    // SAFETY: the buffers are longer than the lengths passed.
    let status = unsafe {
        xray_fdk(
            handle.0,
            projections.as_ptr(),
            projections.len() - 1,
            &scan,
            &grid,
            XrayFilter::Hann as c_int,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    assert_eq!(status, XrayStatus::InvalidArgument);
    assert!(message().contains("projections_len"), "{}", message());
    // SAFETY: as above.
    let status = unsafe {
        xray_fdk(
            handle.0,
            projections.as_ptr(),
            projections.len(),
            &scan,
            &grid,
            9,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    assert_eq!(status, XrayStatus::InvalidArgument);
}

#[test]
fn projector_creation_checks_its_arguments() {
    let mut raw = ptr::dangling_mut::<XrayProjector>();
    // SAFETY: `raw` is a valid place for one pointer.
    let status = unsafe { xray_projector_new(17, &mut raw) };
    assert_eq!(status, XrayStatus::InvalidArgument);
    assert!(raw.is_null(), "*out is NULL after a failure");
    // SAFETY: NULL is refused.
    let status = unsafe { xray_projector_new(XrayBackend::Cpu as c_int, ptr::null_mut()) };
    assert_eq!(status, XrayStatus::InvalidArgument);
    // SAFETY: NULL is allowed.
    unsafe { xray_projector_free(ptr::null_mut()) };
    // SAFETY: NULL is allowed.
    assert_eq!(
        unsafe { xray_projector_backend(ptr::null()) },
        XrayBackend::Auto
    );
    let handle = Handle::cpu();
    // SAFETY: a live handle.
    assert!(unsafe { xray_projector_fallback_reason(handle.0) }.is_null());
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_is_unavailable_without_the_feature_and_auto_falls_back() {
    let mut raw = ptr::null_mut();
    // SAFETY: `raw` is a valid place for one pointer.
    let status = unsafe { xray_projector_new(XrayBackend::Cuda as c_int, &mut raw) };
    assert_eq!(status, XrayStatus::CudaUnavailable);
    assert!(raw.is_null());
    assert!(message().contains("cuda"), "{}", message());
    // SAFETY: as above.
    let status = unsafe { xray_projector_new(XrayBackend::Auto as c_int, &mut raw) };
    assert_eq!(status, XrayStatus::Ok);
    let handle = Handle(raw);
    // SAFETY: a live handle; the reason is a NUL-terminated string it owns.
    let reason = unsafe { CStr::from_ptr(xray_projector_fallback_reason(handle.0)) };
    assert!(!reason.to_bytes().is_empty());
    // SAFETY: a live handle.
    assert_eq!(
        unsafe { xray_projector_backend(handle.0) },
        XrayBackend::Cpu
    );
}

#[test]
fn messages_are_per_thread() {
    let handle = Handle::cpu();
    let grid = xray_volume_grid_centered(8, 8, 8, 1.0, 1.0, 1.0);
    let volume = test_volume();
    let vectors = one_view();
    let (status, _) = forward(
        &handle,
        &volume,
        &grid,
        &vectors,
        [6, 5],
        XrayMethod::Siddon,
    );
    assert_eq!(status, XrayStatus::Ok);
    let mut out = vec![0.0f64; 11];
    let scan = xray_circular_scan_new(400.0, 600.0, 1, 4, 4, 1.0);
    let other = std::thread::spawn(move || {
        // SAFETY: `out` holds 11 doubles; 11 is refused (12 are needed).
        let status = unsafe { xray_circular_vectors(&scan, out.as_mut_ptr(), out.len()) };
        (status, message())
    })
    .join()
    .unwrap();
    assert_eq!(other.0, XrayStatus::InvalidArgument);
    assert!(other.1.contains("out_len"));
    assert_eq!(
        message(),
        "",
        "the other thread's failure is not this thread's"
    );
}

#[test]
fn one_handle_serves_several_threads_at_once() {
    let handle = Handle::cpu();
    let grid = xray_volume_grid_centered(8, 8, 8, 1.0, 1.0, 1.0);
    let volume = test_volume();
    let vectors = one_view();
    let (_, want) = forward(
        &handle,
        &volume,
        &grid,
        &vectors,
        [6, 5],
        XrayMethod::Siddon,
    );
    let shared = &handle;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let (status, got) =
                    forward(shared, &volume, &grid, &vectors, [6, 5], XrayMethod::Siddon);
                assert_eq!(status, XrayStatus::Ok);
                assert_eq!(got, want);
            });
        }
    });
}

#[test]
fn status_names_and_version() {
    // SAFETY (both): static NUL-terminated strings.
    let name = |status: c_int| unsafe { CStr::from_ptr(xray_status_name(status)) };
    assert_eq!(name(XrayStatus::Ok as c_int), c"XRAY_STATUS_OK");
    assert_eq!(
        name(XrayStatus::NonFinite as c_int),
        c"XRAY_STATUS_NON_FINITE"
    );
    assert_eq!(name(1000), c"XRAY_STATUS_UNKNOWN");
    let version = unsafe { CStr::from_ptr(xray_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
