//! Small validation helpers shared by the geometry types.

use crate::error::GeometryError;

/// `value` must be finite.
pub(crate) fn finite(field: impl FnOnce() -> String, value: f64) -> Result<(), GeometryError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(GeometryError::NotFinite {
            field: field(),
            value,
        })
    }
}

/// Every component of `v` must be finite.
pub(crate) fn finite3(field: &str, v: [f64; 3]) -> Result<(), GeometryError> {
    for (i, &x) in v.iter().enumerate() {
        finite(|| format!("{field}[{i}]"), x)?;
    }
    Ok(())
}

/// `value` must be finite and positive.
pub(crate) fn positive(field: impl Fn() -> String, value: f64) -> Result<(), GeometryError> {
    finite(&field, value)?;
    if value > 0.0 {
        Ok(())
    } else {
        Err(GeometryError::NotPositive {
            field: field(),
            value,
        })
    }
}

/// A count must be in `1..=MAX_AXIS_LEN`.
pub(crate) fn count(field: impl Fn() -> String, value: usize) -> Result<(), GeometryError> {
    if value == 0 {
        return Err(GeometryError::Empty { field: field() });
    }
    if value > super::MAX_AXIS_LEN {
        return Err(GeometryError::TooLarge {
            field: field(),
            value: value as u128,
            limit: super::MAX_AXIS_LEN as u128,
        });
    }
    Ok(())
}

/// The product of three counts, or [`GeometryError::TooLarge`] naming `field` if it
/// overflows `usize`.
pub(crate) fn product3(field: &str, [a, b, c]: [usize; 3]) -> Result<usize, GeometryError> {
    a.checked_mul(b)
        .and_then(|p| p.checked_mul(c))
        .ok_or_else(|| GeometryError::TooLarge {
            field: field.into(),
            // Saturating: three axes near 2^63 overflow even u128.
            value: (a as u128)
                .saturating_mul(b as u128)
                .saturating_mul(c as u128),
            limit: usize::MAX as u128,
        })
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn scale(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}
