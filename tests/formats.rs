//! Volume files in and out: files written by other tools (nibabel, SimpleITK, pydicom;
//! `scripts/make-fixtures.py`) read with the values and world positions those tools
//! report; round trips through every writer; malformed files refused with the file
//! and field named; the volume's affine honoured by the projector.

mod common;

use std::path::{Path, PathBuf};

use ndarray::Array3;
use xray_projector::geometry::{Beam, ProjectionGeometry, View};
use xray_projector::io::{
    read_raw, read_volume, write_metaimage, write_nifti, write_tiff, ByteOrder, Overwrite,
    RawLayout, ReadOptions, SampleType, VolumeFormat,
};
use xray_projector::{Method, Phantom, Projector, VolumeGeometry};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(data("expected.json")).expect("tests/data/expected.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// Checks a fixture: every voxel is `slope * (i + 10 j + 100 k) + inter`, and the
/// probed voxel centres are where the writing tool put them.
#[track_caller]
fn check_fixture(name: &str, format: VolumeFormat) {
    let all = expected();
    let want = &all[name];
    let loaded =
        read_volume(&data(name), &ReadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(loaded.format, format, "{name}");
    let [nx, ny, nz] = [0, 1, 2].map(|a| all["shape_xyz"][a].as_u64().unwrap() as usize);
    assert_eq!(loaded.data.dim(), (nz, ny, nx), "{name}: shape");
    let (slope, inter) = (
        want["slope"].as_f64().unwrap(),
        want["inter"].as_f64().unwrap(),
    );
    for ((k, j, i), &v) in loaded.data.indexed_iter() {
        let raw = (i + 10 * j + 100 * k) as f64;
        assert_eq!(
            v as f64,
            slope * raw + inter,
            "{name}: value at x={i} y={j} z={k}"
        );
    }
    let points = want["points"].as_object().unwrap();
    assert!(points.len() >= 3, "{name}: probes");
    for (index, world) in points {
        let ijk: Vec<usize> = serde_json::from_str(index).unwrap();
        let got = loaded.grid.voxel_centre([ijk[2], ijk[1], ijk[0]]);
        for a in 0..3 {
            let w = world[a].as_f64().unwrap();
            // NIfTI stores its affine in float32.
            assert!(
                (got[a] - w).abs() < 1e-4,
                "{name}: voxel {index} at {got:?}, want {world}"
            );
        }
    }
}

#[test]
fn nifti_from_nibabel_sform_qform_and_nifti2() {
    check_fixture("nibabel_sform_int16.nii.gz", VolumeFormat::Nifti);
    check_fixture("nibabel_qform_float32.nii", VolumeFormat::Nifti);
    check_fixture("nibabel_nifti2_bigendian.nii", VolumeFormat::Nifti);
}

#[test]
fn metaimage_from_simpleitk_local_compressed_and_separate() {
    check_fixture("sitk_int16.mha", VolumeFormat::MetaImage);
    check_fixture("sitk_int16_compressed.mha", VolumeFormat::MetaImage);
    check_fixture("sitk_int16.mhd", VolumeFormat::MetaImage);
}

#[test]
fn dicom_series_from_pydicom_orders_shuffled_slices() {
    // File names and Instance Numbers are shuffled; position along the normal orders.
    check_fixture("dicom_shuffled", VolumeFormat::Dicom);
    check_fixture("dicom_rle", VolumeFormat::Dicom);
}

/// An oblique, reflected, anisotropic grid away from the origin. The direction matrix
/// is not symmetric, so a writer and reader that both transposed it would be caught.
fn oblique_grid(shape: [usize; 3]) -> VolumeGeometry {
    // Columns (the x, y, z index axes): (-0.6, -0.8, 0), (0, 0, 1), (0.8, -0.6, 0).
    let direction = [[-0.6, 0.0, 0.8], [-0.8, 0.0, -0.6], [0.0, 1.0, 0.0]];
    VolumeGeometry::new(shape, [0.7, 1.1, 2.3], [-31.0, 12.5, 101.0]).with_direction(direction)
}

#[track_caller]
fn assert_same_grid(got: &VolumeGeometry, want: &VolumeGeometry, tolerance: f64, what: &str) {
    assert_eq!(got.shape, want.shape, "{what}");
    let a = got.voxel_centre_affine();
    let b = want.voxel_centre_affine();
    for r in 0..3 {
        for c in 0..4 {
            assert!(
                (a[r][c] - b[r][c]).abs() < tolerance,
                "{what}: {a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn volume_writers_round_trip_values_and_grid() {
    let dir = tempfile::tempdir().unwrap();
    let grid = oblique_grid([3, 4, 5]);
    let volume = common::random_array([3, 4, 5], 11);
    for name in ["v.nii", "v.nii.gz", "v.mha", "v.mhd"] {
        let path = dir.path().join(name);
        if name.starts_with("v.m") {
            write_metaimage(&path, volume.view(), &grid, Overwrite::Refuse).unwrap();
        } else {
            write_nifti(&path, volume.view(), &grid, Overwrite::Refuse).unwrap();
        }
        let back = read_volume(&path, &ReadOptions::default()).unwrap();
        assert_eq!(back.data, volume, "{name}: values");
        // NIfTI-1 keeps the affine in float32.
        let tolerance = if name.contains("nii") { 1e-4 } else { 1e-9 };
        assert_same_grid(&back.grid, &grid, tolerance, name);
    }
    assert!(
        dir.path().join("v.raw").exists(),
        ".mhd writes its data beside"
    );
}

#[test]
fn writers_never_replace_a_file_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let grid = VolumeGeometry::centered([2, 2, 2], [1.0; 3]);
    let volume = Array3::from_elem((2, 2, 2), 1.0f32);
    for name in ["a.nii.gz", "a.mha", "a.mhd", "a.tif"] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"precious").unwrap();
        let result = match name {
            "a.tif" => write_tiff(&path, volume.view(), Overwrite::Refuse),
            n if n.ends_with("nii.gz") => {
                write_nifti(&path, volume.view(), &grid, Overwrite::Refuse)
            }
            _ => write_metaimage(&path, volume.view(), &grid, Overwrite::Refuse),
        };
        let err = result.unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{name}: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious", "{name}");
    }
    assert!(
        !dir.path().join("a.raw").exists(),
        "a refused .mhd leaves no data file"
    );
}

#[test]
fn tiff_pages_hold_the_float_values_upright() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.tif");
    let p = common::random_array([3, 4, 5], 5);
    write_tiff(&path, p.view(), Overwrite::Refuse).unwrap();
    let mut decoder = tiff::decoder::Decoder::new(std::fs::File::open(&path).unwrap()).unwrap();
    for view in 0..3 {
        if view > 0 {
            decoder.next_image().unwrap();
        }
        assert_eq!(decoder.dimensions().unwrap(), (5, 4));
        let tiff::decoder::DecodingResult::F32(page) = decoder.read_image().unwrap() else {
            panic!("page {view} is not float32");
        };
        for (row, line) in page.chunks(5).enumerate() {
            // The top line of the page is the detector's last row.
            let want: Vec<f32> = p.slice(ndarray::s![view, 3 - row, ..]).to_vec();
            assert_eq!(line, &want[..], "view {view}, page line {row}");
        }
    }
    assert!(!decoder.more_images(), "one page per view");
}

#[test]
fn raw_volumes_in_either_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ct.raw");
    let values: Vec<i16> = (0..24).map(|v| v * 100 - 1000).collect();
    let mut bytes = b"HEADER".to_vec();
    bytes.extend(values.iter().flat_map(|v| v.to_be_bytes()));
    std::fs::write(&path, &bytes).unwrap();
    let layout = RawLayout {
        shape: [2, 3, 4],
        sample: SampleType::I16,
        order: ByteOrder::Big,
        header_bytes: 6,
    };
    let read = read_raw(&path, &layout, 1 << 20).unwrap();
    assert_eq!(read.iter().map(|&v| v as i16).collect::<Vec<_>>(), values);
    for (bad, complaint) in [
        (
            RawLayout {
                shape: [2, 3, 5],
                ..layout
            },
            "check the shape and type",
        ),
        (
            RawLayout {
                sample: SampleType::F32,
                ..layout
            },
            "check the shape and type",
        ),
        (
            RawLayout {
                header_bytes: 1000,
                ..layout
            },
            "header bytes",
        ),
        (
            RawLayout {
                shape: [usize::MAX, 2, 2],
                ..layout
            },
            "exceeds",
        ),
    ] {
        let err = read_raw(&path, &bad, 1 << 20).unwrap_err().to_string();
        assert!(err.contains(complaint), "{bad:?}: {err}");
    }
}

