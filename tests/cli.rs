//! The `xray` binary as a user runs it: files that decode, clear errors, nothing
//! overwritten by accident.

use std::path::Path;
use std::process::{Command, Output};

use ndarray::{Array2, Array3};
use ndarray_npy::{read_npy, write_npy};
use xray_projector::{Backend, CircularScan, Method, Phantom, Projector, VolumeGeometry};

fn xray(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the xray binary runs")
}

#[track_caller]
fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "xray failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[track_caller]
fn fails_with(output: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "xray should have failed");
    assert!(
        stderr.contains(message),
        "stderr should mention {message:?}:\n{stderr}"
    );
}

/// The library's side of `xray drr --kvp 80`'s defaults: `maps` (on `grid`) projected on
/// the CPU with Siddon, and the model of an 80 kV tube (12 degree anode) through 2.5 mm
/// of aluminium onto a CsI flat panel at 4 mAs.
fn library_radiograph(
    maps: &[Array3<f32>],
    absorbers: Vec<xray_projector::physics::Absorber>,
    grid: &VolumeGeometry,
    geometry: &xray_projector::ProjectionGeometry,
) -> (xray_projector::physics::RadiographModel, Vec<Array3<f32>>) {
    use xray_projector::physics::*;
    let projector = Projector::new(Backend::Cpu).unwrap();
    let p = project_maps(&projector, maps, grid, geometry, Method::Siddon).unwrap();
    let spectrum = Spectrum::tube(80.0, 12.0)
        .unwrap()
        .filtered(Material::Aluminium, 2.5)
        .unwrap();
    let model = RadiographModel::new(
        &spectrum,
        absorbers,
        Detector::flat_panel(Scintillator::csi()),
        Exposure::TubeCurrent { mas: 4.0 },
    )
    .unwrap();
    (model, p)
}

#[test]
fn drr_with_no_input_is_the_head_through_the_polychromatic_model() {
    let dir = tempfile::tempdir().unwrap();
    ok(&xray(
        &[
            "drr", "--size", "48", "--det", "24x24", "--pixel", "12", "--out", "h.npy",
        ],
        dir.path(),
    ));
    let got: Array2<f32> = read_npy(dir.path().join("h.npy")).unwrap();
    // The library's model of the same head, maps and geometry: the same bits.
    let grid = VolumeGeometry::centered([48; 3], [256.0 / 48.0; 3]);
    let head = xray_projector::phantom::MaterialPhantom::head();
    let maps = head.voxelize(&grid, 1).unwrap();
    let geometry = CircularScan::new(1000.0, 1500.0, 1, [24, 24], 12.0)
        .geometry()
        .unwrap();
    let (model, p) = library_radiograph(&maps, head.absorbers(), &grid, &geometry);
    let views: Vec<_> = p.iter().map(|a| a.view()).collect();
    let signal = model.expected(&views, &geometry).unwrap();
    let flat = model.flat_field(&geometry).unwrap();
    for ((r, c), value) in got.indexed_iter() {
        let want = -(f64::from(signal[[0, r, c]]) / f64::from(flat[[0, r, c]])).ln() as f32;
        assert_eq!(value.to_bits(), want.to_bits(), "pixel {r} {c}");
    }
    // Outside the head nothing attenuates; through it, several (of 80 kV photons).
    assert_eq!(got[[0, 0]], 0.0);
    assert!(
        got[[12, 12]] > 2.0 && got[[12, 12]] < 8.0,
        "{}",
        got[[12, 12]]
    );
    // The harder beam and a photon-counting detector see less contrast.
    ok(&xray(
        &[
            "drr",
            "--size",
            "48",
            "--det",
            "24x24",
            "--pixel",
            "12",
            "--kvp",
            "120",
            "--counting",
            "--out",
            "hard.npy",
        ],
        dir.path(),
    ));
    let hard: Array2<f32> = read_npy(dir.path().join("hard.npy")).unwrap();
    assert!(hard[[12, 12]] < got[[12, 12]]);
}

