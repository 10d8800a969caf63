//! The distributed operations on 1, 2, 3 and 5 ranks, simulated by threads of this
//! process ([`ThreadGroup`], a [`Communicator`] over shared memory): the results must
//! be the same bits for every rank count, and equal the single process's (projections,
//! FDK) or lie within the bound of a reordered f32 sum (backprojections, SIRT, CGLS).
//! `tests/mpi.rs` runs the same through `mpirun` with the `mpi` feature.

use std::ops::ControlFlow;
use std::sync::{Arc, Barrier, Mutex};

use ndarray::{s, Array3};

use super::{Communicator, Partition};
use crate::error::Result;
use crate::geometry::{CircularScan, ProjectionGeometry, VolumeGeometry};
use crate::phantom::Phantom;
use crate::projector::{Method, Projector};
use crate::recon::{Filter, IterativeOptions};
use crate::Backend;

/// One rank of a group of threads: each collective puts this rank's values in its slot,
/// waits for all, combines every slot in rank order, and waits again before the slots
/// are reused.
struct ThreadGroup {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

struct Shared {
    barrier: Barrier,
    integers: Mutex<Vec<Vec<i64>>>,
    floats: Mutex<Vec<Vec<f64>>>,
    singles: Mutex<Vec<Vec<f32>>>,
}

impl ThreadGroup {
    /// Runs `work` on `size` ranks, one thread each; returns each rank's result.
    fn run<T: Send>(size: usize, work: impl Fn(&ThreadGroup) -> T + Sync) -> Vec<T> {
        let shared = Arc::new(Shared {
            barrier: Barrier::new(size),
            integers: Mutex::new(vec![Vec::new(); size]),
            floats: Mutex::new(vec![Vec::new(); size]),
            singles: Mutex::new(vec![Vec::new(); size]),
        });
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let group = ThreadGroup {
                        rank,
                        size,
                        shared: shared.clone(),
                    };
                    let work = &work;
                    scope.spawn(move || work(&group))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Every rank's `mine`, in rank order.
    fn exchange<T: Clone>(&self, slots: &Mutex<Vec<Vec<T>>>, mine: &[T]) -> Vec<Vec<T>> {
        slots.lock().unwrap()[self.rank] = mine.to_vec();
        self.shared.barrier.wait();
        let all = slots.lock().unwrap().clone();
        self.shared.barrier.wait();
        all
    }
}

impl Communicator for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum_i64(&self, values: &mut [i64]) -> Result<()> {
        let all = self.exchange(&self.shared.integers, values);
        for (i, v) in values.iter_mut().enumerate() {
            *v = all.iter().map(|rank| rank[i]).sum();
        }
        Ok(())
    }

    fn sum_f64(&self, values: &mut [f64]) -> Result<()> {
        let all = self.exchange(&self.shared.floats, values);
        for (i, v) in values.iter_mut().enumerate() {
            *v = all.iter().map(|rank| rank[i]).sum();
        }
        Ok(())
    }

    fn max_f64(&self, value: f64) -> Result<f64> {
        let all = self.exchange(&self.shared.floats, &[value]);
        Ok(all.iter().map(|rank| rank[0]).fold(f64::MIN, f64::max))
    }

