//! The standard benchmark cases of BENCHMARKS.md, in the numbers of
//! `anchors/geometry.py`, shared by `xray bench` and the Criterion benches so that every
//! figure the project reports compares one to one with the anchors (ASTRA, Numba).

use std::f64::consts::FRAC_PI_2;

use ndarray::Array3;

use crate::geometry::{CircularScan, ProjectionGeometry, VolumeGeometry};
use crate::phantom::Phantom;

/// One standard case: a volume with its phantom and a circular scan.
#[derive(Clone, Debug, PartialEq)]
pub struct StandardCase {
    /// Name as in BENCHMARKS.md (`fp256`, `fp512`, `drr1`, `drr64`).
    pub name: &'static str,
    /// The volume grid, centred at the origin.
    pub volume: VolumeGeometry,
    /// The phantom to voxelise on it (sampled at voxel centres, as the anchors do).
    pub phantom: Phantom,
    /// The scan, with the case's number of views.
    pub scan: CircularScan,
    /// Line integral of the centre pixel (`[0, rows/2, cols/2]`) of view 0 that the
    /// anchors measured with Siddon, to 3 decimals (BENCHMARKS.md).
    pub check_value: f32,
}

impl StandardCase {
    /// Every standard case name.
    pub const NAMES: [&'static str; 4] = ["fp256", "fp512", "drr1", "drr64"];

    /// The case called `name`, or `None`.
    pub fn named(name: &str) -> Option<StandardCase> {
        match name {
            "fp256" => Some(cube("fp256", 256, 1.0, 256, 1.6, 360, 6.040)),
            "fp512" => Some(cube("fp512", 512, 0.5, 512, 0.8, 360, 6.040)),
            "drr1" => Some(drr("drr1", 1)),
            "drr64" => Some(drr("drr64", 64)),
            _ => None,
        }
    }

    /// The voxelised phantom `[nz, ny, nx]` and the projection geometry: what a run of
    /// the case projects.
    ///
    /// # Errors
    /// [`crate::Error::Allocation`] if the volume does not fit in memory,
    /// [`crate::Error::Geometry`] if the scan was changed into an invalid one.
    pub fn inputs(&self) -> crate::Result<(Array3<f32>, ProjectionGeometry)> {
        Ok((
            self.phantom.voxelize(&self.volume, 1)?,
            self.scan.geometry()?,
        ))
    }

    /// The same case with `views` views over the same full turn (CPU runs use fewer).
    pub fn with_views(mut self, views: usize) -> StandardCase {
        self.scan.views = views;
        self
    }
}

fn cube(
    name: &'static str,
    n: usize,
    voxel: f64,
    detector: usize,
    pixel: f64,
    views: usize,
    check_value: f32,
) -> StandardCase {
    StandardCase {
        name,
        volume: VolumeGeometry::centered([n; 3], [voxel; 3]),
        phantom: Phantom::nested_ellipsoids(voxel * (n as f64 - 1.0) / 2.0),
        scan: CircularScan::new(1000.0, 1500.0, views, [detector; 2], pixel),
        check_value,
    }
}

fn drr(name: &'static str, views: usize) -> StandardCase {
    let volume = VolumeGeometry::centered([133, 512, 512], [0.703125, 0.703125, 2.5]);
    let z_extent = 133.0 * 2.5 / 2.0;
    StandardCase {
        name,
        volume,
        phantom: Phantom::body([-z_extent, z_extent]),
        scan: CircularScan::new(850.0, 1020.0, views, [512, 512], 0.8).starting_at(FRAC_PI_2),
        check_value: 5.284,
    }
}