/// A valid little-endian NIfTI-1 file of 2 x 2 x 2 float32, to corrupt.
fn small_nifti(dir: &Path) -> Vec<u8> {
    let path = dir.join("small.nii");
    let grid = VolumeGeometry::centered([2, 2, 2], [1.0; 3]);
    write_nifti(
        &path,
        Array3::from_elem((2, 2, 2), 3.0f32).view(),
        &grid,
        Overwrite::Refuse,
    )
    .unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn malformed_nifti_headers_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_nifti(dir.path());
    let patch = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated data",
            good[..good.len() - 4].to_vec(),
            "truncated",
        ),
        ("truncated header", good[..200].to_vec(), "not a NIfTI"),
        (
            "dim[0] = 4 with 5 frames",
            patch(40, &[4, 0, 2, 0, 2, 0, 2, 0, 5, 0]),
            "dim[4] = 5",
        ),
        (
            "negative dim",
            patch(42, &(-2i16).to_le_bytes()),
            "dim[1] = -2",
        ),
        (
            "huge dims",
            patch(42, &[0xff, 0x7f, 0xff, 0x7f, 0xff, 0x7f]),
            "truncated",
        ),
        (
            "complex datatype",
            patch(70, &32i16.to_le_bytes()),
            "datatype 32",
        ),
        (
            "vox_offset past the end",
            patch(108, &1e9f32.to_le_bytes()),
            "vox_offset",
        ),
        (
            "vox_offset NaN",
            patch(108, &f32::NAN.to_le_bytes()),
            "vox_offset",
        ),
        (
            "infinite slope",
            patch(112, &f32::INFINITY.to_le_bytes()),
            "scl_slope",
        ),
        ("sheared sform", patch(284, &0.5f32.to_le_bytes()), "affine"),
        ("two-file header", patch(344, b"ni1\0"), ".hdr/.img"),
    ];
    for (what, bytes, complaint) in cases {
        let path = dir.path().join(format!("{}.nii", what.replace(' ', "_")));
        std::fs::write(&path, &bytes).unwrap();
        let err = read_volume(&path, &ReadOptions::default())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(complaint), "{what}: {err}");
        assert!(
            err.contains(&path.display().to_string()),
            "{what}: names the file: {err}"
        );
    }
}

