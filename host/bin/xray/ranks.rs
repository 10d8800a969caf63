//! Several processes under `mpirun`: whether a launcher started this one, the MPI
//! world (feature `mpi`), and reading a rank's own views of a projection stack.

use std::path::Path;

#[cfg(not(feature = "mpi"))]
use anyhow::bail;
use anyhow::{Context, Result};
use ndarray::Array3;
use xray_projector::distributed::{Communicator, Partition};
use xray_projector::io::{ReadOptions, SlabSource};

/// Environment variables an MPI launcher sets to the number of processes: Open MPI's
/// and the PMI ones of MPICH, Intel MPI and Slurm.
const SIZE_VARIABLES: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// How many processes the MPI launcher that started this one started, if one did.
fn launched_size() -> Option<usize> {
    SIZE_VARIABLES
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse().ok())
}

/// The MPI world when an MPI launcher started this process (`mpirun -n 1` included, so
/// that every rank count takes the same path and gives the same bits); `None` when it
/// runs alone.
///
/// # Errors
/// Started as one of several processes by a build without feature `mpi` (each would
/// compute and write the whole output), or MPI failing to initialise.
pub fn communicator() -> Result<Option<Box<dyn Communicator>>> {
    let Some(size) = launched_size() else {
        return Ok(None);
    };
    #[cfg(feature = "mpi")]
    {
        let _ = size;
        let world =
            xray_projector::distributed::MpiCommunicator::init().context("initialising MPI")?;
        Ok(Some(Box::new(world)))
    }
    #[cfg(not(feature = "mpi"))]
    {
        if size > 1 {
            bail!(
                "started by an MPI launcher as one of {size} processes, but this xray was \
                 built without the `mpi` feature, so each would compute and write the whole \
                 output: rebuild with `cargo build --release --features mpi`, or run one"
            );
        }
        Ok(None)
    }
}

/// The views `[views, rows, cols]` of the projection stack `path` (`.npy`) that are
/// `comm`'s rank's ([`Partition::local_views`]), read alone from the mapped file; and
/// the stack's view count.
///
/// # Errors
/// The file cannot be opened or is not a 3D `.npy` stack.
pub fn read_local_views(path: &Path, comm: &dyn Communicator) -> Result<(Array3<f32>, usize)> {
    // A .npy records no spacing and the reader needs one: the stack's is irrelevant.
    let options = ReadOptions {
        spacing: Some([1.0; 3]),
        ..ReadOptions::default()
    };
    let source = SlabSource::open(path, &options)
        .with_context(|| format!("opening {} for reading by views", path.display()))?;
    let [views, rows, cols] = source.shape();
    let local = Partition::of(views, comm).local_views();
    let mut values = vec![0.0f32; local.len() * rows * cols];
    if !local.is_empty() {
        source
            .read_slices(local.clone(), &mut values)
            .with_context(|| format!("reading views {local:?} of {}", path.display()))?;
    }
    let part = Array3::from_shape_vec([local.len(), rows, cols], values)
        .expect("the buffer holds the views read");
    Ok((part, views))
}

/// " on N ranks" for the messages of a distributed run, else nothing.
pub fn on_ranks(comm: Option<&dyn Communicator>) -> String {
    match comm {
        Some(comm) if comm.size() == 1 => " on 1 MPI rank".to_string(),
        Some(comm) => format!(" on {} MPI ranks", comm.size()),
        None => String::new(),
    }
}
