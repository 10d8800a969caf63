//! Backend selection and the CPU/GPU contract: `Auto` picks CUDA when usable and else
//! falls back to the CPU saying why, `Cuda` errors instead, the CPU result does not depend on the thread count, and
//! the PTX module exports every kernel.

mod common;

use common::{random_views, with_threads};
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xray_projector::intensity::{add_poisson_noise, beer_lambert};
use xray_projector::{Backend, BackendKind, Beam, Error, Method, Projector, VolumeGeometry};

/// Whether this machine has a usable CUDA backend (always false without `cuda`).
fn cuda_usable() -> bool {
    xray_projector::backend_statuses()
        .iter()
        .any(|s| s.kind == BackendKind::Cuda && s.usable)
}

#[test]
fn auto_picks_cuda_when_usable_and_otherwise_falls_back_to_the_cpu_saying_why() {
    let projector = Projector::new(Backend::Auto).unwrap();
    if cuda_usable() {
        assert_eq!(projector.backend(), BackendKind::Cuda);
        assert_eq!(projector.fallback_reason(), None);
        return;
    }
    assert_eq!(projector.backend(), BackendKind::Cpu);
    let reason = projector
        .fallback_reason()
        .expect("Auto must say why it is not on CUDA");
    eprintln!("Auto fell back to the CPU: {reason}");
    #[cfg(not(feature = "cuda"))]
    assert!(reason.contains("without the `cuda` feature"), "{reason}");
    #[cfg(feature = "cuda")]
    assert!(
        reason.contains("CUDA") || reason.contains("PTX"),
        "the reason must come from the driver: {reason}"
    );
    // And the fallback computes: a 0.02/mm cube of 16 mm on the central ray.
    let grid = VolumeGeometry::centered([16, 16, 16], [1.0, 1.0, 1.0]);
    let volume = Array3::from_elem((16, 16, 16), 0.02f32);
    let geometry = xray_projector::CircularScan::new(100.0, 200.0, 1, [1, 1], 1.0)
        .geometry()
        .unwrap();
    let p = projector
        .forward(&volume, &grid, &geometry, Method::Siddon)
        .unwrap();
    assert!((p[[0, 0, 0]] - 0.32).abs() < 1e-5, "{}", p[[0, 0, 0]]);
}

#[test]
fn cuda_backend_is_usable_or_reports_why_not() {
    match Projector::new(Backend::Cuda) {
        Ok(p) => {
            assert!(cuda_usable(), "Cuda opened, so `xray info` must say usable");
            assert_eq!(p.backend(), BackendKind::Cuda);
        }
        Err(Error::CudaUnavailable { reason }) => {
            eprintln!("CUDA unavailable: {reason}");
            assert!(!cuda_usable());
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("expected CudaUnavailable, got {other}"),
    }
}

#[cfg(feature = "cuda")]
#[test]
fn the_cuda_status_comes_from_the_driver() {
    // CI builds with Debian's libcuda1 on a machine without a GPU: cuInit must answer,
    // and the reason must come from the driver, not from a missing library. On a GPU
    // machine the status names the device.
    let statuses = xray_projector::backend_statuses();
    let cuda = statuses
        .iter()
        .find(|s| s.kind == BackendKind::Cuda)
        .unwrap();
    eprintln!("cuda status: {}", cuda.detail);
    assert!(
        !cuda.detail.contains("without the `cuda` feature"),
        "{}",
        cuda.detail
    );
    if cuda.usable {
        assert!(cuda.detail.contains("sm_"), "{}", cuda.detail);
    } else {
        assert!(cuda.detail.contains("CUDA"), "{}", cuda.detail);
    }
}

#[test]
fn cpu_result_does_not_depend_on_the_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let volume = Array3::from_shape_fn((10, 12, 14), |_| rng.random_range(0.0..1.0f32));
    let grid = VolumeGeometry::centered([10, 12, 14], [1.0, 0.8, 1.3]);
    let geometry = random_views(8, Beam::Cone, 5, [0.0; 3], 80.0, [17, 23], 0.9);
    for method in [Method::Siddon, Method::Joseph] {
        let run = |threads| {
            with_threads(threads, || {
                Projector::new(Backend::Cpu)
                    .unwrap()
                    .forward(&volume, &grid, &geometry, method)
                    .unwrap()
            })
        };
        let one = run(1);
        assert!(one.iter().any(|&v| v > 0.0));
        assert_eq!(
            one,
            run(3),
            "{method:?}: results differ between 1 and 3 threads"
        );
    }
}

#[test]
fn poisson_noise_is_reproducible_and_has_poisson_statistics() {
    let p = Array3::from_elem((2, 64, 64), 1.0f32);
    let expected = beer_lambert(&p, 1000.0).unwrap();
    let mean = 1000.0 * (-1.0f64).exp();
    assert!((expected[[0, 0, 0]] as f64 - mean).abs() < 1e-3);
    let mut a = expected.clone();
    let mut b = expected.clone();
    add_poisson_noise(&mut a, 42).unwrap();
    add_poisson_noise(&mut b, 42).unwrap();
    assert_eq!(a, b, "the same seed must give the same noise");
    let mut c = expected.clone();
    add_poisson_noise(&mut c, 43).unwrap();
    assert_ne!(a, c);
    // 8192 samples of Poisson(367.9): the sample mean is within 4 sigma (0.85) of the
    // mean and the variance within 10% of it.
    let n = a.len() as f64;
    let m = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = a.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    assert!(
        (m - mean).abs() < 4.0 * (mean / n).sqrt(),
        "mean {m} vs {mean}"
    );
    assert!((var / mean - 1.0).abs() < 0.1, "variance {var} vs {mean}");
    assert!(beer_lambert(&p, 0.0).is_err() && beer_lambert(&p, f64::NAN).is_err());
}

#[test]
fn ptx_exports_every_kernel_and_needs_nothing_external() {
    // The copy compiled into the library: this executable may run on another machine.
    let ptx = xray_projector::kernels_ptx();
    for name in xray_kernels::names::ALL {
        assert!(
            ptx.contains(&format!(".visible .entry {name}(")),
            "{name} missing from the PTX"
        );
    }
    assert!(
        !ptx.contains(".extern"),
        "the PTX must not depend on external functions"
    );
    assert!(!ptx.contains("trap;"), "the PTX must have no panic paths");
}