#[test]
fn the_polychromatic_options_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(
        dir.path().join("mu.npy"),
        &Array3::<f32>::from_elem((4, 4, 4), 0.02),
    )
    .unwrap();
    let plain = [
        "drr",
        "--volume",
        "mu.npy",
        "--spacing",
        "1,1,1",
        "--det",
        "8x8",
    ];
    fails_with(
        &xray(&[&plain[..], &["--kvp", "80"]].concat(), dir.path()),
        "--hu",
    );
    fails_with(
        &xray(&[&plain[..], &["--noise-seed", "1"]].concat(), dir.path()),
        "--noise-seed needs --i0",
    );
    fails_with(
        &xray(&["drr", "--size", "8", "--i0", "1e4"], dir.path()),
        "--mas",
    );
    fails_with(
        &xray(&["drr", "--size", "8", "--kvp", "200"], dir.path()),
        "kVp",
    );
    fails_with(
        &xray(&["drr", "--size", "8", "--kvp", "80.5"], dir.path()),
        "whole number",
    );
    fails_with(
        &xray(&["drr", "--size", "8", "--filter", "2mm-gold"], dir.path()),
        "unknown material",
    );
    fails_with(
        &xray(&["drr", "--size", "8", "--mas", "0"], dir.path()),
        "mAs",
    );
    fails_with(
        &xray(&["drr", "--size", "8", "--blur", "-1"], dir.path()),
        "blur",
    );
    fails_with(
        &xray(
            &["drr", "--size", "8", "--spectrum", "missing.csv"],
            dir.path(),
        ),
        "missing.csv",
    );
    // The model's options where no model runs are refused, not ignored.
    fails_with(
        &xray(
            &[
                "drr",
                "--phantom",
                "shepp-logan",
                "--size",
                "8",
                "--blur",
                "2",
            ],
            dir.path(),
        ),
        "--blur",
    );
    fails_with(
        &xray(
            &[&plain[..], &["--mas", "2", "--counting"]].concat(),
            dir.path(),
        ),
        "--counting, --mas",
    );
    fails_with(
        &xray(
            &[
                "project",
                "--volume",
                "mu.npy",
                "--spacing",
                "1,1,1",
                "--max-memory",
                "1G",
                "--noise-seed",
                "3",
            ],
            dir.path(),
        ),
        "--noise-seed",
    );
    assert!(!dir.path().join("drr.png").exists());
    // A user's spectrum, and a stack of views of the head.
    std::fs::write(dir.path().join("s.csv"), "keV,photons\n50,1e6\n70,2e6\n").unwrap();
    ok(&xray(
        &[
            "drr",
            "--size",
            "8",
            "--det",
            "8x8",
            "--spectrum",
            "s.csv",
            "--out",
            "s.npy",
        ],
        dir.path(),
    ));
    ok(&xray(
        &[
            "project",
            "--phantom",
            "head",
            "--size",
            "8",
            "--det",
            "8x8",
            "--views",
            "3",
            "--out",
            "h.npy",
        ],
        dir.path(),
    ));
    let stack: Array3<f32> = read_npy(dir.path().join("h.npy")).unwrap();
    assert_eq!(stack.dim(), (3, 8, 8));
}

#[test]
fn drr_of_the_shepp_logan_phantom_writes_a_png() {
    let dir = tempfile::tempdir().unwrap();
    ok(&xray(
        &["drr", "--phantom", "shepp-logan", "--size", "64"],
        dir.path(),
    ));
    let image = image::open(dir.path().join("drr.png")).unwrap().to_luma8();
    assert_eq!(image.dimensions(), (256, 256));
    // The head is bright in the middle, the background black.
    assert_eq!(image.get_pixel(0, 0)[0], 0);
    assert!(image.get_pixel(128, 128)[0] > 100);
}

#[test]
fn drr_npy_holds_the_line_integrals_the_library_computes() {
    let dir = tempfile::tempdir().unwrap();
    ok(&xray(
        &[
            "drr",
            "--phantom",
            "shepp-logan",
            "--size",
            "32",
            "--det",
            "20x30",
            "--pixel",
            "2",
            "--angle",
            "30",
            "--method",
            "joseph",
            "--out",
            "p.npy",
        ],
        dir.path(),
    ));
    let got: Array2<f32> = read_npy(dir.path().join("p.npy")).unwrap();
    assert_eq!(got.dim(), (20, 30));
    let grid = VolumeGeometry::centered([32; 3], [8.0; 3]);
    let volume = Phantom::shepp_logan(128.0).voxelize(&grid, 1).unwrap();
    let geometry = CircularScan::new(1000.0, 1500.0, 1, [20, 30], 2.0)
        .starting_at(30f64.to_radians())
        .geometry()
        .unwrap();
    let want = Projector::new(Backend::Cpu)
        .unwrap()
        .forward(&volume, &grid, &geometry, Method::Joseph)
        .unwrap();
    assert_eq!(got, want.index_axis_move(ndarray::Axis(0), 0));
}

#[test]
fn drr_of_a_npy_volume_with_intensities_and_16_bits() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(
        dir.path().join("vol.npy"),
        &Array3::<f64>::from_elem((8, 10, 12), 0.05),
    )
    .unwrap();
    ok(&xray(
        &[
            "drr",
            "--volume",
            "vol.npy",
            "--spacing",
            "2,2,3",
            "--det",
            "40x40",
            "--i0",
            "1e4",
            "--noise-seed",
            "1",
            "--bits",
            "16",
            "--out",
            "i.png",
        ],
        dir.path(),
    ));
    let image = image::open(dir.path().join("i.png")).unwrap();
    assert_eq!(image.color(), image::ColorType::L16);
    // Intensities are inverted so that the box is bright and the unattenuated border
    // (I0 = 1e4, Poisson noise of +-1%) nearly black; the box's centre transmits
    // exp(-24 mm * 0.05) = 30%, the darkest intensity, so it is nearly white.
    let image = image.to_luma16();
    assert!(
        image.get_pixel(0, 0)[0] < 8000,
        "border {}",
        image.get_pixel(0, 0)[0]
    );
    assert!(
        image.get_pixel(20, 20)[0] > 55000,
        "centre {}",
        image.get_pixel(20, 20)[0]
    );
}

