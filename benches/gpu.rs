//! Criterion benches of the CUDA backend on the standard cases of BENCHMARKS.md, every
//! case with its own number of views (built only with feature `cuda`).
//!
//! * `cuda_resident_<method>/<case>`: the kernel alone, the volume resident and the
//!   output kept on the GPU, timed with CUDA events (`Criterion::iter_custom`).
//! * `cuda_from_host_<method>/<case>`: `Projector::forward` from host arrays to a host
//!   array: upload, kernel, download (wall clock).
//! * `cuda_resident_backward_<method>/<case>` (fp256, fp512): the exact transpose, the
//!   projections resident, timed with CUDA events; compare with ASTRA's BP3D_CUDA.
//! * `cuda_fdk/fp256`: FDK of 256^3 from 360 views of 256^2 end to end, host arrays
//!   in and out (weights and filter on the CPU, backprojection on the GPU).
//! * `cuda_slabs_<method>/fp256`: `Projector::forward` from host arrays with the device
//!   memory limited to a third of the volume, so that it runs in slabs;
//!   compare with `cuda_from_host_<method>` for the cost of the split.
//! * `cuda_devices_<method>/fp256` (with two GPUs or more): the same on all the GPUs
//!   there are, views split for the projection.
//!
//! The kernel benches take 20 samples (`--sample-size N` overrides that), the others 10.
//! A case's inputs (its volume voxelised and uploaded, the projections to backproject)
//! are made when the first of its benches that the filter lets run starts, so that a
//! filtered run (`--bench cuda_resident_siddon/drr1`, or `--test` to run each once)
//! pays for nothing else: fp512's volume alone is 512 MiB.
//!
//! Without a usable GPU it prints `SKIPPED: <reason>` and measures nothing.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array3;
use xray_projector::cases::StandardCase;
use xray_projector::cuda::{CudaBackend, DeviceProjections, DeviceVolume};
use xray_projector::recon::{self, Filter};
use xray_projector::{Backend, Method, ProjectionGeometry, Projector};

/// What the benches of one case share.
struct Inputs {
    volume: Array3<f32>,
    resident: DeviceVolume,
    out: DeviceProjections,
}

/// The case's inputs in `slot`, made on first use.
fn inputs<'a>(
    slot: &'a mut Option<Inputs>,
    gpu: &Arc<CudaBackend>,
    case: &StandardCase,
    geometry: &ProjectionGeometry,
) -> &'a mut Inputs {
    slot.get_or_insert_with(|| {
        let volume = case
            .phantom
            .voxelize(&case.volume, 1)
            .expect("the standard case fits in memory");
        let resident = gpu
            .upload(&volume, &case.volume)
            .expect("the volume fits on the GPU");
        let out = gpu
            .allocate_projections(geometry)
            .expect("the projections fit on the GPU");
        Inputs {
            volume,
            resident,
            out,
        }
    })
}

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
        let geometry = case.scan.geometry().expect("a standard case is valid");
        let rays = geometry.ray_count().expect("the ray count fits") as u64;
        let id = BenchmarkId::new(name, format!("{}_views", case.scan.views));
        let mut shared = None;
        for (label, method) in [("siddon", Method::Siddon), ("joseph", Method::Joseph)] {
            bench_kernel(c, &format!("cuda_resident_{label}"), &id, rays, || {
                let inputs = inputs(&mut shared, &gpu, &case, &geometry);
                gpu.forward_into(&inputs.resident, &geometry, method, &mut inputs.out)
                    .expect("the kernel runs")
            });

            let mut group = c.benchmark_group(format!("cuda_from_host_{label}"));
            group.throughput(Throughput::Elements(rays));
            group.sample_size(10);
            group.bench_function(id.clone(), |b| {
                let volume = &inputs(&mut shared, &gpu, &case, &geometry).volume;
                b.iter(|| {
                    projector
                        .forward(volume, &case.volume, &geometry, method)
                        .expect("the projection runs")
                })
            });
            group.finish();

            if name.starts_with("fp") {
                let mut backward: Option<(DeviceProjections, DeviceVolume)> = None;
                let group = format!("cuda_resident_backward_{label}");
                bench_kernel(c, &group, &id, rays, || {
                    let (projections, volume_out) = backward.get_or_insert_with(|| {
                        let inputs = inputs(&mut shared, &gpu, &case, &geometry);
                        let projections = gpu
                            .forward(&inputs.resident, &geometry, method)
                            .expect("the projection runs");
                        let volume_out = gpu
                            .allocate_volume(&case.volume)
                            .expect("the volume fits on the GPU");
                        (projections, volume_out)
                    });
                    gpu.backward_into(projections, &geometry, method, volume_out)
                        .expect("the kernel runs")
                });
            }
        }
        if name == "fp256" {
            scale_benches(c, &mut shared, &gpu, &case, &geometry, rays, &id);
            let mut projections = None;
            let mut group = c.benchmark_group("cuda_fdk");
            group.sample_size(10);
            group.bench_function(id.clone(), |b| {
                let projections = projections.get_or_insert_with(|| {
                    let volume = &inputs(&mut shared, &gpu, &case, &geometry).volume;
                    projector
                        .forward(volume, &case.volume, &geometry, Method::Siddon)
                        .expect("the projection runs")
                });
                b.iter(|| {
                    recon::fdk(
                        &projector,
                        &*projections,
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

/// `cuda_slabs_*` and `cuda_devices_*` (see the module docs) on `case`.
fn scale_benches(
    c: &mut Criterion,
    shared: &mut Option<Inputs>,
    gpu: &Arc<CudaBackend>,
    case: &StandardCase,
    geometry: &ProjectionGeometry,
    rays: u64,
    id: &BenchmarkId,
) {
    let volume_bytes = case.volume.voxel_count().expect("a standard case") as u64 * 4;
    let slabbed = Projector::on_devices(&[gpu.ordinal()])
        .expect("the GPU opened above")
        .with_device_memory(volume_bytes / 3);
    let all: Vec<u32> = (0..16)
        .take_while(|&ordinal| CudaBackend::on_device(ordinal).is_ok())
        .collect();
    let devices = (all.len() >= 2).then(|| Projector::on_devices(&all).expect("they opened"));
    for (label, method) in [("siddon", Method::Siddon), ("joseph", Method::Joseph)] {
        let runs = [
            ("cuda_slabs", Some(&slabbed)),
            ("cuda_devices", devices.as_ref()),
        ];
        for (group_name, projector) in runs {
            let Some(projector) = projector else { continue };
            let mut group = c.benchmark_group(format!("{group_name}_{label}"));
            group.throughput(Throughput::Elements(rays));
            group.sample_size(10);
            group.bench_function(id.clone(), |b| {
                let volume = &inputs(shared, gpu, case, geometry).volume;
                b.iter(|| {
                    projector
                        .forward(volume, &case.volume, geometry, method)
                        .expect("the projection runs")
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
    group.bench_function(id.clone(), |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| run()).sum::<Duration>())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // 20 samples unless `--sample-size` says otherwise (a group's own `sample_size`
    // would override the command line).
    config = Criterion::default().sample_size(20);
    targets = cuda_forward
}
criterion_main!(benches);
