//! `xray`: DRRs, projection stacks and benchmarks from the command line.

mod backproject;
mod bench;
mod info;
mod inputs;
mod outputs;
mod physics;
mod ranks;
mod recon;
mod render;

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// X-ray forward projection: digitally reconstructed radiographs (DRRs) and cone-beam
/// projection stacks, by Siddon's exact ray tracing or Joseph's interpolation, on an
/// NVIDIA GPU or the CPU.
///
/// Conventions: lengths in mm, attenuation mu in 1/mm; volumes are [z, y, x] arrays
/// centred at the origin; projections are [views, rows, cols]. The circular scan turns
/// about z; at angle 0 the source is on -x and the detector on +x.
#[derive(Parser, Debug)]
#[command(name = "xray", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Render one radiograph (DRR) to a PNG image or a float32 .npy array.
    ///
    /// With no options it renders the built-in head of materials (128^3 voxels of 2 mm)
    /// from the side, through an 80 kV tungsten tube with 2.5 mm Al onto a CsI flat
    /// panel (4 mAs), with the fp256 scanner (SOD 1000 mm, SDD 1500 mm, 256 x 256
    /// pixels of 1.6 mm), into drr.png: the flat-field-corrected radiograph
    /// -ln(signal / flat field).
    ///
    /// Examples:
    ///   xray drr --out drr.png
    ///   xray drr --kvp 120 --filter 2.5mm-al,0.1mm-cu --mas 2 --noise-seed 1 --out head.png
    ///   xray drr --volume ct.nii.gz --hu --kvp 70 --angle 90 --out ct70.png
    ///   xray drr --volume ct.nii.gz --hu --kvp 120 --scatter --out ct-scatter.png
    ///   xray drr --phantom shepp-logan --out shepp.png   # line integrals of mu
    ///   xray drr --volume ct.npy --spacing 0.7,0.7,2.5 --angle 90 --i0 1e5 --out ct.png
    ///   xray drr --phantom body --method joseph --bits 16 --out body.png
    #[command(verbatim_doc_comment)]
    Drr(render::DrrArgs),
    /// Project many views of a circular scan into a [views, rows, cols] .npy stack.
    ///
    /// Example:
    ///   xray project --views 360 --out sinogram.npy
    #[command(verbatim_doc_comment)]
    Project(render::ProjectArgs),
    /// Backproject a [views, rows, cols] .npy stack into a [z, y, x] volume: the exact
    /// transpose of `project` with the same scanner options (what reconstruction and
    /// gradient-based registration need).
    ///
    /// Example:
    ///   xray project --views 90 --out p.npy && xray backproject --projections p.npy --out bp.npy
    #[command(verbatim_doc_comment)]
    Backproject(backproject::BackprojectArgs),
    /// Reconstruct a [z, y, x] volume of attenuation (1/mm) from a [views, rows, cols]
    /// .npy stack of line integrals: FDK (filtered backprojection of a circular scan,
    /// full turn or short scan) or the iterative SIRT and CGLS (any geometry).
    ///
    /// Examples:
    ///   xray project --views 360 --out p.npy && xray recon --projections p.npy --out fdk.npy
    ///   xray recon --projections p.npy --algorithm cgls --iterations 20 --out cgls.npy
    ///   xray recon --projections short.npy --arc 200 --filter hann --out fdk.npy
    #[command(verbatim_doc_comment)]
    Recon(recon::ReconArgs),
    /// Print an X-ray tube's spectrum: photons per keV, mean energy, half-value layer.
    ///
    /// Example:
    ///   xray spectrum --kvp 120 --filter 2.5mm-al,0.1mm-cu --out spectrum.csv
    #[command(verbatim_doc_comment)]
    Spectrum(physics::SpectrumArgs),
    /// Time the standard benchmark cases (BENCHMARKS.md) on this machine.
    ///
    /// The cases use the anchors' phantoms and geometry, so figures compare one to one
    /// with ASTRA's and Numba's. On the CPU, 8 views are used unless --views says
    /// otherwise (rays per second is what compares).
    ///
    /// Example:
    ///   xray bench --case fp256 --backend cpu --json
    #[command(verbatim_doc_comment)]
    Bench(bench::BenchArgs),
    /// Show which backends are usable here, and why not.
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Drr(args) => render::drr(args),
        Command::Spectrum(args) => physics::spectrum(args),
        Command::Project(args) => render::project(args),
        Command::Backproject(args) => backproject::run(args),
        Command::Recon(args) => recon::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Info => info::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", error_report(&error));
            ExitCode::FAILURE
        }
    }
}

/// `error` and its chain of causes, laid out as anyhow's `{:?}` does but never with a
/// stack backtrace: a user's mistake is not a bug, whatever `RUST_BACKTRACE` or
/// `RUST_LIB_BACKTRACE` say (a panic still prints one).
fn error_report(error: &anyhow::Error) -> String {
    let mut report = format!("Error: {error}");
    let causes: Vec<String> = error.chain().skip(1).map(ToString::to_string).collect();
    if let [cause] = causes.as_slice() {
        let _ = write!(
            report,
            "\n\nCaused by:\n    {}",
            cause.replace('\n', "\n    ")
        );
    } else if !causes.is_empty() {
        report.push_str("\n\nCaused by:");
        for (i, cause) in causes.iter().enumerate() {
            let _ = write!(report, "\n    {i}: {}", cause.replace('\n', "\n       "));
        }
    }
    report
}
