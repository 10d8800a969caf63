//! `xray backproject`: the transpose of `xray project`, from a `[views, rows, cols]`
//! `.npy` stack to a `[z, y, x]` volume.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use xray_projector::distributed;
use xray_projector::io::{read_volume_npy, DEFAULT_MAX_BYTES};

use crate::inputs::{projector, BackendArgs, GridArgs, MethodName, ScannerArgs};
use crate::outputs::{self, format_of, Format};
use crate::ranks;

/// Options of `xray backproject`.
#[derive(Args, Debug)]
pub struct BackprojectArgs {
    /// Projections: a 3D float32 or float64 .npy array [views, rows, cols], as written
    /// by `xray project` (line integrals, not intensities).
    #[arg(long, value_name = "FILE.npy")]
    projections: PathBuf,
    #[command(flatten)]
    scanner: ScannerArgs,
    #[command(flatten)]
    grid: GridArgs,
    /// Ray tracer whose transpose to apply.
    #[arg(long, value_enum, default_value_t = MethodName::Siddon)]
    method: MethodName,
    #[command(flatten)]
    backend: BackendArgs,
    /// Output: float32 [z, y, x] as .npy, .nii/.nii.gz or .mha/.mhd (these two with
    /// the grid's position).
    #[arg(long, value_name = "FILE", default_value = "backprojection.npy")]
    out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

/// `xray backproject`.
pub fn run(args: BackprojectArgs) -> Result<()> {
    let format = format_of(&args.out, &[Format::Npy, Format::Nifti, Format::MetaImage])?;
    let overwrite = outputs::overwrite(args.force);
    let grid = args.grid.geometry()?;
    let [nz, ny, nx] = grid.shape;
    let comm = ranks::communicator()?;
    let context = || format!("backprojecting {}", args.projections.display());
    let method = args.method.into();
    let projector = projector(&args.backend)?;
    let start = Instant::now();
    let (volume, views) = match comm.as_deref() {
        Some(comm) => {
            // Each rank reads and backprojects its own views; all hold the sum.
            let (local, views) = ranks::read_local_views(&args.projections, comm)?;
            let geometry = args.scanner.geometry(views)?;
            let volume = distributed::backward(comm, &projector, &local, &geometry, &grid, method)
                .with_context(context)?;
            (comm.is_root().then_some(volume), views)
        }
        None => {
            let projections = read_volume_npy(&args.projections, DEFAULT_MAX_BYTES)?;
            let views = projections.dim().0;
            let geometry = args.scanner.geometry(views)?;
            let volume = projector
                .backward(&projections, &geometry, &grid, method)
                .with_context(context)?;
            (Some(volume), views)
        }
    };
    let Some(volume) = volume else { return Ok(()) };
    let elapsed = start.elapsed();
    outputs::volume(&args.out, format, volume.view(), &grid, overwrite)?;
    eprintln!(
        "wrote {} ({nx} x {ny} x {nz} voxels from {views} views, {:?} on {}{}, {:.2} s)",
        args.out.display(),
        args.method,
        projector.backend(),
        ranks::on_ranks(comm.as_deref()),
        elapsed.as_secs_f64()
    );
    Ok(())
}
