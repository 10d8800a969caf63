//! Fallible allocation of large buffers: sizes come from user input (geometry, files),
//! so a request the machine cannot meet becomes [`Error::Allocation`], not an abort.

use crate::error::{Error, Result};

/// A vector of `len` zeros, or an error naming `what` if it cannot be allocated.
pub(crate) fn zeroed(len: usize, what: &'static str) -> Result<Vec<f32>> {
    let mut buffer = reserved(len, what)?;
    buffer.resize(len, 0.0);
    Ok(buffer)
}

/// An empty vector with room for `len` items, or an error naming `what` if it cannot be
/// allocated (for records whose count comes from user input, such as views).
pub(crate) fn reserved<T>(len: usize, what: &'static str) -> Result<Vec<T>> {
    let bytes = len as u128 * std::mem::size_of::<T>() as u128;
    if bytes > isize::MAX as u128 {
        return Err(Error::Allocation { what, bytes });
    }
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(len)
        .map_err(|_| Error::Allocation { what, bytes })?;
    Ok(buffer)
}

/// A zeroed `[a, b, c]` array, or an error naming `what` if it cannot be allocated.
pub(crate) fn zeroed_array(shape: [usize; 3], what: &'static str) -> Result<ndarray::Array3<f32>> {
    let len = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or(Error::Allocation {
            what,
            bytes: shape.iter().map(|&d| d as u128).product::<u128>() * 4,
        })?;
    Ok(ndarray::Array3::from_shape_vec(shape, zeroed(len, what)?)
        .expect("the buffer has the shape's element count"))
}
