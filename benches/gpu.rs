//! Criterion benches of the CUDA backend on the standard cases of BENCHMARKS.md, every
//! case with its own number of views (built only with feature `cuda`).
//!
//! * `cuda_resident_<method>/<case>`: the kernel alone, the volume resident and the
//!   output kept on the GPU, timed with CUDA events (`Criterion::iter_custom`).
//! * `cuda_from_host_<method>/<case>`: `Projector::forward` from host arrays to a host
//!   array: upload, kernel, download (wall clock).
//!
//! * `cuda_resident_backward_<method>/<case>` (fp256, fp512): the exact transpose, the
//!   projections resident, timed with CUDA events; compare with ASTRA's BP3D_CUDA.
//! * `cuda_fdk/fp256`: FDK of 256^3 from 360 views of 256^2 end to end, host arrays
//!   in and out (weights and filter on the CPU, backprojection on the GPU).
//!
//! Without a usable GPU it prints `SKIPPED: <reason>` and measures nothing.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xray_projector::cases::StandardCase;
use xray_projector::cuda::CudaBackend;
use xray_projector::recon::{self, Filter};
use xray_projector::{Backend, Method, Projector};

fn cuda_forward(c: &mut Criterion) {
    let gpu = match CudaBackend::on_device(0) {
        Ok(gpu) => gpu,
        Err(error) => {
            eprintln!("SKIPPED: GPU benches: {error}");
            return;
        }
    };
    eprintln!("GPU: {}", gpu.description());
    let projector = Projector::new(Backend::Cuda).expect("the GPU opened above");
    for name in StandardCase::NAMES {
        let case = StandardCase::named(name).expect("a standard case");
        let (volume, geometry) = case.inputs().expect("the standard case fits in memory");
        let rays = geometry.ray_count().expect("the ray count fits") as u64;
        let resident = gpu
            .upload(&volume, &case.volume)
            .expect("the volume fits on the GPU");
        let mut out = gpu
            .allocate_projections(&geometry)
            .expect("the projections fit on the GPU");
        let id = BenchmarkId::new(name, format!("{}_views", case.scan.views));
        for (label, method) in [("siddon", Method::Siddon), ("joseph", Method::Joseph)] {
            bench_kernel(c, &format!("cuda_resident_{label}"), &id, rays, || {
                gpu.forward_into(&resident, &geometry, method, &mut out)
                    .expect("the kernel runs")
            });

            let mut group = c.benchmark_group(format!("cuda_from_host_{label}"));
            group.throughput(Throughput::Elements(rays));
            group.sample_size(10);
            group.bench_function(id.clone(), |b| {
                b.iter(|| {
                    projector
                        .forward(&volume, &case.volume, &geometry, method)
                        .expect("the projection runs")
                })
            });
            group.finish();

            if name.starts_with("fp") {
                let projections = gpu
                    .forward(&resident, &geometry, method)
                    .expect("the projection runs");
                let mut volume_out = gpu
                    .allocate_volume(&case.volume)
                    .expect("the volume fits on the GPU");
                let group = format!("cuda_resident_backward_{label}");
                bench_kernel(c, &group, &id, rays, || {
                    gpu.backward_into(&projections, &geometry, method, &mut volume_out)
                        .expect("the kernel runs")
                });
            }
        }
        if name == "fp256" {
            let projections = projector
                .forward(&volume, &case.volume, &geometry, Method::Siddon)
                .expect("the projection runs");
            let mut group = c.benchmark_group("cuda_fdk");
            group.sample_size(10);
            group.bench_function(id.clone(), |b| {
                b.iter(|| {
                    recon::fdk(
                        &projector,
                        &projections,
                        &case.scan,
                        &case.volume,
                        Filter::RamLak,
                    )
                    .expect("FDK runs")
                })
            });
            group.finish();
        }
    }
}

/// One Criterion group timing a kernel by the GPU time `run` reports (CUDA events),
/// so that host overhead is not counted; `rays` per run give the throughput.
fn bench_kernel(
    c: &mut Criterion,
    group: &str,
    id: &BenchmarkId,
    rays: u64,
    mut run: impl FnMut() -> Duration,
) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(rays));
    group.sample_size(20);
    group.bench_function(id.clone(), |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| run()).sum::<Duration>())
    });
    group.finish();
}

criterion_group!(benches, cuda_forward);
criterion_main!(benches);
