//! `xray bench`: the standard cases of BENCHMARKS.md, timed on this machine.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use xray_projector::cases::StandardCase;
use xray_projector::BackendKind;

use crate::inputs::{projector, BackendArgs, MethodName};

/// Views used on the CPU when --views is not given.
const CPU_DEFAULT_VIEWS: usize = 8;

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

/// Options of `xray bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Cases to run (repeat the option for several).
    #[arg(long, value_enum, default_values_t = [CaseName::Fp256])]
    case: Vec<CaseName>,
    /// Views per case (default: the case's own on CUDA, 8 on the CPU).
    #[arg(long, value_name = "N")]
    views: Option<usize>,
    #[command(flatten)]
    backend: BackendArgs,
    /// Ray tracer.
    #[arg(long, value_enum, default_value_t = MethodName::Siddon)]
    method: MethodName,
    /// Timed repetitions after one warm-up; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeats: usize,
    /// CUDA only: timed runs of the resident kernel after one warm-up, median reported
    /// (default: --repeats, at least 20).
    #[arg(long, value_name = "N")]
    resident_repeats: Option<usize>,
    /// Print one JSON object per case instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Record {
    case: &'static str,
    backend: BackendKind,
    method: &'static str,
    views: usize,
    seconds: f64,
    rays_per_second: f64,
    /// CUDA only: the kernel alone, volume resident and output kept on the GPU (CUDA
    /// events), median over the repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    resident_seconds: Option<f64>,
    /// CUDA only: GPU memory taken by the resident volume, the projections and the view
    /// records (free memory before minus after allocating them), in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_mib: Option<f64>,
    centre_ray: f32,
    anchor_centre_ray: f32,
}

/// Runs the cases and prints the results.
pub fn run(args: BenchArgs) -> Result<()> {
    let projector = projector(&args.backend)?;
    let method = args.method.into();
    let repeats = args.repeats.max(1);
    let resident_repeats = args
        .resident_repeats
        .unwrap_or(repeats.max(MIN_RESIDENT_REPEATS))
        .max(1);
    if !args.json {
        println!(
            "{:<6} {:<5} {:<7} {:>6} {:>12} {:>14} {:>12} {:>9} {:>10} {:>8}",
            "case",
            "on",
            "method",
            "views",
            "seconds",
            "Mrays/s",
            "resident s",
            "GPU MiB",
            "centre",
            "anchor"
        );
    }
    for case in &args.case {
        let name = match case {
            CaseName::Fp256 => "fp256",
            CaseName::Fp512 => "fp512",
            CaseName::Drr1 => "drr1",
            CaseName::Drr64 => "drr64",
        };
        let mut case = StandardCase::named(name).context("unknown case")?;
        let views = args.views.unwrap_or(match projector.backend() {
            BackendKind::Cpu => case.scan.views.min(CPU_DEFAULT_VIEWS),
            BackendKind::Cuda => case.scan.views,
        });
        case = case.with_views(views);
        let (volume, geometry) = case.inputs()?;
        let rays = geometry.ray_count()?;
        let mut result = projector.forward(&volume, &case.volume, &geometry, method)?;
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = Instant::now();
            result = projector.forward(&volume, &case.volume, &geometry, method)?;
            times.push(start.elapsed().as_secs_f64());
        }
        let seconds = median(&mut times);
        let resident = resident_timing(
            &projector,
            &volume,
            &case,
            &geometry,
            method,
            resident_repeats,
        )?;
        let record = Record {
            case: case.name,
            backend: projector.backend(),
            method: match args.method {
                MethodName::Siddon => "siddon",
                MethodName::Joseph => "joseph",
            },
            views,
            seconds,
            rays_per_second: rays as f64 / seconds,
            resident_seconds: resident.map(|(seconds, _)| seconds),
            device_mib: resident.map(|(_, bytes)| bytes as f64 / (1u64 << 20) as f64),
            centre_ray: result[[0, geometry.rows / 2, geometry.cols / 2]],
            anchor_centre_ray: case.check_value,
        };
        if args.json {
            println!("{}", serde_json::to_string(&record)?);
        } else {
            let or_dash = |v: Option<f64>, digits: usize| {
                v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
            };
            println!(
                "{:<6} {:<5} {:<7} {:>6} {:>12.4} {:>14.3} {:>12} {:>9} {:>10.4} {:>8.3}",
                record.case,
                record.backend,
                record.method,
                record.views,
                record.seconds,
                record.rays_per_second / 1e6,
                or_dash(record.resident_seconds, 5),
                or_dash(record.device_mib, 1),
                record.centre_ray,
                record.anchor_centre_ray
            );
        }
    }
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
