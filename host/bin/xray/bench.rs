//! `xray bench`: the standard cases of BENCHMARKS.md, timed on this machine: the forward
//! projection, its transpose (backprojection), and FDK's reconstruction.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ndarray::Array3;
use serde::Serialize;
use xray_projector::cases::StandardCase;
use xray_projector::recon::{self, Filter};
use xray_projector::{BackendKind, Gather, LanePath, Projector};

use crate::inputs::{projector, BackendArgs, MethodName};

/// Views used on the CPU when --views is not given (forward and backprojection).
const CPU_DEFAULT_VIEWS: usize = 8;

/// Views FDK reconstructs from on the CPU when --views is not given: as the RTK anchor
/// (`anchors/rtk_cpu_fdk.py`).
const CPU_DEFAULT_FDK_VIEWS: usize = 16;

/// Fewest timed runs of the resident kernel on CUDA when --resident-repeats is not given:
/// the kernels are short (a DRR takes well under a millisecond).
const MIN_RESIDENT_REPEATS: usize = 20;

/// A standard case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CaseName {
    /// 256^3 volume, 256^2 detector, 360 views.
    Fp256,
    /// 512^3 volume, 512^2 detector, 360 views.
    Fp512,
    /// One 512^2 DRR of a 512 x 512 x 133 CT-like volume.
    Drr1,
    /// 64 DRRs of the same volume.
    Drr64,
}

/// What is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Operation {
    /// Forward projection: the case's views from its phantom.
    Forward,
    /// Backprojection (the exact transpose) of the case's projections.
    Backproject,
    /// FDK reconstruction of the case's volume from its projections (Ram-Lak ramp):
    /// filtering and the voxel-driven backprojection.
    Fdk,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Forward => "forward",
            Operation::Backproject => "backproject",
            Operation::Fdk => "fdk",
        }
    }
}

/// Options of `xray bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Cases to run (repeat the option for several).
    #[arg(long, value_enum, default_values_t = [CaseName::Fp256])]
    case: Vec<CaseName>,
    /// What to time (repeat the option for several).
    #[arg(long, value_enum, default_values_t = [Operation::Forward])]
    op: Vec<Operation>,
    /// Views per case (default: the case's own on CUDA; on the CPU 8, and 16 for FDK).
    #[arg(long, value_name = "N")]
    views: Option<usize>,
    #[command(flatten)]
    backend: BackendArgs,
    /// Ray tracer (forward and backprojection; FDK's projections are made with it).
    #[arg(long, value_enum, default_value_t = MethodName::Siddon)]
    method: MethodName,
    /// Timed repetitions after one warm-up; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeats: usize,
    /// CUDA only: timed runs of the resident kernel after one warm-up, median reported
    /// (default: --repeats, at least 20).
    #[arg(long, value_name = "N")]
    resident_repeats: Option<usize>,
    /// Print one JSON object per case and operation instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Record {
    case: &'static str,
    op: &'static str,
    backend: BackendKind,
    /// CPU only: the vector path that ran (`avx512`, `avx2` or `scalar`).
    #[serde(skip_serializing_if = "Option::is_none")]
    lanes: Option<&'static str>,
    /// CPU vector paths only: how the lanes gather (`instruction` or `loads`).
    #[serde(skip_serializing_if = "Option::is_none")]
    gather: Option<&'static str>,
    method: &'static str,
    views: usize,
    seconds: f64,
    /// Forward and backprojection: detector pixels per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    rays_per_second: Option<f64>,
    /// FDK: voxels times views per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    voxel_updates_per_second: Option<f64>,
    /// CUDA only: the kernel alone, volume resident and output kept on the GPU (CUDA
    /// events), median over the repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    resident_seconds: Option<f64>,
    /// CUDA only: GPU memory taken by the resident volume, the projections and the view
    /// records (free memory before minus after allocating them), in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_mib: Option<f64>,
    /// Forward: the centre ray of view 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    centre_ray: Option<f32>,
    /// Forward: the anchors' value of that ray.
    #[serde(skip_serializing_if = "Option::is_none")]
    anchor_centre_ray: Option<f32>,
    /// Backprojection and FDK: the centre voxel of the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    centre_voxel: Option<f32>,
}

/// Runs the cases and prints the results.
pub fn run(args: BenchArgs) -> Result<()> {
    let projector = projector(&args.backend)?;
    let repeats = args.repeats.max(1);
    if !args.json {
        println!(
            "{:<6} {:<11} {:<5} {:<7} {:>6} {:>10} {:>10} {:>12} {:>9} {:>10} {:>8}",
            "case",
            "op",
            "on",
            "method",
            "views",
            "seconds",
            "M/s",
            "resident s",
            "GPU MiB",
            "centre",
            "anchor"
        );
    }
    for case in &args.case {
        for &op in &args.op {
            let record = run_case(&projector, &args, *case, op, repeats)?;
            print_record(&record, args.json)?;
        }
    }
    Ok(())
}

