//! Bad input gets a specific error, never a panic or a silently wrong image.

use ndarray::Array3;
use std::path::Path;
use xray_projector::{
    Backend, Beam, CircularScan, DrrPose, Error, GeometryError, GeometryFile, Method,
    ProjectionGeometry, Projector, View, VolumeGeometry,
};

fn projector() -> Projector {
    Projector::new(Backend::Cpu).unwrap()
}

fn good_volume() -> (Array3<f32>, VolumeGeometry) {
    (
        Array3::from_elem((4, 5, 6), 0.1),
        VolumeGeometry::centered([4, 5, 6], [1.0, 1.0, 1.0]),
    )
}

fn good_geometry() -> ProjectionGeometry {
    CircularScan::new(100.0, 150.0, 2, [8, 8], 1.0)
        .geometry()
        .unwrap()
}

fn geometry_error(result: Result<impl std::fmt::Debug, Error>) -> GeometryError {
    match result {
        Err(Error::Geometry(e)) => e,
        other => panic!("expected a geometry error, got {other:?}"),
    }
}

#[test]
fn volume_geometry_errors_name_the_field() {
    let (volume, _) = good_volume();
    let g = good_geometry();
    let cases: Vec<(VolumeGeometry, &str)> = vec![
        (VolumeGeometry::centered([0, 5, 6], [1.0; 3]), "shape[0]"),
        (
            VolumeGeometry::centered([4, 5, 6], [1.0, -1.0, 1.0]),
            "spacing[1]",
        ),
        (
            VolumeGeometry::centered([4, 5, 6], [1.0, 1.0, 0.0]),
            "spacing[2]",
        ),
        (
            VolumeGeometry::centered([4, 5, 6], [f64::NAN, 1.0, 1.0]),
            "spacing[0]",
        ),
        (
            VolumeGeometry::new([4, 5, 6], [1.0; 3], [0.0, f64::INFINITY, 0.0]),
            "origin[1]",
        ),
    ];
    for (grid, field) in cases {
        let err = geometry_error(projector().forward(&volume, &grid, &g, Method::Siddon));
        assert!(err.to_string().contains(field), "{err} should name {field}");
    }
    let skewed = VolumeGeometry::centered([4, 5, 6], [1.0; 3]).with_direction([
        [1.0, 0.5, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
    ]);
    assert!(matches!(
        geometry_error(projector().forward(&volume, &skewed, &g, Method::Siddon)),
        GeometryError::DirectionNotOrthonormal { .. }
    ));
}

fn with_view(view: View, beam: Beam) -> ProjectionGeometry {
    ProjectionGeometry {
        beam,
        rows: 4,
        cols: 4,
        views: vec![good_geometry().views[0], view],
    }
}

#[test]
fn projection_geometry_errors_are_specific() {
    let (volume, grid) = good_volume();
    let base = good_geometry().views[0];
    let run = |g: ProjectionGeometry| {
        geometry_error(projector().forward(&volume, &grid, &g, Method::Joseph))
    };

    let parallel_uv = View {
        v: [base.u[0] * 2.0, base.u[1] * 2.0, base.u[2] * 2.0],
        ..base
    };
    assert_eq!(
        run(with_view(parallel_uv, Beam::Cone)),
        GeometryError::DetectorAxesParallel { view: 1 }
    );

    let zero_u = View {
        u: [0.0; 3],
        ..base
    };
    assert_eq!(
        run(with_view(zero_u, Beam::Cone)),
        GeometryError::DetectorAxesParallel { view: 1 }
    );

    // Source moved within the detector plane (along u from the detector centre).
    let on_plane = View {
        source: [
            base.detector[0] + 3.0 * base.u[0],
            base.detector[1] + 3.0 * base.u[1],
            base.detector[2] + 3.0 * base.u[2],
        ],
        ..base
    };
    assert_eq!(
        run(with_view(on_plane, Beam::Cone)),
        GeometryError::SourceOnDetectorPlane { view: 1 }
    );

    let along_detector = View {
        source: base.u,
        ..base
    };
    assert_eq!(
        run(with_view(along_detector, Beam::Parallel)),
        GeometryError::RayAlongDetector { view: 1 }
    );

    let nan = View {
        detector: [0.0, f64::NAN, 0.0],
        ..base
    };
    assert!(
        matches!(run(with_view(nan, Beam::Cone)), GeometryError::NotFinite { field, .. } if field == "view 1 detector[1]")
    );

    let no_views = ProjectionGeometry {
        beam: Beam::Cone,
        rows: 4,
        cols: 4,
        views: vec![],
    };
    assert!(matches!(run(no_views), GeometryError::Empty { .. }));

    let no_rows = ProjectionGeometry {
        rows: 0,
        ..good_geometry()
    };
    assert!(matches!(run(no_rows), GeometryError::Empty { field } if field == "detector rows"));
}

#[test]
fn scan_builders_reject_bad_numbers() {
    let scan = CircularScan::new(100.0, 150.0, 2, [8, 8], 1.0);
    assert!(matches!(
        geometry_error(
            CircularScan {
                sdd: 90.0,
                ..scan.clone()
            }
            .geometry()
        ),
        GeometryError::DetectorInsideOrbit { .. }
    ));
    assert!(matches!(
        geometry_error(
            CircularScan {
                sod: -1.0,
                ..scan.clone()
            }
            .geometry()
        ),
        GeometryError::NotPositive { .. }
    ));
    assert!(matches!(
        geometry_error(
            CircularScan {
                views: 0,
                ..scan.clone()
            }
            .geometry()
        ),
        GeometryError::Empty { .. }
    ));
    assert!(matches!(
        geometry_error(
            CircularScan {
                pixel: [1.0, f64::NAN],
                ..scan.clone()
            }
            .geometry()
        ),
        GeometryError::NotFinite { .. }
    ));
    assert!(matches!(
        geometry_error(
            CircularScan {
                detector: [8, 0],
                ..scan
            }
            .geometry()
        ),
        GeometryError::Empty { .. }
    ));
    let pose = DrrPose {
        source: [-500.0, 0.0, 0.0],
        target: [0.0; 3],
        sdd: 800.0,
        up: [1.0, 0.0, 0.0],
        detector: [4, 4],
        pixel: [1.0, 1.0],
    };
    assert_eq!(
        geometry_error(pose.geometry()),
        GeometryError::DetectorAxesParallel { view: 0 }
    );
    let on_target = DrrPose {
        source: [0.0; 3],
        up: [0.0, 0.0, 1.0],
        ..pose
    };
    assert!(matches!(
        geometry_error(on_target.geometry()),
        GeometryError::NotPositive { .. }
    ));
}

#[test]
fn volume_shape_must_match_its_geometry() {
    let (_, grid) = good_volume();
    let wrong = Array3::<f32>::zeros((4, 6, 5));
    match projector().forward(&wrong, &grid, &good_geometry(), Method::Siddon) {
        Err(Error::ShapeMismatch { expected, got, .. }) => {
            assert_eq!(expected, vec![4, 5, 6]);
            assert_eq!(got, vec![4, 6, 5]);
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
}

#[test]
fn non_finite_voxels_are_named() {
    let (mut volume, grid) = good_volume();
    volume[[2, 3, 1]] = f32::NAN;
    match projector().forward(&volume, &grid, &good_geometry(), Method::Siddon) {
        Err(Error::NonFiniteVolume { index, .. }) => assert_eq!(index, [2, 3, 1]),
        other => panic!("expected a non-finite volume error, got {other:?}"),
    }
}

#[test]
fn absurd_sizes_fail_cleanly() {
    let (volume, grid) = good_volume();
    // 2^32 views x 2^20 x 2^20 pixels overflows usize: an error, not a panic or an abort.
    let huge = ProjectionGeometry {
        rows: 1 << 20,
        cols: 1 << 20,
        views: vec![good_geometry().views[0]; 1 << 12],
        ..good_geometry()
    };
    let err = projector()
        .forward(&volume, &grid, &huge, Method::Siddon)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Geometry(GeometryError::TooLarge { .. }) | Error::Allocation { .. }
        ),
        "{err}"
    );
    let too_wide = ProjectionGeometry {
        cols: u32::MAX as usize + 1,
        ..good_geometry()
    };
    assert!(matches!(
        geometry_error(projector().forward(&volume, &grid, &too_wide, Method::Siddon)),
        GeometryError::TooLarge { .. }
    ));
}

#[test]
fn geometry_files_parse_and_reject_unknown_fields() {
    let circular = "[circular]\nsod = 1000.0\nsdd = 1500.0\nviews = 3\ndetector = [4, 6]\npixel = [1.6, 1.6]\n";
    let g = GeometryFile::parse(circular, Path::new("scan.toml"))
        .unwrap()
        .geometry()
        .unwrap();
    assert_eq!(g.shape(), [3, 4, 6]);
    assert_eq!(
        g,
        CircularScan::new(1000.0, 1500.0, 3, [4, 6], 1.6)
            .geometry()
            .unwrap()
    );

    let typo = "[circular]\nsod = 1000.0\nsdd = 1500.0\nviewz = 3\ndetector = [4, 6]\npixel = [1.6, 1.6]\n";
    let err = GeometryFile::parse(typo, Path::new("typo.toml")).unwrap_err();
    assert!(
        matches!(err, Error::Format { .. }) && err.to_string().contains("typo.toml"),
        "{err}"
    );

    let vectors = "[vectors]\nbeam = \"parallel\"\nrows = 2\ncols = 2\n[[vectors.views]]\nsource = [1.0, 0.0, 0.0]\ndetector = [0.0, 0.0, 0.0]\nu = [0.0, 1.0, 0.0]\nv = [0.0, 0.0, 1.0]\n";
    let g = GeometryFile::parse(vectors, Path::new("v.toml"))
        .unwrap()
        .geometry()
        .unwrap();
    assert_eq!(g.beam, Beam::Parallel);

    let bad_vectors = vectors.replace("u = [0.0, 1.0, 0.0]", "u = [0.0, 0.0, 2.0]");
    let err = GeometryFile::parse(&bad_vectors, Path::new("v.toml"))
        .unwrap()
        .geometry()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Geometry(GeometryError::DetectorAxesParallel { view: 0 })
        ),
        "{err}"
    );
}

