//! [`GeometryFile`]: a projection geometry in TOML, either as a circular scan or as
//! explicit per-view vectors.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CircularScan, DrrPose, ProjectionGeometry};
use crate::error::{Error, Result};

/// The largest geometry file read (a vector file of 100k views is about 20 MB).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// A projection geometry as written in a TOML file. Exactly one table:
///
/// ```toml
/// # A circular cone-beam scan (angles in radians).
/// [circular]
/// beam = "cone"          # or "parallel"; default "cone"
/// sod = 1000.0
/// sdd = 1500.0
/// views = 360
/// detector = [256, 256]  # rows, cols
/// pixel = [1.6, 1.6]     # mm, along u and v
/// start_angle = 0.0      # optional
/// ```
///
/// or `[pose]` with the fields of [`DrrPose`], or `[vectors]` with the fields of
/// [`ProjectionGeometry`] (`beam`, `rows`, `cols`, and `[[vectors.views]]` tables with
/// `source`, `detector`, `u`, `v`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeometryFile {
    /// A circular scan about z.
    Circular(CircularScan),
    /// One radiograph from a pose.
    Pose(DrrPose),
    /// Explicit per-view vectors.
    Vectors(ProjectionGeometry),
}

impl GeometryFile {
    /// Parses TOML text.
    ///
    /// # Errors
    /// [`Error::Format`] (with `origin` as the path) for invalid TOML or fields.
    pub fn parse(text: &str, origin: &Path) -> Result<GeometryFile> {
        toml::from_str(text).map_err(|e| Error::Format {
            path: origin.to_path_buf(),
            reason: format!("invalid geometry file: {e}"),
        })
    }

    /// Reads and parses a TOML file (at most 64 MiB).
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, [`Error::Format`] if it is too large or invalid.
    pub fn read(path: &Path) -> Result<GeometryFile> {
        let io = |source| Error::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(Error::Format {
                path: path.to_path_buf(),
                reason: format!(
                    "geometry file is {size} bytes, more than the {MAX_FILE_BYTES} allowed"
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        GeometryFile::parse(&text, path)
    }

    /// The validated projection geometry.
    ///
    /// # Errors
    /// A [`crate::GeometryError`] as for the corresponding builder.
    pub fn geometry(&self) -> Result<ProjectionGeometry> {
        match self {
            GeometryFile::Circular(scan) => scan.geometry(),
            GeometryFile::Pose(pose) => pose.geometry(),
            GeometryFile::Vectors(geometry) => {
                geometry.validate()?;
                Ok(geometry.clone())
            }
        }
    }
}
