//! `Cancel`: a set flag stops every entry point with `Error::Cancelled`, and a flag set
//! during a projection stops it at its next check instead of at its end.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::Array3;
use xray_projector::recon::{self, Filter, IterativeOptions};
use xray_projector::{Backend, Cancel, CircularScan, Error, Method, Projector, VolumeGeometry};

fn cancelled_projector() -> Projector {
    let cancel = Cancel::new();
    cancel.cancel();
    Projector::new(Backend::Cpu)
        .expect("the CPU backend")
        .with_cancel(cancel)
}

#[test]
fn a_set_flag_stops_every_entry_point() {
    let grid = VolumeGeometry::centered([16, 16, 16], [1.0; 3]);
    let scan = CircularScan::new(100.0, 200.0, 8, [12, 12], 1.5);
    let geometry = scan.geometry().unwrap();
    let volume = Array3::from_elem((16, 16, 16), 0.02f32);
    let projections = Projector::new(Backend::Cpu)
        .unwrap()
        .forward(&volume, &grid, &geometry, Method::Siddon)
        .unwrap();
    let projector = cancelled_projector();
    assert!(projector.is_cancelled());
    for method in [Method::Siddon, Method::Joseph] {
        assert!(matches!(
            projector.forward(&volume, &grid, &geometry, method),
            Err(Error::Cancelled)
        ));
        assert!(matches!(
            projector.backward(&projections, &geometry, &grid, method),
            Err(Error::Cancelled)
        ));
    }
    assert!(matches!(
        recon::fdk(&projector, &projections, &scan, &grid, Filter::Hann),
        Err(Error::Cancelled)
    ));
    let options = IterativeOptions {
        iterations: 3,
        ..Default::default()
    };
    let go_on = |_: &recon::Progress| ControlFlow::Continue(());
    assert!(matches!(
        recon::sirt(&projector, &projections, &geometry, &grid, &options, go_on),
        Err(Error::Cancelled)
    ));
    assert!(matches!(
        recon::cgls(&projector, &projections, &geometry, &grid, &options, go_on),
        Err(Error::Cancelled)
    ));
}

#[test]
fn a_flag_set_during_a_projection_stops_it_after_the_current_pass() {
    let grid = VolumeGeometry::centered([24, 24, 24], [1.0; 3]);
    // 40 views: three passes of at most 16 views on the CPU.
    let geometry = CircularScan::new(100.0, 200.0, 40, [16, 16], 1.5)
        .geometry()
        .unwrap();
    let volume = Array3::from_elem((24, 24, 24), 0.02f32);
    let cancel = Cancel::new();
    let projector = Projector::new(Backend::Cpu)
        .unwrap()
        .with_cancel(cancel.clone());
    let views_done = AtomicUsize::new(0);
    let result =
        projector.forward_with_progress(&volume, &grid, &geometry, Method::Joseph, &|| {
            views_done.fetch_add(1, Ordering::Relaxed);
            cancel.cancel();
        });
    assert!(matches!(result, Err(Error::Cancelled)));
    // The first pass ends and reports its 16 views; the second does not start.
    assert_eq!(views_done.into_inner(), 16);
}