#[test]
fn oversized_and_compressed_input_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.nii.gz");
    let grid = VolumeGeometry::centered([64, 64, 64], [1.0; 3]);
    write_nifti(
        &path,
        Array3::zeros((64, 64, 64)).view(),
        &grid,
        Overwrite::Refuse,
    )
    .unwrap();
    let compressed = std::fs::metadata(&path).unwrap().len();
    assert!(compressed < 100_000, "zeros compress: {compressed} bytes");
    let options = ReadOptions {
        max_bytes: 500_000, // above the file, below its 1 MB of voxels
        ..ReadOptions::default()
    };
    let err = read_volume(&path, &options).unwrap_err().to_string();
    assert!(err.contains("limit of 500000 bytes"), "{err}");
    let options = ReadOptions {
        max_bytes: 600, // the file is 619 bytes
        ..ReadOptions::default()
    };
    let err = read_volume(&data("sitk_int16.mha"), &options)
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("limit of 600 bytes"), "{err}");
}

#[test]
fn malformed_metaimage_and_dicom_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let header = |dims: &str, extra: &str| {
        format!("ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementType = MET_SHORT\n{extra}ElementDataFile = LOCAL\n")
    };
    let cases = [
        (header("2 2 2", ""), "truncated"),
        (header("65536 65536 65536", ""), "truncated"),
        (
            header("2 2 2", "ElementSpacing = 1 0 1\n"),
            "affine column 1",
        ),
        (header("2 2 2", "CompressedData = True\n"), "zlib"),
        (
            header("2 2 2", "TransformMatrix = 1 0 0 1 0 0 0 0 1\n"),
            "TransformMatrix",
        ),
        (
            header("2 2 2", "").replace("LOCAL", "../../etc/passwd"),
            "beside the header",
        ),
    ];
    for (i, (text, complaint)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.mha"));
        std::fs::write(&path, text).unwrap();
        let err = read_volume(&path, &ReadOptions::default())
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains(complaint), "{text}: {err}");
    }
    // Two series in one directory, and two slices at one position.
    let series = dir.path().join("mixed");
    std::fs::create_dir(&series).unwrap();
    for entry in std::fs::read_dir(data("dicom_shuffled")).unwrap() {
        let from = entry.unwrap().path();
        std::fs::copy(&from, series.join(from.file_name().unwrap())).unwrap();
    }
    let rle = std::fs::read_dir(data("dicom_rle"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&rle, series.join("other_series")).unwrap();
    let err = read_volume(&series, &ReadOptions::default())
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("2 series are mixed"), "{err}");
    std::fs::remove_file(series.join("other_series")).unwrap();
    let one = std::fs::read_dir(&series)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("IM"))
        .unwrap();
    std::fs::copy(&one, series.join("duplicate")).unwrap();
    let err = read_volume(&series, &ReadOptions::default())
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("same position"), "{err}");
    // A file that is no volume at all.
    let junk = dir.path().join("junk.raw");
    std::fs::write(&junk, [1u8; 600]).unwrap();
    let err = read_volume(&junk, &ReadOptions::default())
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("--raw"), "{err}");
}

/// The rigid motion `x -> R x + t`.
struct Rigid {
    r: [[f64; 3]; 3],
    t: [f64; 3],
}

