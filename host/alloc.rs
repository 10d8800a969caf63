//! Fallible allocation of large buffers: sizes come from user input (geometry, files),
//! so a request the machine cannot meet becomes [`Error::Allocation`], not an abort.

use crate::error::{Error, Result};

/// A vector of `len` zeros, or an error naming `what` if it cannot be allocated.
///
/// The memory comes zeroed from the allocator (`calloc`): for large buffers the system
/// maps zero pages lazily, so the pages a caller never writes cost neither time nor
/// memory (a backprojection's partial volumes touch only the slabs their rays cross).
pub(crate) fn zeroed(len: usize, what: &'static str) -> Result<Vec<f32>> {
    let bytes = len as u128 * std::mem::size_of::<f32>() as u128;
    let layout =
        std::alloc::Layout::array::<f32>(len).map_err(|_| Error::Allocation { what, bytes })?;
    if layout.size() == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the layout has a non-zero size.
    let pointer = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<f32>();
    if pointer.is_null() {
        return Err(Error::Allocation { what, bytes });
    }
    advise_huge_pages(pointer.cast(), layout.size());
    // SAFETY: `pointer` was allocated by the global allocator with the layout of `len`
    // `f32`s (the layout `Vec<f32>` uses for capacity `len`), and all-zero bytes are
    // `len` valid `0.0`s.
    Ok(unsafe { Vec::from_raw_parts(pointer, len, len) })
}

/// Buffers at least this large (bytes) ask the system for huge pages.
const HUGE_PAGES_FROM: usize = 8 << 20;

/// Asks Linux to back the whole 4 KiB pages of `bytes` at `start` with transparent huge
/// pages where it allows (`madvise(MADV_HUGEPAGE)`): a buffer first touched by scattered
/// writes, such as a partial volume of a backprojection, then takes one page fault per
/// 2 MiB instead of 512. Only a hint: nothing changes where the system refuses it.
fn advise_huge_pages(start: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    if bytes >= HUGE_PAGES_FROM {
        const PAGE: usize = 4096;
        let first = (start as usize).next_multiple_of(PAGE);
        let end = (start as usize + bytes) / PAGE * PAGE;
        if end > first {
            // SAFETY: the range lies inside one live allocation of ours; the advice
            // changes how the system backs it, not its contents.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, bytes);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_gives_zeros_and_refuses_impossible_sizes() {
        for len in [0usize, 1, 1000, 3 << 20] {
            let buffer = zeroed(len, "test buffer").unwrap();
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|v| v.to_bits() == 0), "{len} zeros");
        }
        // A buffer that can be grown like any other vector.
        let mut buffer = zeroed(3, "test buffer").unwrap();
        buffer.push(1.0);
        assert_eq!(buffer, [0.0, 0.0, 0.0, 1.0]);
        for len in [usize::MAX / 2, usize::MAX] {
            assert!(matches!(
                zeroed(len, "test buffer"),
                Err(Error::Allocation {
                    what: "test buffer",
                    ..
                })
            ));
        }
    }
}