#[test]
fn project_writes_a_stack_of_views() {
    let dir = tempfile::tempdir().unwrap();
    ok(&xray(
        &[
            "project",
            "--phantom",
            "nested",
            "--size",
            "24",
            "--views",
            "5",
            "--det",
            "12x16",
            "--out",
            "s.npy",
        ],
        dir.path(),
    ));
    let stack: Array3<f32> = read_npy(dir.path().join("s.npy")).unwrap();
    assert_eq!(stack.dim(), (5, 12, 16));
    assert!(stack.iter().all(|v| v.is_finite()) && stack.iter().any(|&v| v > 0.0));
}

#[test]
fn drr_takes_a_pose_file_and_refuses_a_multi_view_one() {
    let dir = tempfile::tempdir().unwrap();
    let pose = "[pose]\nsource = [0.0, -800.0, 0.0]\ntarget = [0.0, 0.0, 0.0]\nsdd = 1200.0\nup = [0.0, 0.0, 1.0]\ndetector = [24, 32]\npixel = [2.0, 2.0]\n";
    std::fs::write(dir.path().join("pose.toml"), pose).unwrap();
    ok(&xray(
        &[
            "drr",
            "--size",
            "16",
            "--geometry",
            "pose.toml",
            "--out",
            "pose.npy",
        ],
        dir.path(),
    ));
    let image: Array2<f32> = read_npy(dir.path().join("pose.npy")).unwrap();
    assert_eq!(image.dim(), (24, 32));
    assert!(image[[12, 16]] > 0.0);
    let scan = "[circular]\nsod = 1000.0\nsdd = 1500.0\nviews = 3\ndetector = [4, 4]\npixel = [1.0, 1.0]\n";
    std::fs::write(dir.path().join("scan.toml"), scan).unwrap();
    fails_with(
        &xray(
            &[
                "drr",
                "--size",
                "16",
                "--geometry",
                "scan.toml",
                "--out",
                "x.npy",
            ],
            dir.path(),
        ),
        "use xray project",
    );
}

#[test]
fn existing_files_are_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("drr.png"), b"precious").unwrap();
    fails_with(&xray(&["drr", "--size", "16"], dir.path()), "--force");
    assert_eq!(
        std::fs::read(dir.path().join("drr.png")).unwrap(),
        b"precious"
    );
    ok(&xray(&["drr", "--size", "16", "--force"], dir.path()));
    assert!(image::open(dir.path().join("drr.png")).is_ok());
}

#[test]
fn bad_input_gets_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        &xray(&["drr", "--sod", "1500", "--sdd", "1000"], dir.path()),
        "must exceed the source-object distance",
    );
    fails_with(
        &xray(&["drr", "--pixel", "-1"], dir.path()),
        "pixel width must be positive",
    );
    fails_with(
        &xray(&["drr", "--det", "0x10"], dir.path()),
        "detector rows must be at least 1",
    );
    fails_with(
        &xray(&["drr", "--out", "x.jpg"], dir.path()),
        "use .png, .npy, .tif or .nii",
    );
    fails_with(
        &xray(&["drr", "--size", "0"], dir.path()),
        "--size must be between",
    );
    fails_with(
        &xray(
            &["drr", "--volume", "missing.npy", "--spacing", "1,1,1"],
            dir.path(),
        ),
        "missing.npy",
    );
    // A header that claims a 2^40-element array in a tiny file: an error, not a huge allocation.
    let mut lying = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1024, 1024, 1048576), }";
    let padded = format!("{header:<117}\n");
    lying.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    lying.extend_from_slice(padded.as_bytes());
    lying.extend_from_slice(&[0u8; 64]);
    std::fs::write(dir.path().join("lying.npy"), lying).unwrap();
    fails_with(
        &xray(
            &["drr", "--volume", "lying.npy", "--spacing", "1,1,1"],
            dir.path(),
        ),
        "lying.npy",
    );
    write_npy(
        dir.path().join("ints.npy"),
        &Array3::<i32>::zeros((2, 2, 2)),
    )
    .unwrap();
    fails_with(
        &xray(
            &["drr", "--volume", "ints.npy", "--spacing", "1,1,1"],
            dir.path(),
        ),
        "float32, float64, int16, uint16 or uint8",
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !entries.iter().any(|n| n == "drr.png"),
        "a failed run wrote {entries:?}"
    );
}

