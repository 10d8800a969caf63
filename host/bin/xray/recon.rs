//! `xray recon`: a volume from a `[views, rows, cols]` `.npy` stack, by FDK, SIRT or
//! CGLS.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use xray_projector::distributed;
use xray_projector::io::{read_volume_npy, DEFAULT_MAX_BYTES};
use xray_projector::recon::{self, Filter, IterativeOptions, Progress};

use crate::inputs::{projector, BackendArgs, GridArgs, MethodName, ScannerArgs};
use crate::outputs::{self, format_of, Format};
use crate::ranks;

/// Reconstruction algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// Filtered backprojection (FDK for cone beams): one pass, circular scans only.
    Fdk,
    /// Simultaneous iterative reconstruction: slow and steady, any geometry.
    Sirt,
    /// Conjugate gradients on the normal equations: fast convergence, any geometry.
    Cgls,
}

/// Ramp filter windows (FDK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FilterName {
    /// The bare ramp: sharpest, noisiest.
    RamLak,
    /// Ramp times sinc: slightly smoother.
    SheppLogan,
    /// Ramp times cosine.
    Cosine,
    /// Ramp times Hann: smoothest, for noisy data.
    Hann,
}

impl From<FilterName> for Filter {
    fn from(name: FilterName) -> Filter {
        match name {
            FilterName::RamLak => Filter::RamLak,
            FilterName::SheppLogan => Filter::SheppLogan,
            FilterName::Cosine => Filter::Cosine,
            FilterName::Hann => Filter::Hann,
        }
    }
}

/// Options of `xray recon`.
#[derive(Args, Debug)]
pub struct ReconArgs {
    /// Projections: a 3D float32 or float64 .npy array [views, rows, cols] of line
    /// integrals (-ln(I/I0)), as written by `xray project`.
    #[arg(long, value_name = "FILE.npy")]
    projections: PathBuf,
    /// The algorithm.
    #[arg(long, value_enum, default_value_t = Algorithm::Fdk)]
    algorithm: Algorithm,
    #[command(flatten)]
    scanner: ScannerArgs,
    #[command(flatten)]
    grid: GridArgs,
    /// FDK: the ramp filter's window.
    #[arg(long, value_enum, default_value_t = FilterName::RamLak)]
    filter: FilterName,
    /// SIRT/CGLS: the projector model.
    #[arg(long, value_enum, default_value_t = MethodName::Siddon)]
    method: MethodName,
    /// SIRT/CGLS: most iterations.
    #[arg(long, value_name = "N", default_value_t = 50)]
    iterations: usize,
    /// SIRT/CGLS: stop once ||b - Ax|| / ||b|| is at most this.
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    tolerance: f64,
    /// SIRT: the step size lambda, between 0 and 2.
    #[arg(long, value_name = "LAMBDA", default_value_t = 1.0)]
    relaxation: f64,
    /// SIRT/CGLS: allow negative attenuation (by default it is clipped at 0).
    #[arg(long)]
    allow_negative: bool,
    #[command(flatten)]
    backend: BackendArgs,
    /// Output: float32 [z, y, x] of attenuation in 1/mm as .npy, .nii/.nii.gz or .mha/.mhd (these two with
    /// the grid's position).
    #[arg(long, value_name = "FILE", default_value = "recon.npy")]
    out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

/// `xray recon`.
pub fn run(args: ReconArgs) -> Result<()> {
    let format = format_of(&args.out, &[Format::Npy, Format::Nifti, Format::MetaImage])?;
    let overwrite = outputs::overwrite(args.force);
    let grid = args.grid.geometry()?;
    let comm = ranks::communicator()?;
    let comm = comm.as_deref();
    let root = comm.is_none_or(|c| c.is_root());
    let projector = projector(&args.backend)?;
    let context = || format!("reconstructing from {}", args.projections.display());
    let start = Instant::now();
    let (volume, views) = match args.algorithm {
        Algorithm::Fdk => {
            // FDK needs every view on every rank (each reconstructs its own slices).
            let projections = read_volume_npy(&args.projections, DEFAULT_MAX_BYTES)?;
            let views = projections.dim().0;
            let scan = args.scanner.circular_scan(views)?;
            let filter = args.filter.into();
            let volume = match comm {
                Some(comm) => {
                    distributed::fdk(comm, &projector, &projections, &scan, &grid, filter)
                }
                None => recon::fdk(&projector, &projections, &scan, &grid, filter).map(Some),
            }
            .with_context(context)?;
            (volume, views)
        }
        Algorithm::Sirt | Algorithm::Cgls => {
            let options = IterativeOptions {
                method: args.method.into(),
                iterations: args.iterations,
                tolerance: args.tolerance,
                nonnegative: !args.allow_negative,
                relaxation: args.relaxation,
            };
            let report = |progress: &Progress| {
                if root {
                    eprintln!(
                        "iteration {:>4}: residual {:.4e}",
                        progress.iteration, progress.residual
                    );
                }
                ControlFlow::Continue(())
            };
            let sirt = args.algorithm == Algorithm::Sirt;
            let (result, views) = match comm {
                Some(comm) => {
                    // Each rank holds its own views; every rank ends with the volume.
                    let (local, views) = ranks::read_local_views(&args.projections, comm)?;
                    let geometry = args.scanner.geometry(views)?;
                    let run = if sirt {
                        distributed::sirt
                    } else {
                        distributed::cgls
                    };
                    let result = run(comm, &projector, &local, &geometry, &grid, &options, report);
                    (result, views)
                }
                None => {
                    let projections = read_volume_npy(&args.projections, DEFAULT_MAX_BYTES)?;
                    let views = projections.dim().0;
                    let geometry = args.scanner.geometry(views)?;
                    let run = if sirt { recon::sirt } else { recon::cgls };
                    let result = run(&projector, &projections, &geometry, &grid, &options, report);
                    (result, views)
                }
            };
            let result = result.with_context(context)?;
            if root {
                eprintln!("stopped: {:?}", result.stopped);
            }
            (root.then_some(result.volume), views)
        }
    };
    // Under mpirun, the root writes.
    let Some(volume) = volume else { return Ok(()) };
    let elapsed = start.elapsed();
    outputs::volume(&args.out, format, volume.view(), &grid, overwrite)?;
    let [nz, ny, nx] = grid.shape;
    eprintln!(
        "wrote {} ({nx} x {ny} x {nz} voxels from {views} views, {:?} on {}{}, {:.2} s)",
        args.out.display(),
        args.algorithm,
        projector.backend(),
        ranks::on_ranks(comm),
        elapsed.as_secs_f64()
    );
    Ok(())
}