impl Rigid {
    fn vector(&self, v: [f64; 3]) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (row, o) in out.iter_mut().enumerate() {
            *o = (0..3).map(|c| self.r[row][c] * v[c]).sum();
        }
        out
    }

    fn point(&self, p: [f64; 3]) -> [f64; 3] {
        let v = self.vector(p);
        [v[0] + self.t[0], v[1] + self.t[1], v[2] + self.t[2]]
    }

    fn grid(&self, g: &VolumeGeometry) -> VolumeGeometry {
        // The new direction is R D.
        let mut direction = [[0.0; 3]; 3];
        for (r, row) in direction.iter_mut().enumerate() {
            for (c, value) in row.iter_mut().enumerate() {
                *value = (0..3).map(|m| self.r[r][m] * g.direction[m][c]).sum();
            }
        }
        VolumeGeometry::new(g.shape, g.spacing, self.point(g.origin)).with_direction(direction)
    }

    fn geometry(&self, p: &ProjectionGeometry) -> ProjectionGeometry {
        let views = p
            .views
            .iter()
            .map(|v| View {
                source: match p.beam {
                    Beam::Cone => self.point(v.source),
                    Beam::Parallel => self.vector(v.source),
                },
                detector: self.point(v.detector),
                u: self.vector(v.u),
                v: self.vector(v.v),
            })
            .collect();
        ProjectionGeometry { views, ..p.clone() }
    }
}

#[test]
fn a_rigid_motion_of_volume_and_scanner_leaves_the_image_unchanged() {
    // Rotation by 50 degrees about (1, -2, 2)/3, then a shift: the volume goes through
    // a NIfTI file with the moved affine, the scanner is moved by the same motion.
    let (axis, angle) = ([1.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0], 50f64.to_radians());
    let (s, c) = angle.sin_cos();
    let k = [
        [0.0, -axis[2], axis[1]],
        [axis[2], 0.0, -axis[0]],
        [-axis[1], axis[0], 0.0],
    ];
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let kk: f64 = (0..3).map(|m| k[i][m] * k[m][j]).sum();
            r[i][j] = if i == j { 1.0 } else { 0.0 } + s * k[i][j] + (1.0 - c) * kk;
        }
    }
    let motion = Rigid {
        r,
        t: [120.0, -35.0, 510.0],
    };
    let grid = VolumeGeometry::centered([40, 48, 56], [1.25, 1.0, 1.5]);
    let volume = Phantom::shepp_logan(28.0).voxelize(&grid, 1).unwrap();
    let geometry = common::random_views(3, Beam::Cone, 4, [0.0; 3], 400.0, [24, 32], 1.5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moved.nii.gz");
    write_nifti(&path, volume.view(), &motion.grid(&grid), Overwrite::Refuse).unwrap();
    let moved = read_volume(&path, &ReadOptions::default()).unwrap();
    let projector = Projector::new(xray_projector::Backend::Cpu).unwrap();
    for method in [Method::Siddon, Method::Joseph] {
        let want = projector
            .forward(&volume, &grid, &geometry, method)
            .unwrap();
        let got = projector
            .forward(
                &moved.data,
                &moved.grid,
                &motion.geometry(&geometry),
                method,
            )
            .unwrap();
        let peak = want.iter().fold(0f32, |m, &v| m.max(v));
        assert!(peak > 0.5, "the rays cross the phantom");
        common::assert_close(
            got.as_slice().unwrap(),
            want.as_slice().unwrap(),
            // The moved affine went through float32 (NIfTI-1): ~1e-5 mm of grid shift.
            2e-4 * peak as f64,
            0.0,
            &format!("{method:?}"),
        );
    }
    // Ignoring the affine (recentring alone) would not give the same image.
    let unmoved = moved.grid.recentred();
    let wrong = projector
        .forward(
            &moved.data,
            &unmoved,
            &motion.geometry(&geometry),
            Method::Siddon,
        )
        .unwrap();
    let want = projector
        .forward(&volume, &grid, &geometry, Method::Siddon)
        .unwrap();
    assert!(common::nrmse(wrong.as_slice().unwrap(), want.as_slice().unwrap()) > 0.1);
}

#[test]
fn inputs_the_fuzzers_found_are_refused_cleanly() {
    // tests/data/fuzz: each made a reader allocate far more than the file's size.
    let npy = data("fuzz/npy-header-length-oom");
    let bytes = std::fs::read(&npy).unwrap();
    let err = xray_projector::io::parse_npy(&npy, &bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated header"), "{err}");
    // dicom-parser reserves a declared element length (here ~960 MB) before reading
    // it; the length walk refuses the file first.
    let dicom = data("fuzz/dicom-element-length-oom");
    let bytes = std::fs::read(&dicom).unwrap();
    let mut budget = 1 << 30;
    let err = xray_projector::io::parse_dicom_slice(&dicom, &bytes, &mut budget).unwrap_err();
    assert!(
        err.to_string().contains("not a readable DICOM file"),
        "{err}"
    );
}