    fn gather_f32(&self, part: &[f32]) -> Result<Option<Vec<f32>>> {
        let all = self.exchange(&self.shared.singles, part);
        Ok(self.is_root().then(|| all.concat()))
    }
}

const RANK_COUNTS: [usize; 4] = [1, 2, 3, 5];

fn problem() -> (
    Array3<f32>,
    VolumeGeometry,
    CircularScan,
    ProjectionGeometry,
) {
    let grid = VolumeGeometry::centered([20, 24, 22], [1.0, 1.0, 1.0]);
    let volume = Phantom::shepp_logan(22.0).voxelize(&grid, 1).unwrap();
    // 36 views: 5 units of 8 views (the last of 4), so 5 ranks get one unit each.
    let scan = CircularScan::new(80.0, 160.0, 36, [26, 30], 1.5);
    let geometry = scan.geometry().unwrap();
    (volume, grid, scan, geometry)
}

fn cpu() -> Projector {
    Projector::new(Backend::Cpu).unwrap()
}

/// This rank's views of `projections`.
fn local_part(comm: &ThreadGroup, projections: &Array3<f32>) -> Array3<f32> {
    let views = Partition::of(projections.dim().0, comm).local_views();
    projections.slice(s![views, .., ..]).to_owned()
}

fn largest(a: &Array3<f32>) -> f32 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn assert_close(what: &str, got: &Array3<f32>, want: &Array3<f32>, bound: f32) {
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
    let relative = diff / largest(want);
    println!("{what}: max |distributed - single| / max = {relative:.2e}");
    assert!(relative <= bound, "{what}: {relative:e} > {bound:e}");
}

#[test]
fn the_partition_covers_every_view_and_slice_once_in_order() {
    for views in [1, 7, 8, 36, 100, 2048, 5000] {
        for ranks in [1, 2, 3, 5, 64, 300] {
            let parts: Vec<Partition> = (0..ranks)
                .map(|rank| Partition::new(views, rank, ranks))
                .collect();
            let mut next = 0;
            for part in &parts {
                let local = part.local_views();
                assert_eq!(local.start, next, "{views} views on {ranks} ranks");
                next = local.end;
                for unit in part.local_units() {
                    assert!(
                        part.unit_views(unit).len() >= super::partition::MIN_UNIT_VIEWS.min(views)
                            || unit + 1 == part.units()
                    );
                }
            }
            assert_eq!(next, views);
            // The units do not depend on the rank count.
            assert_eq!(parts[0].units(), Partition::new(views, 0, 1).units());
            assert!(parts[0].units() <= super::partition::MAX_UNITS);
            let slices: Vec<_> = parts.iter().map(|p| p.local_slices(24)).collect();
            assert_eq!(slices[0].start, 0);
            assert!(slices.windows(2).all(|w| w[0].end == w[1].start));
            assert_eq!(slices.last().unwrap().end, 24);
        }
    }
}

#[test]
fn projections_on_any_rank_count_are_the_single_process_stack() {
    let (volume, grid, _, geometry) = problem();
    for method in [Method::Siddon, Method::Joseph] {
        let single = cpu().forward(&volume, &grid, &geometry, method).unwrap();
        for ranks in RANK_COUNTS {
            let results = ThreadGroup::run(ranks, |comm| {
                super::project(comm, &cpu(), &volume, &grid, &geometry, method).unwrap()
            });
            assert_eq!(
                results[0].as_ref(),
                Some(&single),
                "{method:?}, {ranks} ranks"
            );
            assert!(results[1..].iter().all(Option::is_none));
        }
    }
}

#[test]
fn backprojections_are_the_same_bits_on_any_rank_count() {
    let (volume, grid, _, geometry) = problem();
    for method in [Method::Siddon, Method::Joseph] {
        let projections = cpu().forward(&volume, &grid, &geometry, method).unwrap();
        let single = cpu()
            .backward(&projections, &geometry, &grid, method)
            .unwrap();
        let mut first: Option<Array3<f32>> = None;
        for ranks in RANK_COUNTS {
            let results = ThreadGroup::run(ranks, |comm| {
                let local = local_part(comm, &projections);
                super::backward(comm, &cpu(), &local, &geometry, &grid, method).unwrap()
            });
            for result in &results {
                assert_eq!(result, &results[0], "every rank holds the same volume");
            }
            match &first {
                None => first = Some(results[0].clone()),
                Some(first) => assert_eq!(&results[0], first, "{method:?} on {ranks} ranks"),
            }
        }
        // Against the single process: the same terms added in another order.
        assert_close(
            &format!("{method:?} backprojection"),
            first.as_ref().unwrap(),
            &single,
            1e-5,
        );
    }
}

#[test]
fn fdk_on_any_rank_count_is_the_single_process_volume() {
    let (volume, grid, scan, geometry) = problem();
    let projections = cpu()
        .forward(&volume, &grid, &geometry, Method::Siddon)
        .unwrap();
    let single = crate::recon::fdk(&cpu(), &projections, &scan, &grid, Filter::Hann).unwrap();
    for ranks in RANK_COUNTS {
        let results = ThreadGroup::run(ranks, |comm| {
            super::fdk(comm, &cpu(), &projections, &scan, &grid, Filter::Hann).unwrap()
        });
        assert_eq!(results[0].as_ref(), Some(&single), "{ranks} ranks");
    }
}

#[test]
fn sirt_and_cgls_are_the_same_bits_on_any_rank_count() {
    let (volume, grid, _, geometry) = problem();
    let projections = cpu()
        .forward(&volume, &grid, &geometry, Method::Joseph)
        .unwrap();
    let options = IterativeOptions {
        method: Method::Joseph,
        iterations: 4,
        ..IterativeOptions::default()
    };
    let single_sirt = crate::recon::sirt(&cpu(), &projections, &geometry, &grid, &options, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let single_cgls = crate::recon::cgls(&cpu(), &projections, &geometry, &grid, &options, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let mut first = None;
    for ranks in RANK_COUNTS {
        let results = ThreadGroup::run(ranks, |comm| {
            let local = local_part(comm, &projections);
            let mut seen = Vec::new();
            let sirt = super::sirt(comm, &cpu(), &local, &geometry, &grid, &options, |p| {
                seen.push(p.residual);
                ControlFlow::Continue(())
            })
            .unwrap();
            let cgls = super::cgls(comm, &cpu(), &local, &geometry, &grid, &options, |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(seen, sirt.residuals, "the callback sees the residuals");
            (sirt.volume, sirt.residuals, cgls.volume, cgls.residuals)
        });
        for result in &results {
            assert_eq!(result, &results[0], "every rank ends with the same result");
        }
        match &first {
            None => first = Some(results[0].clone()),
            Some(first) => assert_eq!(&results[0], first, "{ranks} ranks"),
        }
    }
    let (sirt, sirt_residuals, cgls, cgls_residuals) = first.unwrap();
    assert_close("SIRT, 4 iterations", &sirt, &single_sirt.volume, 1e-4);
    assert_close("CGLS, 4 iterations", &cgls, &single_cgls.volume, 1e-3);
    for (got, want) in sirt_residuals.iter().zip(&single_sirt.residuals) {
        assert!(
            (got - want).abs() <= 1e-4 * want,
            "SIRT residual {got} against {want}"
        );
    }
    for (got, want) in cgls_residuals.iter().zip(&single_cgls.residuals) {
        assert!(
            (got - want).abs() <= 1e-4 * want,
            "CGLS residual {got} against {want}"
        );
    }
}

#[test]
fn an_error_on_one_rank_is_an_error_on_every_rank_not_a_hang() {
    let (volume, grid, _, geometry) = problem();
    let mut projections = cpu()
        .forward(&volume, &grid, &geometry, Method::Siddon)
        .unwrap();
    // A NaN in the last view: only the last rank holds it.
    projections[[35, 3, 4]] = f32::NAN;
    let results = ThreadGroup::run(3, |comm| {
        let local = local_part(comm, &projections);
        super::backward(comm, &cpu(), &local, &geometry, &grid, Method::Siddon)
            .unwrap_err()
            .to_string()
    });
    assert!(results[2].contains("non-finite"), "{}", results[2]);
    for message in &results[..2] {
        // The others name the rank and say what failed it, in its own words.
        assert!(message.contains("rank 2 failed"), "{message}");
        assert!(message.contains(&results[2]), "{message}");
    }
}