#[test]
fn errors_print_their_causes_and_no_backtrace_even_when_rust_backtrace_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let not_found = std::fs::File::open(dir.path().join("missing.npy"))
        .unwrap_err()
        .to_string();
    for (variable, value) in [
        ("RUST_BACKTRACE", "1"),
        ("RUST_BACKTRACE", "full"),
        ("RUST_LIB_BACKTRACE", "1"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_xray"))
            .args(["drr", "--volume", "missing.npy", "--spacing", "1,1,1"])
            .current_dir(dir.path())
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env(variable, value)
            .output()
            .expect("the xray binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{variable}={value}:\n{stderr}"
        );
        assert!(
            !stderr.to_lowercase().contains("stack backtrace"),
            "{variable}={value}: a user error printed a backtrace:\n{stderr}"
        );
        // The whole chain, outermost first.
        let mut from = 0;
        for part in [
            "Error: reading the volume missing.npy",
            "Caused by:",
            "cannot read missing.npy",
            not_found.as_str(),
        ] {
            let at = stderr[from..].find(part).unwrap_or_else(|| {
                panic!("{variable}={value}: {part:?} missing or out of order in:\n{stderr}")
            });
            from += at + part.len();
        }
    }
}

#[test]
fn info_lists_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let output = xray(&["info"], dir.path());
    ok(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("cpu") && stdout.contains("usable"),
        "{stdout}"
    );
    assert!(stdout.contains("cuda"), "{stdout}");
}

#[test]
fn bench_json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let output = xray(
        &[
            "bench",
            "--case",
            "fp256",
            "--views",
            "1",
            "--repeats",
            "1",
            "--backend",
            "cpu",
            "--json",
        ],
        dir.path(),
    );
    ok(&output);
    let line = String::from_utf8_lossy(&output.stdout);
    let record: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    for field in [
        "case",
        "backend",
        "method",
        "views",
        "seconds",
        "rays_per_second",
    ] {
        assert!(record.get(field).is_some(), "missing {field} in {line}");
    }
    assert_eq!(record["case"], "fp256");
    assert_eq!(record["views"], 1);
    let centre = record["centre_ray"].as_f64().unwrap();
    assert!((centre - 6.040).abs() < 5e-4, "centre ray {centre}");
    // A CPU record names its lane path, and a vector path how its lanes gather.
    let lanes = record["lanes"].as_str().unwrap();
    let gather = record.get("gather").and_then(|g| g.as_str());
    match lanes {
        "scalar" => assert_eq!(gather, None, "{line}"),
        "avx2" | "avx512" => assert!(matches!(gather, Some("instruction" | "loads")), "{line}"),
        other => panic!("unknown lane path {other}"),
    }
}