/// Times `op` on `case`: one warm-up, then the median of `repeats` runs.
fn run_case(
    projector: &Projector,
    args: &BenchArgs,
    case: CaseName,
    op: Operation,
    repeats: usize,
) -> Result<Record> {
    let method = args.method.into();
    let name = match case {
        CaseName::Fp256 => "fp256",
        CaseName::Fp512 => "fp512",
        CaseName::Drr1 => "drr1",
        CaseName::Drr64 => "drr64",
    };
    let mut case = StandardCase::named(name).context("unknown case")?;
    let views = args.views.unwrap_or(match (projector.backend(), op) {
        (BackendKind::Cpu, Operation::Fdk) => case.scan.views.min(CPU_DEFAULT_FDK_VIEWS),
        (BackendKind::Cpu, _) => case.scan.views.min(CPU_DEFAULT_VIEWS),
        (BackendKind::Cuda, _) => case.scan.views,
    });
    case = case.with_views(views);
    let (volume, geometry) = case.inputs()?;
    let rays = geometry.ray_count()?;
    let mut record = Record {
        case: case.name,
        op: op.name(),
        backend: projector.backend(),
        lanes: (projector.backend() == BackendKind::Cpu).then(|| LanePath::in_use().name()),
        gather: (projector.backend() == BackendKind::Cpu && LanePath::in_use() != LanePath::Scalar)
            .then(|| Gather::in_use().name()),
        method: match args.method {
            MethodName::Siddon => "siddon",
            MethodName::Joseph => "joseph",
        },
        views,
        seconds: 0.0,
        rays_per_second: None,
        voxel_updates_per_second: None,
        resident_seconds: None,
        device_mib: None,
        centre_ray: None,
        anchor_centre_ray: None,
        centre_voxel: None,
    };
    let centre = |v: &Array3<f32>| {
        let [z, y, x] = case.volume.shape;
        v[[z / 2, y / 2, x / 2]]
    };
    match op {
        Operation::Forward => {
            let (seconds, result) = timed(repeats, || {
                projector.forward(&volume, &case.volume, &geometry, method)
            })?;
            let resident_repeats = args
                .resident_repeats
                .unwrap_or(repeats.max(MIN_RESIDENT_REPEATS))
                .max(1);
            let resident = resident_timing(
                projector,
                &volume,
                &case,
                &geometry,
                method,
                resident_repeats,
            )?;
            record.seconds = seconds;
            record.rays_per_second = Some(rays as f64 / seconds);
            record.resident_seconds = resident.map(|(seconds, _)| seconds);
            record.device_mib = resident.map(|(_, bytes)| bytes as f64 / (1u64 << 20) as f64);
            record.centre_ray = Some(result[[0, geometry.rows / 2, geometry.cols / 2]]);
            record.anchor_centre_ray = Some(case.check_value);
        }
        Operation::Backproject => {
            let projections = projector.forward(&volume, &case.volume, &geometry, method)?;
            let (seconds, result) = timed(repeats, || {
                projector.backward(&projections, &geometry, &case.volume, method)
            })?;
            record.seconds = seconds;
            record.rays_per_second = Some(rays as f64 / seconds);
            record.centre_voxel = Some(centre(&result));
        }
        Operation::Fdk => {
            let projections = projector.forward(&volume, &case.volume, &geometry, method)?;
            let (seconds, result) = timed(repeats, || {
                recon::fdk(
                    projector,
                    &projections,
                    &case.scan,
                    &case.volume,
                    Filter::RamLak,
                )
            })?;
            let voxels = volume.len() as f64;
            record.seconds = seconds;
            record.voxel_updates_per_second = Some(voxels * views as f64 / seconds);
            record.centre_voxel = Some(centre(&result));
        }
    }
    Ok(record)
}

/// The median time of `repeats` runs of `f` after one warm-up, and the last result.
fn timed<T>(repeats: usize, mut f: impl FnMut() -> xray_projector::Result<T>) -> Result<(f64, T)> {
    let mut result = f()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        result = f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok((median(&mut times), result))
}

/// Prints `record` as a table row or a JSON line.
fn print_record(record: &Record, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(record)?);
        return Ok(());
    }
    let or_dash = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
    };
    let per_second = record.rays_per_second.or(record.voxel_updates_per_second);
    println!(
        "{:<6} {:<11} {:<5} {:<7} {:>6} {:>10.4} {:>10} {:>12} {:>9} {:>10} {:>8}",
        record.case,
        record.op,
        record.backend,
        record.method,
        record.views,
        record.seconds,
        or_dash(per_second.map(|v| v / 1e6), 3),
        or_dash(record.resident_seconds, 5),
        or_dash(record.device_mib, 1),
        or_dash(record.centre_ray.or(record.centre_voxel).map(f64::from), 4),
        or_dash(record.anchor_centre_ray.map(f64::from), 3),
    );
    Ok(())
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// On CUDA: the median kernel time over `repeats` runs (after one warm-up) with the volume
/// resident and the output kept on the GPU, and the GPU memory those buffers took. `None`
/// on the CPU.
#[cfg(feature = "cuda")]
fn resident_timing(
    projector: &xray_projector::Projector,
    volume: &ndarray::Array3<f32>,
    case: &StandardCase,
    geometry: &xray_projector::ProjectionGeometry,
    method: xray_projector::Method,
    repeats: usize,
) -> Result<Option<(f64, u64)>> {
    let Some(gpu) = projector.cuda_backend() else {
        return Ok(None);
    };
    let (free_before, _) = gpu.memory_info()?;
    let resident = gpu.upload(volume, &case.volume)?;
    let mut out = gpu.allocate_projections(geometry)?;
    let (free_after, _) = gpu.memory_info()?;
    gpu.forward_into(&resident, geometry, method, &mut out)?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        times.push(
            gpu.forward_into(&resident, geometry, method, &mut out)?
                .as_secs_f64(),
        );
    }
    let used = free_before.saturating_sub(free_after) as u64;
    Ok(Some((median(&mut times), used)))
}

#[cfg(not(feature = "cuda"))]
fn resident_timing(
    _: &xray_projector::Projector,
    _: &ndarray::Array3<f32>,
    _: &StandardCase,
    _: &xray_projector::ProjectionGeometry,
    _: xray_projector::Method,
    _: usize,
) -> Result<Option<(f64, u64)>> {
    Ok(None)
}
