//! Reconstruction: volumes from projections.
//!
//! * [`fdk`]: filtered backprojection of circular scans (FDK for cone beams, FBP for
//!   parallel beams), with a choice of ramp [`Filter`], full or short scans.
//! * [`sirt`] and [`cgls`]: iterative least squares with the projector pair
//!   ([`Projector::forward`](crate::Projector::forward) and its exact transpose), for
//!   any geometry, with non-negativity and a stopping rule.

pub(crate) mod fdk;
mod filter;
pub(crate) mod iterative;
mod weights;

pub use fdk::fdk;
pub use filter::Filter;
pub use iterative::{cgls, sirt, IterativeOptions, Progress, Reconstruction, Stopped};
