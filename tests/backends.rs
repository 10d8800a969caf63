//! Backend selection and the CPU/GPU contract: `Auto` falls back to the CPU and says
//! why, `Cuda` errors instead, the CPU result does not depend on the thread count, and
//! the PTX module exports every kernel.

mod common;

use common::random_views;
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xray_projector::intensity::{add_poisson_noise, beer_lambert};
use xray_projector::{Backend, BackendKind, Beam, Error, Method, Projector, VolumeGeometry};

#[test]
fn auto_falls_back_to_the_cpu_and_says_why() {
    let projector = Projector::new(Backend::Auto).unwrap();
    // In this version the GPU launch path is not there yet, so Auto always picks the
    // CPU; the reason names the cause (no `cuda` feature, no device, ...).
    assert_eq!(projector.backend(), BackendKind::Cpu);
    let reason = projector
        .fallback_reason()
        .expect("Auto must say why it is not on CUDA");
    assert!(!reason.is_empty());
    eprintln!("Auto fell back to the CPU: {reason}");
    #[cfg(not(feature = "cuda"))]
    assert!(reason.contains("without the `cuda` feature"), "{reason}");
}

#[test]
fn cuda_backend_reports_why_it_is_unavailable() {
    match Projector::new(Backend::Cuda) {
        Err(Error::CudaUnavailable { reason }) => {
            eprintln!("CUDA unavailable: {reason}");
            assert!(!reason.is_empty());
        }
        Ok(p) => panic!(
            "no CUDA launch path exists in this version, got {:?}",
            p.backend()
        ),
        Err(other) => panic!("expected CudaUnavailable, got {other}"),
    }
}

#[cfg(feature = "cuda")]
#[test]
fn without_a_gpu_the_driver_says_so() {
    // CI builds with Debian's libcuda1 on a machine without a GPU: cuInit must answer,
    // and the reason must come from the driver, not from a missing library.
    let statuses = xray_projector::backend_statuses();
    let cuda = statuses
        .iter()
        .find(|s| s.kind == BackendKind::Cuda)
        .unwrap();
    eprintln!("cuda status: {}", cuda.detail);
    assert!(!cuda.usable);
    assert!(
        !cuda.detail.contains("without the `cuda` feature"),
        "{}",
        cuda.detail
    );
}

#[test]
fn cpu_result_does_not_depend_on_the_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let volume = Array3::from_shape_fn((10, 12, 14), |_| rng.random_range(0.0..1.0f32));
    let grid = VolumeGeometry::centered([10, 12, 14], [1.0, 0.8, 1.3]);
    let geometry = random_views(8, Beam::Cone, 5, [0.0; 3], 80.0, [17, 23], 0.9);
    for method in [Method::Siddon, Method::Joseph] {
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
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
    let ptx = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kernels/xray_kernels.ptx"
    ))
    .unwrap();
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