#[test]
fn axis_lengths_beyond_the_kernels_i32_indices_are_refused() {
    // The kernels keep per-axis indices in i32 (see MAX_AXIS_LEN): 2^30 + 1 voxels along
    // any axis, or detector rows or columns, are refused before anything is allocated.
    use xray_projector::geometry::MAX_AXIS_LEN;
    assert_eq!(MAX_AXIS_LEN, 1 << 30);
    let (volume, _) = good_volume();
    let g = good_geometry();
    let too_large = |result: Result<(), Error>, field: &str| match geometry_error(result) {
        GeometryError::TooLarge {
            field: named,
            value,
            limit,
        } => {
            assert!(named.contains(field), "{named} should name {field}");
            assert_eq!(value, MAX_AXIS_LEN as u128 + 1);
            assert_eq!(limit, MAX_AXIS_LEN as u128);
        }
        other => panic!("expected TooLarge for {field}, got {other:?}"),
    };
    for (axis, field) in ["nz", "ny", "nx"].into_iter().enumerate() {
        let mut shape = [1, 1, 1];
        shape[axis] = MAX_AXIS_LEN;
        VolumeGeometry::centered(shape, [1.0; 3])
            .validate()
            .unwrap_or_else(|e| panic!("{field} = 2^30 is allowed: {e}"));
        shape[axis] = MAX_AXIS_LEN + 1;
        let grid = VolumeGeometry::centered(shape, [1.0; 3]);
        too_large(grid.validate(), field);
        // The projector checks the geometry before the array (which is small here).
        too_large(
            projector()
                .forward(&volume, &grid, &g, Method::Siddon)
                .map(drop),
            field,
        );
        let y = Array3::from_elem(g.shape(), 1.0f32);
        too_large(
            projector()
                .backward(&y, &g, &grid, Method::Joseph)
                .map(drop),
            field,
        );
    }
    for (rows, cols, field) in [
        (MAX_AXIS_LEN + 1, 1, "detector rows"),
        (1, MAX_AXIS_LEN + 1, "detector cols"),
    ] {
        let detector = ProjectionGeometry {
            rows,
            cols,
            ..g.clone()
        };
        too_large(detector.validate(), field);
        let (volume, grid) = good_volume();
        too_large(
            projector()
                .forward(&volume, &grid, &detector, Method::Joseph)
                .map(drop),
            field,
        );
    }
    let at_limit = ProjectionGeometry {
        rows: MAX_AXIS_LEN,
        ..g.clone()
    };
    at_limit.validate().unwrap();
}
