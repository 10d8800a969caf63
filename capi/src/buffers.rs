//! The caller's buffers: raw pointers and lengths checked, then turned into slices (for
//! inputs) or written element by element (for outputs, which may be uninitialised).

use ndarray::Array3;

use crate::error::{Failure, Outcome};

/// Checks that the caller's length `given` (the argument `name`) is the `expected` one
/// that the geometry implies (`what` says which count that is).
pub(crate) fn check_len(name: &str, given: usize, expected: usize, what: &str) -> Outcome {
    if given == expected {
        Ok(())
    } else {
        Err(Failure::invalid(format!(
            "{name} = {given}, but {what} is {expected}"
        )))
    }
}

/// Checks what `slice::from_raw_parts` needs of `ptr` for `len` elements that can be
/// checked: not NULL, aligned for `T`, and at most `isize::MAX` bytes.
fn check_pointer<T>(name: &str, ptr: *const T, len: usize) -> Outcome {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{name} is NULL")));
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!(
            "{name} ({ptr:p}) is not aligned to {} bytes",
            align_of::<T>()
        )));
    }
    let fits = len
        .checked_mul(size_of::<T>())
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if !fits {
        return Err(Failure::invalid(format!(
            "{name}: {len} elements exceed the largest possible buffer"
        )));
    }
    Ok(())
}

/// Refuses overlapping buffers: an output must not alias an input.
pub(crate) fn check_disjoint<A, B>(
    (a_name, a, a_len): (&str, *const A, usize),
    (b_name, b, b_len): (&str, *const B, usize),
) -> Outcome {
    let a_start = a.addr();
    let a_end = a_start.saturating_add(a_len.saturating_mul(size_of::<A>()));
    let b_start = b.addr();
    let b_end = b_start.saturating_add(b_len.saturating_mul(size_of::<B>()));
    if a_start < b_end && b_start < a_end {
        Err(Failure::invalid(format!("{a_name} and {b_name} overlap")))
    } else {
        Ok(())
    }
}

/// The caller's input buffer `name` of `len` elements as a slice, after the checks of
/// [`check_pointer`].
///
/// # Safety
/// Unless it is NULL (refused), `ptr` must point to `len` initialised `T`s that nothing
/// writes to while `'a` lasts.
pub(crate) unsafe fn input<'a, T>(name: &str, ptr: *const T, len: usize) -> Outcome<&'a [T]> {
    check_pointer(name, ptr, len)?;
    // SAFETY: `ptr` is non-null and aligned, and `len` elements are at most isize::MAX
    // bytes (checked above); the caller guarantees that they are readable, initialised
    // and not written to during 'a (this function's contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads one `T` (a `#[repr(C)]` struct of plain numbers) from the caller's pointer.
///
/// # Safety
/// Unless it is NULL (refused), `ptr` must point to an initialised `T`.
pub(crate) unsafe fn read<T: Copy>(name: &str, ptr: *const T) -> Outcome<T> {
    check_pointer(name, ptr, 1)?;
    // SAFETY: non-null and aligned (checked above); the caller guarantees that it
    // points to an initialised `T`. `T` is one of this crate's structs of integers and
    // floats, for which every bit pattern is valid.
    Ok(unsafe { ptr.read() })
}

/// Checks the caller's output buffer `name` of `len` elements before any work.
pub(crate) fn check_output<T>(name: &str, ptr: *mut T, len: usize) -> Outcome {
    check_pointer(name, ptr.cast_const(), len)
}

/// Copies `values` into the caller's output buffer, which [`check_output`] accepted for
/// `values.len()` elements.
///
/// # Safety
/// `ptr` must be valid for writes of `values.len()` `T`s (it need not be initialised),
/// and must not overlap `values`.
pub(crate) unsafe fn write<T: Copy>(ptr: *mut T, values: &[T]) {
    // SAFETY: the caller guarantees `values.len()` writable elements at `ptr`, aligned
    // (checked by `check_output`), not overlapping `values`.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), ptr, values.len()) };
}

/// Copies `array` (in its logical `[a, b, c]` order, C order) into the caller's output
/// buffer of `len` elements, which [`check_output`] accepted.
///
/// # Safety
/// `ptr` must be valid for writes of `len` `f32`s (it need not be initialised).
pub(crate) unsafe fn write_array(
    name: &str,
    ptr: *mut f32,
    len: usize,
    array: &Array3<f32>,
) -> Outcome {
    if array.len() != len {
        return Err(Failure::other(format!(
            "internal error: {} values computed for {name}, which holds {len}",
            array.len()
        )));
    }
    match array.as_slice() {
        // SAFETY: `len` writable elements at `ptr` (this function's contract); `array`
        // is the library's own new allocation, so it does not overlap them.
        Some(values) => unsafe { write(ptr, values) },
        None => {
            for (i, &value) in array.iter().enumerate() {
                // SAFETY: `i < array.len() == len`, and `len` elements at `ptr` are
                // writable (this function's contract).
                unsafe { ptr.add(i).write(value) };
            }
        }
    }
    Ok(())
}