#[test]
fn bench_times_backprojection_and_fdk_with_their_own_fields() {
    let dir = tempfile::tempdir().unwrap();
    let output = xray(
        &[
            "bench",
            "--case",
            "fp256",
            "--op",
            "backproject",
            "--op",
            "fdk",
            "--views",
            "1",
            "--repeats",
            "1",
            "--backend",
            "cpu",
            "--json",
        ],
        dir.path(),
    );
    ok(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{text}");
    assert_eq!(records[0]["op"], "backproject");
    assert!(
        records[0]["rays_per_second"].as_f64().unwrap() > 0.0,
        "{text}"
    );
    assert_eq!(records[1]["op"], "fdk");
    assert!(
        records[1]["voxel_updates_per_second"].as_f64().unwrap() > 0.0,
        "{text}"
    );
    for record in &records {
        assert!(record.get("centre_ray").is_none(), "{text}");
        assert!(
            record["centre_voxel"].as_f64().unwrap().is_finite(),
            "{text}"
        );
    }
    // One view of the nested ellipsoids backprojects to a positive centre voxel.
    assert!(records[0]["centre_voxel"].as_f64().unwrap() > 0.0, "{text}");
}

/// `xray info`'s standard output with the environment variable `variable` set to
/// `value` (removed where `None`).
fn info_with(dir: &Path, variable: &str, value: Option<&str>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xray"));
    command.arg("info").current_dir(dir);
    match value {
        Some(value) => command.env(variable, value),
        None => command.env_remove(variable),
    };
    let output = command.output().expect("the xray binary runs");
    ok(&output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn info_names_the_cpu_lane_path_and_gather_and_the_variables_choose_them() {
    let dir = tempfile::tempdir().unwrap();
    let output = xray(&["info"], dir.path());
    ok(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let cpu = stdout.lines().find(|l| l.starts_with("cpu")).unwrap();
    assert!(
        ["; avx512 lanes", "; avx2 lanes", "; scalar lanes"]
            .iter()
            .any(|path| cpu.contains(path)),
        "{cpu}"
    );
    let capped = info_with(
        dir.path(),
        xray_projector::CPU_LANES_VARIABLE,
        Some("scalar"),
    );
    assert!(capped.contains("; scalar lanes"), "{capped}");
    // A vector path names how its lanes gather, and XRAY_CPU_GATHER chooses it.
    if !cpu.contains("; scalar lanes") {
        assert!(
            cpu.contains("gathers by instruction") || cpu.contains("gathers by loads"),
            "{cpu}"
        );
        let gather = xray_projector::CPU_GATHER_VARIABLE;
        for way in ["loads", "instruction"] {
            let chosen = info_with(dir.path(), gather, Some(way));
            assert!(chosen.contains(&format!("gathers by {way}")), "{chosen}");
        }
        // An unknown way is ignored with a warning: the CPU's own way runs.
        let own_way = if info_with(dir.path(), gather, None).contains("gathers by instruction") {
            "instruction"
        } else {
            "loads"
        };
        let unknown = info_with(dir.path(), gather, Some("sideways"));
        assert!(
            unknown.contains(&format!("gathers by {own_way}")),
            "{unknown}"
        );
    }
}

#[test]
fn backproject_is_the_library_transpose_and_checks_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let geometry = CircularScan::new(500.0, 800.0, 6, [12, 16], 3.0)
        .starting_at(10f64.to_radians())
        .geometry()
        .unwrap();
    let projections = Array3::from_shape_fn(geometry.shape(), |(v, r, c)| {
        (v + 2 * r + 3 * c) as f32 * 0.01
    });
    write_npy(dir.path().join("p.npy"), &projections).unwrap();
    let scanner = [
        "--sod", "500", "--sdd", "800", "--det", "12x16", "--pixel", "3", "--angle", "10",
    ];
    let mut args = vec![
        "backproject",
        "--projections",
        "p.npy",
        "--shape",
        "10,12,8",
        "--spacing",
        "4,3,5",
        "--method",
        "joseph",
        "--backend",
        "cpu",
        "--out",
        "bp.npy",
    ];
    args.extend(scanner);
    ok(&xray(&args, dir.path()));
    let got: Array3<f32> = read_npy(dir.path().join("bp.npy")).unwrap();
    let grid = VolumeGeometry::centered([8, 12, 10], [4.0, 3.0, 5.0]);
    let want = Projector::new(Backend::Cpu)
        .unwrap()
        .backward(&projections, &geometry, &grid, Method::Joseph)
        .unwrap();
    assert_eq!(got, want);
    // A detector that does not match the stack is refused, naming both shapes.
    let mut wrong = vec![
        "backproject",
        "--projections",
        "p.npy",
        "--det",
        "12x15",
        "--out",
        "other.npy",
    ];
    wrong.extend(["--backend", "cpu"]);
    fails_with(&xray(&wrong, dir.path()), "[6, 12, 16]");
    assert!(!dir.path().join("other.npy").exists());
}

#[test]
fn recon_matches_the_library_for_each_algorithm_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let scan = CircularScan {
        arc: 210f64.to_radians(),
        ..CircularScan::new(300.0, 450.0, 40, [24, 32], 3.0)
    };
    let grid = VolumeGeometry::centered([16, 16, 16], [3.0, 3.0, 3.0]);
    let phantom = Phantom::uniform_box([-15.0; 3], [15.0; 3], 0.02);
    let projections = phantom.project(&scan.geometry().unwrap()).unwrap();
    write_npy(dir.path().join("p.npy"), &projections).unwrap();
    let common = [
        "recon",
        "--projections",
        "p.npy",
        "--sod",
        "300",
        "--sdd",
        "450",
        "--det",
        "24x32",
        "--pixel",
        "3",
        "--arc",
        "210",
        "--shape",
        "16,16,16",
        "--spacing",
        "3,3,3",
        "--backend",
        "cpu",
    ];
    let projector = Projector::new(Backend::Cpu).unwrap();
    let run = |extra: &[&str], out: &str| -> Array3<f32> {
        let mut args = common.to_vec();
        args.extend(extra);
        args.extend(["--out", out]);
        ok(&xray(&args, dir.path()));
        read_npy(dir.path().join(out)).unwrap()
    };

    let fdk = run(&["--filter", "hann"], "fdk.npy");
    let want = xray_projector::recon::fdk(
        &projector,
        &projections,
        &scan,
        &grid,
        xray_projector::recon::Filter::Hann,
    )
    .unwrap();
    assert_eq!(fdk, want);

    let cgls = run(
        &[
            "--algorithm",
            "cgls",
            "--iterations",
            "4",
            "--method",
            "joseph",
        ],
        "cgls.npy",
    );
    let options = xray_projector::recon::IterativeOptions {
        method: Method::Joseph,
        iterations: 4,
        ..Default::default()
    };
    let want = xray_projector::recon::cgls(
        &projector,
        &projections,
        &scan.geometry().unwrap(),
        &grid,
        &options,
        |_| std::ops::ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(cgls, want.volume);

    // FDK needs 180 degrees plus the fan angle; the error says so and nothing is written.
    let mut short = common.to_vec();
    short.extend(["--arc", "150", "--out", "short.npy"]);
    let position = short.iter().position(|a| *a == "210").unwrap();
    short.remove(position);
    short.remove(position - 1);
    fails_with(&xray(&short, dir.path()), "plus the fan angle");
    assert!(!dir.path().join("short.npy").exists());
}

#[test]
fn drr_of_a_dicom_ct_in_hu_equals_the_library_and_writes_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let series = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dicom_shuffled");
    let series = series.to_str().unwrap();
    let drr = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "drr", "--volume", series, "--hu", "--det", "16x16", "--pixel", "0.5", "--out", out,
        ];
        args.extend_from_slice(extra);
        xray(&args, dir.path())
    };
    ok(&drr("d.npy", &[]));
    // The library: read, HU to mu, centre, project.
    let loaded = xray_projector::io::read_volume(
        Path::new(series),
        &xray_projector::io::ReadOptions::default(),
    )
    .unwrap();
    let mut mu = loaded.data.clone();
    xray_projector::hounsfield::HuToMu::default()
        .apply(&mut mu)
        .unwrap();
    let geometry = CircularScan::new(1000.0, 1500.0, 1, [16, 16], 0.5)
        .geometry()
        .unwrap();
    let want = Projector::new(Backend::Cpu)
        .unwrap()
        .forward(&mu, &loaded.grid.recentred(), &geometry, Method::Siddon)
        .unwrap();
    let got: Array2<f32> = read_npy(dir.path().join("d.npy")).unwrap();
    assert_eq!(got, want.index_axis(ndarray::Axis(0), 0));
    assert!(want.iter().any(|&p| p > 1e-3), "the rays cross the volume");
    // --world keeps the series where it is (x = 17..20 mm, off the central ray).
    ok(&drr("w.npy", &["--world"]));
    let world: Array2<f32> = read_npy(dir.path().join("w.npy")).unwrap();
    assert_ne!(world, got);
    for out in ["d.tif", "d.nii.gz", "d.png"] {
        ok(&drr(out, &["--percentiles", "1,99"]));
        assert!(dir.path().join(out).exists(), "{out}");
    }
    fails_with(&drr("x.png", &["--window", "5,1"]), "LOW < HIGH");
    fails_with(&drr("d.mha", &[]), "writes only");
    fails_with(
        &xray(
            &["drr", "--volume", series, "--spacing", "1,1,1"],
            dir.path(),
        ),
        "records its own voxel size",
    );
}

