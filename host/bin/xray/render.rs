//! `xray drr` and `xray project`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{s, Array3};
use xray_projector::intensity::{add_poisson_noise, beer_lambert};

use crate::inputs::{projector, BackendArgs, MethodName, ScannerArgs, VolumeArgs};
use crate::outputs::{self, format_of, Format, PngArgs};

/// Options of `xray drr`.
#[derive(Args, Debug)]
pub struct DrrArgs {
    #[command(flatten)]
    volume: VolumeArgs,
    #[command(flatten)]
    scanner: ScannerArgs,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    png: PngArgs,
    /// Output: .png (an image), or the float32 values as .npy [rows, cols], .tif or
    /// .nii/.nii.gz.
    #[arg(long, value_name = "FILE", default_value = "drr.png")]
    out: PathBuf,
}

/// Options of `xray project`.
#[derive(Args, Debug)]
pub struct ProjectArgs {
    #[command(flatten)]
    volume: VolumeArgs,
    #[command(flatten)]
    scanner: ScannerArgs,
    #[command(flatten)]
    common: CommonArgs,
    /// Number of views over a full turn (ignored with --geometry).
    #[arg(long, value_name = "N", default_value_t = 360)]
    views: usize,
    /// Output: float32 [views, rows, cols] as .npy, a multi-page .tif, or a .nii/.nii.gz
    /// stack.
    #[arg(long, value_name = "FILE", default_value = "projections.npy")]
    out: PathBuf,
}

/// Options shared by `drr` and `project`.
#[derive(Args, Debug)]
struct CommonArgs {
    /// Ray tracer.
    #[arg(long, value_enum, default_value_t = MethodName::Siddon)]
    method: MethodName,
    #[command(flatten)]
    backend: BackendArgs,
    /// Write detected intensities I0 * exp(-p) for this many photons per pixel instead
    /// of line integrals p.
    #[arg(long, value_name = "PHOTONS", allow_negative_numbers = true)]
    i0: Option<f64>,
    /// Add Poisson photon noise to the intensities, reproducibly from this seed (needs --i0).
    #[arg(long, value_name = "SEED", requires = "i0")]
    noise_seed: Option<u64>,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

impl CommonArgs {
    /// Line integrals, or intensities with optional noise, as asked.
    fn detector_signal(&self, line_integrals: Array3<f32>) -> Result<Array3<f32>> {
        let Some(i0) = self.i0 else {
            return Ok(line_integrals);
        };
        let mut counts = beer_lambert(&line_integrals, i0).context("--i0")?;
        if let Some(seed) = self.noise_seed {
            add_poisson_noise(&mut counts, seed)?;
        }
        Ok(counts)
    }
}

/// `xray drr`.
pub fn drr(args: DrrArgs) -> Result<()> {
    let format = format_of(
        &args.out,
        &[Format::Png, Format::Npy, Format::Tiff, Format::Nifti],
    )?;
    let overwrite = outputs::overwrite(args.common.force);
    let geometry = args.scanner.geometry(1)?;
    if geometry.views.len() != 1 {
        bail!(
            "xray drr renders one view, but the geometry has {} views: use xray project",
            geometry.views.len()
        );
    }
    let (volume, grid) = args.volume.load()?;
    let projector = projector(&args.common.backend)?;
    let start = Instant::now();
    let p = projector
        .forward(&volume, &grid, &geometry, args.common.method.into())
        .context("projecting")?;
    let elapsed = start.elapsed();
    let signal = args.common.detector_signal(p)?;
    match format {
        Format::Png => outputs::png(
            &args.out,
            &signal.slice(s![0, .., ..]),
            &args.png,
            args.common.i0.is_some(),
            overwrite,
        )?,
        Format::Npy => outputs::npy(&args.out, &signal.slice(s![0, .., ..]), overwrite)?,
        _ => outputs::projections(&args.out, format, signal.view(), &geometry, overwrite)?,
    }
    eprintln!(
        "wrote {} ({} x {} pixels, {:?} on {}, {:.1} ms)",
        args.out.display(),
        geometry.rows,
        geometry.cols,
        args.common.method,
        projector.backend(),
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

/// `xray project`.
pub fn project(args: ProjectArgs) -> Result<()> {
    let format = format_of(&args.out, &[Format::Npy, Format::Tiff, Format::Nifti])?;
    let overwrite = outputs::overwrite(args.common.force);
    let geometry = args.scanner.geometry(args.views)?;
    let (volume, grid) = args.volume.load()?;
    let projector = projector(&args.common.backend)?;
    let bar = ProgressBar::new(geometry.views.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} views, {elapsed} elapsed, ETA {eta}")
            .expect("the template is valid"),
    );
    let start = Instant::now();
    let p = projector
        .forward_with_progress(
            &volume,
            &grid,
            &geometry,
            args.common.method.into(),
            &|| bar.inc(1),
        )
        .context("projecting")?;
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let signal = args.common.detector_signal(p)?;
    outputs::projections(&args.out, format, signal.view(), &geometry, overwrite)?;
    eprintln!(
        "wrote {} ({} views of {} x {}, {:?} on {}, {:.2} s)",
        args.out.display(),
        geometry.views.len(),
        geometry.rows,
        geometry.cols,
        args.common.method,
        projector.backend(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
