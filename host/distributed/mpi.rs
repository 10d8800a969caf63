//! [`MpiCommunicator`]: [`Communicator`] over `MPI_COMM_WORLD`, through rsmpi (feature
//! `mpi`).

use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Destination, Equivalence, Source};

use super::Communicator;
use crate::error::{Error, Result};

/// Elements per message or reduction: MPI counts are 32-bit, and a chunk bounds the
/// copy an in-place reduction needs.
const CHUNK: usize = 1 << 24;

/// All the processes `mpirun` started (`MPI_COMM_WORLD`). MPI is initialised when this
/// is made and finalised when it is dropped; MPI is only ever called from the thread
/// that made it (rayon's threads compute, they do not communicate).
pub struct MpiCommunicator {
    world: SimpleCommunicator,
    // Dropped last: MPI_Finalize.
    _universe: Universe,
}

impl std::fmt::Debug for MpiCommunicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiCommunicator")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

impl MpiCommunicator {
    /// Initialises MPI (funnelled: only this thread calls it) and returns the world.
    ///
    /// # Errors
    /// [`Error::Communication`] if MPI was initialised already in this process, or
    /// cannot give the funnelled thread level.
    pub fn init() -> Result<MpiCommunicator> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| Error::Communication {
                reason: "MPI is initialised already in this process".into(),
            })?;
        if threading == Threading::Single {
            return Err(Error::Communication {
                reason: format!("this MPI gives thread level {threading:?}, not Funneled"),
            });
        }
        Ok(MpiCommunicator {
            world: universe.world(),
            _universe: universe,
        })
    }
}

impl MpiCommunicator {
    /// Replaces `values` by their sum over the ranks, chunk by chunk (each chunk copied
    /// once as the send buffer).
    fn sum_in_place<T: Equivalence + Copy>(&self, values: &mut [T]) {
        for chunk in values.chunks_mut(CHUNK) {
            let send = chunk.to_vec();
            self.world
                .all_reduce_into(&send[..], chunk, SystemOperation::sum());
        }
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum_i64(&self, values: &mut [i64]) -> Result<()> {
        self.sum_in_place(values);
        Ok(())
    }

    fn sum_f64(&self, values: &mut [f64]) -> Result<()> {
        self.sum_in_place(values);
        Ok(())
    }

    fn max_f64(&self, value: f64) -> Result<f64> {
        let mut largest = 0.0f64;
        self.world
            .all_reduce_into(&value, &mut largest, SystemOperation::max());
        Ok(largest)
    }

    fn gather_f32(&self, part: &[f32]) -> Result<Option<Vec<f32>>> {
        let mut lengths = vec![0u64; self.size()];
        self.world
            .all_gather_into(&(part.len() as u64), &mut lengths[..]);
        let root = self.world.process_at_rank(0);
        if !self.is_root() {
            for chunk in part.chunks(CHUNK) {
                root.send(chunk);
            }
            return Ok(None);
        }
        let total = lengths
            .iter()
            .try_fold(0usize, |sum, &n| sum.checked_add(usize::try_from(n).ok()?))
            .ok_or_else(|| Error::Communication {
                reason: format!("the ranks' parts add up to more than memory: {lengths:?}"),
            })?;
        let mut whole = crate::alloc::zeroed(total, "the gathered result")?;
        let (mine, mut rest) = whole.split_at_mut(part.len());
        mine.copy_from_slice(part);
        for (rank, &length) in lengths.iter().enumerate().skip(1) {
            let (theirs, after) = rest.split_at_mut(length as usize);
            let sender = self.world.process_at_rank(rank as i32);
            for chunk in theirs.chunks_mut(CHUNK) {
                sender.receive_into(chunk);
            }
            rest = after;
        }
        Ok(Some(whole))
    }
}
