//! `xray drr` and `xray project`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{s, Array3};
use xray_projector::distributed;
use xray_projector::intensity::{add_poisson_noise, beer_lambert};

use crate::inputs::{
    projector, BackendArgs, Input, MethodName, PhantomName, ScannerArgs, VolumeArgs,
};
use crate::outputs::{self, format_of, Format, PngArgs};
use crate::physics::{PhysicsArgs, HEAD_KVP};
use crate::ranks;

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
    /// Hold at most this much of the volume and the projections in memory (4096, 512M,
    /// 2G): the --volume file (.npy, raw, .nii, .mha/.mhd, uncompressed) is read by
    /// slabs of slices from a memory map and the .npy output written by batches of
    /// views, for volumes larger than RAM. Prints the peak resident set.
    #[arg(long, value_name = "SIZE", value_parser = crate::inputs::parse_bytes, requires = "volume")]
    max_memory: Option<u64>,
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
    /// Add noise, reproducibly from this seed: Poisson photon noise to the --i0
    /// intensities, or one exposure of the polychromatic model (quantum and electronic).
    #[arg(long, value_name = "SEED")]
    noise_seed: Option<u64>,
    #[command(flatten)]
    physics: PhysicsArgs,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

impl CommonArgs {
    /// Refuses options that do not go with the input.
    fn check(&self, input: &Input) -> Result<()> {
        match input {
            Input::Materials(..) if self.i0.is_some() => {
                bail!("--i0 is the monochromatic model's; the polychromatic model's dose is --mas")
            }
            Input::Attenuation(..) if self.noise_seed.is_some() && self.i0.is_none() => {
                bail!("--noise-seed needs --i0 (or a polychromatic model: --kvp with materials)")
            }
            Input::Attenuation(..) if !self.physics.given().is_empty() => bail!(
                "{} set the polychromatic model, which runs with --kvp on the built-in head, \
                 a CT with --hu or a label map with --labels",
                self.physics.given().join(", ")
            ),
            _ => Ok(()),
        }
    }

    /// What the detector records of `input` (line integrals, intensities with
    /// optional noise, or the polychromatic model's radiographs), and what the report
    /// line adds about the model.
    fn render(
        &self,
        input: &Input,
        projector: &xray_projector::Projector,
        geometry: &xray_projector::ProjectionGeometry,
    ) -> Result<(Array3<f32>, String)> {
        let method = self.method.into();
        match input {
            Input::Attenuation(volume, grid) => {
                let p = projector
                    .forward(volume, grid, geometry, method)
                    .context("projecting")?;
                Ok((self.detector_signal(p)?, String::new()))
            }
            Input::Materials(maps, absorbers, grid) => {
                let model = self
                    .physics
                    .model(absorbers.clone(), HEAD_KVP, grid, geometry)?;
                let projections =
                    xray_projector::physics::project_maps(projector, maps, grid, geometry, method)
                        .context("projecting the material maps")?;
                let signal =
                    self.physics
                        .radiographs(&model, &projections, geometry, self.noise_seed)?;
                let detail = format!(
                    ", {} material maps, {}",
                    maps.len(),
                    self.physics.summary(&model, HEAD_KVP)
                );
                Ok((signal, detail))
            }
        }
    }

    /// Whether the output holds intensities (shown inverted, so that what attenuates
    /// is bright) rather than line integrals or logged radiographs.
    fn shows_intensities(&self, input: &Input) -> bool {
        match input {
            Input::Attenuation(..) => self.i0.is_some(),
            Input::Materials(..) => self.physics.raw_signal,
        }
    }

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
    let input = args
        .volume
        .load_input(PhantomName::Head, args.common.physics.requested())?;
    args.common.check(&input)?;
    let projector = projector(&args.common.backend)?;
    let start = Instant::now();
    let (signal, detail) = args.common.render(&input, &projector, &geometry)?;
    let elapsed = start.elapsed();
    match format {
        Format::Png => outputs::png(
            &args.out,
            &signal.slice(s![0, .., ..]),
            &args.png,
            args.common.shows_intensities(&input),
            overwrite,
        )?,
        Format::Npy => outputs::npy(&args.out, &signal.slice(s![0, .., ..]), overwrite)?,
        _ => outputs::projections(&args.out, format, signal.view(), &geometry, overwrite)?,
    }
    eprintln!(
        "wrote {} ({} x {} pixels, {:?} on {}{}, {:.1} ms)",
        args.out.display(),
        geometry.rows,
        geometry.cols,
        args.common.method,
        projector.backend(),
        detail,
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

/// `xray project`.
pub fn project(args: ProjectArgs) -> Result<()> {
    let comm = ranks::communicator()?;
    if let Some(max_memory) = args.max_memory {
        if comm.is_some() {
            bail!("--max-memory is not available under mpirun yet: run it alone");
        }
        return project_streamed(&args, max_memory);
    }
    let format = format_of(&args.out, &[Format::Npy, Format::Tiff, Format::Nifti])?;
    let overwrite = outputs::overwrite(args.common.force);
    let geometry = args.scanner.geometry(args.views)?;
    let input = args
        .volume
        .load_input(PhantomName::SheppLogan, args.common.physics.requested())?;
    args.common.check(&input)?;
    let projector = projector(&args.common.backend)?;
    let (volume, grid) = match input {
        Input::Attenuation(volume, grid) => (volume, grid),
        materials @ Input::Materials(..) => {
            if comm.is_some() {
                bail!("the polychromatic model is not available under mpirun yet: run it alone");
            }
            let start = Instant::now();
            let (signal, detail) = args.common.render(&materials, &projector, &geometry)?;
            outputs::projections(&args.out, format, signal.view(), &geometry, overwrite)?;
            report_stack(&args, &geometry, &projector, &detail, start.elapsed());
            return Ok(());
        }
    };
    let method = args.common.method.into();
    let start = Instant::now();
    let p = match comm.as_deref() {
        Some(comm) => distributed::project(comm, &projector, &volume, &grid, &geometry, method)
            .context("projecting")?,
        None => {
            let bar = ProgressBar::new(geometry.views.len() as u64).with_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} views, {elapsed} elapsed, ETA {eta}",
                )
                .expect("the template is valid"),
            );
            let p = projector
                .forward_with_progress(&volume, &grid, &geometry, method, &|| bar.inc(1))
                .context("projecting")?;
            bar.finish_and_clear();
            Some(p)
        }
    };
    // Under mpirun, the root writes.
    let Some(p) = p else { return Ok(()) };
    let elapsed = start.elapsed();
    let signal = args.common.detector_signal(p)?;
    outputs::projections(&args.out, format, signal.view(), &geometry, overwrite)?;
    let detail = ranks::on_ranks(comm.as_deref());
    report_stack(&args, &geometry, &projector, &detail, elapsed);
    Ok(())
}