#[test]
fn recon_and_project_write_volumes_and_stacks_in_the_other_formats() {
    let dir = tempfile::tempdir().unwrap();
    let scan = [
        "--det", "24x24", "--pixel", "2", "--sod", "500", "--sdd", "800",
    ];
    let mut project = vec![
        "project",
        "--phantom",
        "box",
        "--size",
        "16",
        "--views",
        "12",
    ];
    project.extend_from_slice(&scan);
    for out in ["p.npy", "p.tif", "p.nii"] {
        let mut args = project.clone();
        args.extend_from_slice(&["--out", out]);
        ok(&xray(&args, dir.path()));
    }
    for out in ["r.nii.gz", "r.mha", "r.mhd"] {
        let mut args = vec![
            "recon",
            "--projections",
            "p.npy",
            "--shape",
            "8,8,8",
            "--spacing",
            "4,4,4",
            "--algorithm",
            "cgls",
            "--iterations",
            "2",
            "--out",
            out,
        ];
        args.extend_from_slice(&scan);
        ok(&xray(&args, dir.path()));
        let back = xray_projector::io::read_volume(
            &dir.path().join(out),
            &xray_projector::io::ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(back.data.dim(), (8, 8, 8), "{out}");
        assert!(
            (back.grid.voxel_centre([0, 0, 0])[0] + 14.0).abs() < 1e-4,
            "{out}"
        );
    }
}

#[test]
fn project_with_max_memory_streams_a_volume_larger_than_its_budget() {
    // A 64 MiB volume projected with a 8 MiB budget: read by slabs of slices from the
    // mapped file, written by batches of views. The resident set stays far below the
    // volume (the binary and its threads take the rest), and the result is the
    // in-memory projection's to the slab bound of host/executor/tests.rs.
    let dir = tempfile::tempdir().unwrap();
    let shape = (256, 256, 256);
    let mut volume = Array3::<f32>::from_elem(shape, 0.01);
    volume
        .slice_mut(ndarray::s![40..200, 60..180, 30..220])
        .fill(0.03);
    write_npy(dir.path().join("big.npy"), &volume).unwrap();
    drop(volume);
    let common = [
        "project",
        "--volume",
        "big.npy",
        "--spacing",
        "1,1,1",
        "--views",
        "5",
        "--det",
        "24x40",
        "--pixel",
        "10",
        "--sod",
        "600",
        "--sdd",
        "900",
        "--backend",
        "cpu",
    ];
    let streamed = xray(
        &[
            &common[..],
            &["--max-memory", "8M", "--out", "streamed.npy"],
        ]
        .concat(),
        dir.path(),
    );
    ok(&streamed);
    let log = String::from_utf8_lossy(&streamed.stderr);
    let peak_kib: u64 = log
        .lines()
        .find_map(|line| line.strip_prefix("peak resident set: "))
        .and_then(|rest| rest.trim_end_matches(" KiB").parse().ok())
        .unwrap_or_else(|| panic!("no peak resident set in: {log}"));
    eprintln!("streamed 64 MiB with --max-memory 8M: peak resident set {peak_kib} KiB");
    assert!(log.contains("slabs of at most"), "{log}");
    assert!(
        peak_kib < 40 << 10,
        "peak resident set {peak_kib} KiB: the 64 MiB volume must not be held"
    );
    ok(&xray(
        &[&common[..], &["--out", "whole.npy"]].concat(),
        dir.path(),
    ));
    let streamed: Array3<f32> = read_npy(dir.path().join("streamed.npy")).unwrap();
    let whole: Array3<f32> = read_npy(dir.path().join("whole.npy")).unwrap();
    assert_eq!(streamed.shape(), &[5, 24, 40]);
    let scale = whole.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = streamed
        .iter()
        .zip(&whole)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(scale > 1.0 && worst <= 1e-5 * scale, "{worst} of {scale}");
    // A budget below one slice and one view is refused, naming the option.
    fails_with(
        &xray(
            &[&common[..], &["--max-memory", "4K", "--out", "tiny.npy"]].concat(),
            dir.path(),
        ),
        "max_memory",
    );
    assert!(!dir.path().join("tiny.npy").exists());
}

/// Started by `mpirun -n 3` (as its environment tells), an `xray` built without feature
/// `mpi` refuses, rather than have three processes each write the whole output.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_refuses_to_run_as_one_of_several_mpi_processes() {
    let dir = tempfile::tempdir().unwrap();
    for variable in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
        let output = Command::new(env!("CARGO_BIN_EXE_xray"))
            .args(["project", "--views", "2", "--size", "16", "--out", "p.npy"])
            .current_dir(dir.path())
            .env(variable, "3")
            .output()
            .unwrap();
        fails_with(&output, "built without the `mpi` feature");
        assert!(!dir.path().join("p.npy").exists());
    }
    // As the only process (`mpirun -n 1`), it runs as it would alone.
    let output = Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(["project", "--views", "2", "--size", "16", "--out", "p.npy"])
        .current_dir(dir.path())
        .env("OMPI_COMM_WORLD_SIZE", "1")
        .output()
        .unwrap();
    ok(&output);
}

