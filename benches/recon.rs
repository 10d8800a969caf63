//! Criterion benches of the CPU backprojection and FDK on the standard cases of
//! BENCHMARKS.md, with fewer views than the cases' own (throughput is what compares).
//!
//! * `cpu_backward_<method>/fp256`: the exact transpose of the projector, 8 views;
//!   throughput in rays.
//! * `cpu_fdk/fp256`: FDK end to end (weights, ramp filter, voxel-driven
//!   backprojection) of a 256^3 volume from 16 views of 256^2; throughput in voxel
//!   updates (voxels times views).
//!
//! Each id ends in the vector path that ran (`avx512`, `avx2` or `scalar`: the fastest
//! the CPU has, or the one `XRAY_CPU_LANES` caps it to; Joseph's backprojection runs
//! AVX2's 8 lanes under `avx512`) and how its lanes gather
//! (`instruction` or `loads`: this CPU's preferred way, or the one `XRAY_CPU_GATHER`
//! names).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xray_projector::cases::StandardCase;
use xray_projector::recon::{self, Filter};
use xray_projector::{Backend, Gather, LanePath, Method, Projector};

fn cpu_recon(c: &mut Criterion) {
    let projector = Projector::new(Backend::Cpu).expect("the CPU backend is always there");
    let case = StandardCase::named("fp256")
        .expect("a standard case")
        .with_views(8);
    let (volume, geometry) = case.inputs().expect("the standard case fits in memory");
    let rays = geometry.ray_count().expect("the ray count fits") as u64;
    for (label, method) in [("siddon", Method::Siddon), ("joseph", Method::Joseph)] {
        let projections = projector
            .forward(&volume, &case.volume, &geometry, method)
            .expect("the projection runs");
        let mut group = c.benchmark_group(format!("cpu_backward_{label}"));
        group.throughput(Throughput::Elements(rays));
        group.sample_size(10);
        group.bench_function(
            BenchmarkId::new(
                "fp256",
                format!("8_views_{}_{}", LanePath::in_use(), Gather::in_use()),
            ),
            |b| {
                b.iter(|| {
                    projector
                        .backward(&projections, &geometry, &case.volume, method)
                        .expect("the backprojection runs")
                })
            },
        );
        group.finish();
    }

    let case = case.with_views(16);
    let (volume, geometry) = case.inputs().expect("the standard case fits in memory");
    let projections = projector
        .forward(&volume, &case.volume, &geometry, Method::Siddon)
        .expect("the projection runs");
    let updates = case.volume.voxel_count().expect("the voxel count fits") * case.scan.views;
    let mut group = c.benchmark_group("cpu_fdk");
    group.throughput(Throughput::Elements(updates as u64));
    group.sample_size(10);
    group.bench_function(
        BenchmarkId::new(
            "fp256",
            format!("16_views_{}_{}", LanePath::in_use(), Gather::in_use()),
        ),
        |b| {
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
        },
    );
    group.finish();
}

criterion_group!(benches, cpu_recon);
criterion_main!(benches);