/// The line `xray project` prints once the stack is written.
fn report_stack(
    args: &ProjectArgs,
    geometry: &xray_projector::ProjectionGeometry,
    projector: &xray_projector::Projector,
    detail: &str,
    elapsed: std::time::Duration,
) {
    eprintln!(
        "wrote {} ({} views of {} x {}, {:?} on {}{detail}, {:.2} s)",
        args.out.display(),
        geometry.views.len(),
        geometry.rows,
        geometry.cols,
        args.common.method,
        projector.backend(),
        elapsed.as_secs_f64()
    );
}

/// `xray project --max-memory`: the volume by slabs, the projections by batches.
fn project_streamed(args: &ProjectArgs, max_memory: u64) -> Result<()> {
    use xray_projector::io::{NpyStream, SlabSource};
    format_of(&args.out, &[Format::Npy]).context("--max-memory writes .npy only")?;
    if args.common.i0.is_some()
        || args.common.noise_seed.is_some()
        || args.common.physics.requested()
        || !args.common.physics.given().is_empty()
        || args.volume.labels.is_some()
    {
        bail!(
            "--max-memory writes line integrals: --i0, --noise-seed and the polychromatic \
             model's options are not available with it"
        );
    }
    let path = args
        .volume
        .volume
        .as_deref()
        .context("--max-memory needs --volume")?;
    let options = args.volume.read_options()?;
    let source = SlabSource::open(path, &options)
        .with_context(|| format!("opening the volume {} for reading by slabs", path.display()))?;
    let grid = args.volume.placed(source.geometry().clone());
    let conversion = args.volume.hu_conversion();
    let prepare = |slab: &mut ndarray::ArrayViewMut3<'_, f32>| match &conversion {
        Some(conversion) => conversion.apply(slab),
        None => Ok(()),
    };
    let geometry = args.scanner.geometry(args.views)?;
    let projector = projector(&args.common.backend)?;
    let mut out = NpyStream::create(
        &args.out,
        geometry.shape(),
        outputs::overwrite(args.common.force),
    )
    .with_context(|| format!("creating {}", args.out.display()))?;
    let bar = ProgressBar::new(geometry.views.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} views, {elapsed} elapsed, ETA {eta}")
            .expect("the template is valid"),
    );
    let start = Instant::now();
    let run = xray_projector::streaming::project_streamed(
        &projector,
        &source,
        &grid,
        &prepare,
        &geometry,
        args.common.method.into(),
        max_memory,
        &mut out,
        &|| bar.inc(1),
    )
    .context("projecting by slabs")?;
    out.finish()
        .with_context(|| format!("writing {}", args.out.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({} views of {} x {}, {:?} on {}, {:.2} s; {} slabs of at most {} slices, \
         {} views per batch)",
        args.out.display(),
        geometry.views.len(),
        geometry.rows,
        geometry.cols,
        args.common.method,
        projector.backend(),
        start.elapsed().as_secs_f64(),
        run.slabs,
        run.slab_slices,
        run.view_batch,
    );
    if let Some(peak) = peak_resident_bytes() {
        eprintln!("peak resident set: {} KiB", peak >> 10);
    }
    Ok(())
}

/// This process's peak resident set (`VmHWM` of `/proc/self/status`), where Linux
/// tells it.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}