#[test]
fn spectrum_prints_the_beam_and_writes_lines_that_drr_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let output = xray(
        &[
            "spectrum", "--kvp", "80", "--filter", "2.5mm-al", "--out", "s.csv",
        ],
        dir.path(),
    );
    ok(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // SpekPy gives 2.734 mm Al and 42.90 keV for this beam (spectra-reference.csv).
    assert!(stdout.contains("half-value layer   2.7"), "{stdout}");
    assert!(stdout.contains("mean energy        42.9"), "{stdout}");
    fails_with(
        &xray(&["spectrum", "--kvp", "80", "--out", "s.csv"], dir.path()),
        "--force",
    );
    fails_with(&xray(&["spectrum"], dir.path()), "--kvp");
    // The written spectrum, unfiltered again, gives the tube's radiograph.
    let common = ["drr", "--size", "16", "--det", "8x8", "--pixel", "20"];
    ok(&xray(
        &[
            &common[..],
            &["--spectrum", "s.csv", "--filter", "none", "--out", "a.npy"],
        ]
        .concat(),
        dir.path(),
    ));
    ok(&xray(
        &[&common[..], &["--kvp", "80", "--out", "b.npy"]].concat(),
        dir.path(),
    ));
    let a: Array2<f32> = read_npy(dir.path().join("a.npy")).unwrap();
    let b: Array2<f32> = read_npy(dir.path().join("b.npy")).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} {y}");
    }
}

