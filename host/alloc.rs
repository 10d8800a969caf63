//! Fallible allocation of large buffers: sizes come from user input (geometry, files),
//! so a request the machine cannot meet becomes [`Error::Allocation`], not an abort.

use crate::error::{Error, Result};

/// A vector of `len` zeros, or an error naming `what` if it cannot be allocated.
pub(crate) fn zeroed(len: usize, what: &'static str) -> Result<Vec<f32>> {
    let bytes = len as u128 * std::mem::size_of::<f32>() as u128;
    if bytes > isize::MAX as u128 {
        return Err(Error::Allocation { what, bytes });
    }
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(len)
        .map_err(|_| Error::Allocation { what, bytes })?;
    buffer.resize(len, 0.0);
    Ok(buffer)
}
