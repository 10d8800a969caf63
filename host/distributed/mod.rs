//! Work split over processes (MPI ranks), with results that do not depend on how many.
//!
//! A [`Communicator`] is the group of processes; [`SingleProcess`] is the group of one,
//! and with feature `mpi`, `MpiCommunicator` is `MPI_COMM_WORLD` (rsmpi). Every rank
//! holds the whole volume; the views are dealt to the ranks by [`Partition`]:
//!
//! ```text
//!  views   |0 ..  7|8 .. 15|16 .. 23|24 .. 31| ... |   units: fixed blocks of views,
//!  units   |   0   |   1   |   2    |   3    | ... |   from the problem alone
//!  ranks   |    rank 0     |      rank 1     | ... |   contiguous runs of units
//! ```
//!
//! * [`project`]: each rank projects its views; the root gathers them in view order.
//!   Each ray is computed alone, so the stack is the single process's, bit for bit.
//! * [`backward`]: each rank backprojects its units one by one; each unit's f32 volume
//!   is added into a fixed-point (i64) accumulator, the accumulators are summed over the
//!   ranks (integers: exact in any order), and the sum is rounded back to f32 once.
//!   The result is the same bits for any number of ranks (see [`FixedPointSum`] for the
//!   scale and the bound).
//! * [`fdk`]: FDK is voxel-driven, so each rank filters the views and reconstructs its
//!   own slab of slices; the root gathers the slabs. Bit for bit the single process's.
//! * [`sirt`] and [`cgls`]: the same loops as [`crate::recon`]'s, with the volume and
//!   its work vectors replicated on every rank, the projections and theirs split by
//!   views; `A^T` is [`backward`], and the projections' norms add one f64 per unit, in
//!   unit order. Every rank takes the same steps and ends with the same volume.
//!
//! "The same for any number of ranks" holds where each rank's own computation is
//! deterministic: on the CPU, and for forward projections and FDK on GPUs; the GPU's
//! ray-driven backprojection adds with atomics, so its last bits vary between runs.
//!
//! Every rank must call the same functions with the same arguments but its own part of
//! the projections: the functions validate the shared arguments identically on every
//! rank, and agree on failures of a rank's own part (one collective), so that an error
//! on one rank is an error on all rather than a hang.

mod fixed_point;
#[cfg(feature = "mpi")]
mod mpi;
mod operators;
mod partition;
#[cfg(test)]
mod tests;

pub use fixed_point::FixedPointSum;
#[cfg(feature = "mpi")]
pub use mpi::MpiCommunicator;
pub use operators::{backward, cgls, fdk, project, sirt};
pub(crate) use operators::{backward_checked, projections_norm2};
pub use partition::{Partition, MAX_UNITS, MIN_UNIT_VIEWS};

use crate::error::{Error, Result};

/// A group of processes that compute one result together (MPI's communicator), with the
/// few collectives this crate needs. Every rank calls each collective in the same
/// order.
pub trait Communicator {
    /// This process's number, `0..size()`; rank 0 is the root, which writes outputs.
    fn rank(&self) -> usize;
    /// How many processes there are.
    fn size(&self) -> usize;
    /// Replaces `values` on every rank by their sum over the ranks (integers: exact, so
    /// the order of the additions does not matter). Every rank passes the same length.
    ///
    /// # Errors
    /// [`Error::Communication`] if the processes cannot exchange the values.
    fn sum_i64(&self, values: &mut [i64]) -> Result<()>;
    /// Replaces `values` on every rank by their sum over the ranks. Exact, and so the
    /// same on every rank and for any number of ranks, when each element is non-zero on
    /// at most one rank (how [`Partition`]'s per-unit values are combined).
    ///
    /// # Errors
    /// [`Error::Communication`] if the processes cannot exchange the values.
    fn sum_f64(&self, values: &mut [f64]) -> Result<()>;
    /// The largest of every rank's `value`.
    ///
    /// # Errors
    /// [`Error::Communication`] if the processes cannot exchange the values.
    fn max_f64(&self, value: f64) -> Result<f64>;
    /// Every rank's `part`, concatenated in rank order, on the root; `None` on the
    /// other ranks.
    ///
    /// # Errors
    /// [`Error::Allocation`] if the root cannot hold the whole, [`Error::Communication`]
    /// if the processes cannot exchange the values.
    fn gather_f32(&self, part: &[f32]) -> Result<Option<Vec<f32>>>;

    /// Whether this rank is the root (rank 0).
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
}

/// The most bytes of a failed rank's error message that [`agree`] sends to the others.
const MAX_MESSAGE_BYTES: usize = 2048;

/// Agrees on `outcome` across the ranks of `comm` (two collectives when a rank failed,
/// one otherwise): `Ok` on every rank when it is `Ok` on every rank; else this rank's
/// own error, or [`Error::Communication`] naming the first rank that failed and
/// carrying its message (its first 2048 bytes), so that the root says
/// what went wrong even when the failed rank's own output is lost (mpirun may stop it
/// before it prints). Called wherever a rank's own data could fail it before a
/// collective that the others would otherwise wait in forever.
///
/// # Errors
/// As described; also [`Error::Communication`] if the processes cannot agree.
pub fn agree<T>(comm: &(impl Communicator + ?Sized), outcome: Result<T>) -> Result<T> {
    let mut failed = vec![0i64; comm.size()];
    if outcome.is_err() {
        failed[comm.rank()] = 1;
    }
    comm.sum_i64(&mut failed)?;
    let Some(first) = failed.iter().position(|&f| f != 0) else {
        return outcome;
    };
    // Only the first failed rank writes its message: the sum is its bytes, exactly.
    let mut message = vec![0i64; MAX_MESSAGE_BYTES];
    if let (true, Err(error)) = (comm.rank() == first, &outcome) {
        let text = error.to_string();
        for (word, byte) in message.iter_mut().zip(text.bytes()) {
            *word = i64::from(byte);
        }
    }
    comm.sum_i64(&mut message)?;
    match outcome {
        Err(error) => Err(error),
        Ok(_) => Err(Error::Communication {
            reason: format!("rank {first} failed: {}", decode_message(&message)),
        }),
    }
}

/// The text [`agree`] sent as one byte per word; a multi-byte character cut at the
/// end becomes a replacement character.
fn decode_message(words: &[i64]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .map(|&word| u8::try_from(word).unwrap_or(b'?'))
        .take_while(|&byte| byte != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The group of this process alone: every collective is the identity. The distributed
/// functions on it give the same bits as on any number of MPI ranks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn sum_i64(&self, _values: &mut [i64]) -> Result<()> {
        Ok(())
    }

    fn sum_f64(&self, _values: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn max_f64(&self, value: f64) -> Result<f64> {
        Ok(value)
    }

    fn gather_f32(&self, part: &[f32]) -> Result<Option<Vec<f32>>> {
        let mut whole = crate::alloc::reserved(part.len(), "the gathered result")?;
        whole.extend_from_slice(part);
        Ok(Some(whole))
    }
}