#[test]
fn scatter_is_the_librarys_with_the_gap_behind_the_volume_and_bad_gaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "drr",
        "--size",
        "32",
        "--det",
        "24x24",
        "--pixel",
        "12",
        "--raw-signal",
    ];
    let out = xray(
        &[&common[..], &["--scatter", "--out", "s.npy"]].concat(),
        dir.path(),
    );
    ok(&out);
    // The head's box (256 mm) is centred 500 mm before the detector: a 372 mm gap.
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("scatter (air gap 372 mm)"), "{report}");
    let got: Array2<f32> = read_npy(dir.path().join("s.npy")).unwrap();
    let grid = VolumeGeometry::centered([32; 3], [8.0; 3]);
    let head = xray_projector::phantom::MaterialPhantom::head();
    let maps = head.voxelize(&grid, 1).unwrap();
    let geometry = CircularScan::new(1000.0, 1500.0, 1, [24, 24], 12.0)
        .geometry()
        .unwrap();
    use xray_projector::physics::Scatter;
    let (model, p) = library_radiograph(&maps, head.absorbers(), &grid, &geometry);
    let views: Vec<_> = p.iter().map(|a| a.view()).collect();
    let primary = model.expected(&views, &geometry).unwrap();
    let model = model.with_scatter(Scatter::new(372.0).unwrap()).unwrap();
    assert_eq!(
        model.scatter(),
        Some(Scatter::behind(&grid, &geometry)),
        "the CLI's gap"
    );
    let want = model.expected(&views, &geometry).unwrap();
    for ((r, c), value) in got.indexed_iter() {
        assert_eq!(value.to_bits(), want[[0, r, c]].to_bits(), "pixel {r} {c}");
        assert!(*value > primary[[0, r, c]], "scatter adds at {r} {c}");
    }
    fails_with(
        &xray(
            &[&common[..], &["--scatter", "--air-gap", "900"]].concat(),
            dir.path(),
        ),
        "air gap",
    );
    fails_with(
        &xray(&[&common[..], &["--air-gap", "100"]].concat(), dir.path()),
        "--scatter",
    );
    fails_with(
        &xray(
            &[
                "drr",
                "--phantom",
                "shepp-logan",
                "--size",
                "8",
                "--scatter",
            ],
            dir.path(),
        ),
        "--scatter",
    );
    assert!(!dir.path().join("drr.png").exists());
}

#[test]
fn a_label_map_becomes_material_maps_as_the_library_makes_them() {
    let dir = tempfile::tempdir().unwrap();
    // Soft tissue (label 1) holding a bone block (label 2) in air (0).
    let labels = Array3::from_shape_fn((16, 16, 16), |(z, y, x)| {
        let inside = |lo: usize, hi: usize| [z, y, x].iter().all(|&i| (lo..hi).contains(&i));
        if inside(6, 10) {
            2.0f32
        } else if inside(2, 14) {
            1.0
        } else {
            0.0
        }
    });
    write_npy(dir.path().join("labels.npy"), &labels).unwrap();
    let common = [
        "drr",
        "--volume",
        "labels.npy",
        "--spacing",
        "4,4,4",
        "--det",
        "16x16",
        "--pixel",
        "8",
        "--raw-signal",
    ];
    let assign = ["--labels", "1=soft_tissue, 2=bone:1.85", "--kvp", "80"];
    ok(&xray(
        &[&common[..], &assign, &["--out", "l.npy"]].concat(),
        dir.path(),
    ));
    let got: Array2<f32> = read_npy(dir.path().join("l.npy")).unwrap();
    use xray_projector::physics::segmentation::{from_labels, LabelMaterial};
    use xray_projector::physics::*;
    let assignments = [
        LabelMaterial {
            label: 1,
            material: Material::SoftTissue,
            density: Material::SoftTissue.density(),
        },
        LabelMaterial {
            label: 2,
            material: Material::Bone,
            density: 1.85,
        },
    ];
    let maps = from_labels(labels.view(), &assignments).unwrap();
    let grid = VolumeGeometry::centered([16; 3], [4.0; 3]);
    let geometry = CircularScan::new(1000.0, 1500.0, 1, [16, 16], 8.0)
        .geometry()
        .unwrap();
    let absorbers = vec![
        Absorber::Material(Material::SoftTissue),
        Absorber::Material(Material::Bone),
    ];
    let (model, p) = library_radiograph(&maps, absorbers, &grid, &geometry);
    let views: Vec<_> = p.iter().map(|a| a.view()).collect();
    let want = model.expected(&views, &geometry).unwrap();
    for ((r, c), value) in got.indexed_iter() {
        assert_eq!(value.to_bits(), want[[0, r, c]].to_bits(), "pixel {r} {c}");
    }
    // The bone's shadow is darker than the tissue's alone.
    assert!(got[[8, 8]] < got[[8, 3]]);
    for (extra, message) in [
        (&["--labels", "1=soft_tissue,2=bone"][..], "add --kvp"),
        (
            &["--labels", "1=soft_tissue", "--kvp", "80"][..],
            "neither 0 nor an assigned label",
        ),
        (
            &["--labels", "1=unobtainium,2=bone", "--kvp", "80"][..],
            "unknown material",
        ),
        (
            &["--labels", "1:soft_tissue", "--kvp", "80"][..],
            "LABEL=MATERIAL",
        ),
        (&["--labels", "x=bone", "--kvp", "80"][..], "whole number"),
        (
            &["--labels", "1=bone:-2,2=bone", "--kvp", "80"][..],
            "positive",
        ),
        (&["--labels", "1=bone", "--hu", "--kvp", "80"][..], "--hu"),
    ] {
        fails_with(
            &xray(
                &[&common[..], extra, &["--out", "bad.npy"]].concat(),
                dir.path(),
            ),
            message,
        );
    }
    assert!(!dir.path().join("bad.npy").exists());
}
