//! `xray project|backproject|recon` under `mpirun -n 1`, `2` and `3` (Open MPI,
//! oversubscribed: this machine may have fewer cores): every rank count writes the
//! same bytes; projections and FDK are the single process's bytes, backprojections and
//! the iterative methods lie within a reordered f32 sum's bound of them. Needs feature
//! `mpi` and `mpirun` on the PATH (or `XRAY_MPIRUN`).

use std::path::Path;
use std::process::{Command, Output};

use xray_projector::io::{read_volume_npy, DEFAULT_MAX_BYTES};

const RANK_COUNTS: [usize; 3] = [1, 2, 3];

/// The scanner and grid every command here shares: 40 views, so 5 units of 8 views.
const SCANNER: &[&str] = &[
    "--det", "40x44", "--pixel", "3", "--sod", "300", "--sdd", "500",
];
const GRID: &[&str] = &["--shape", "44,40,36", "--spacing", "2,2,2"];

fn xray() -> &'static str {
    env!("CARGO_BIN_EXE_xray")
}

/// `xray args` alone, in `dir`.
fn alone(args: &[&str], dir: &Path) -> Output {
    Command::new(xray())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the xray binary runs")
}

/// `mpirun -n ranks xray args`, in `dir`.
fn under_mpirun(ranks: usize, args: &[&str], dir: &Path) -> Output {
    let mpirun = std::env::var("XRAY_MPIRUN").unwrap_or_else(|_| "mpirun".into());
    Command::new(&mpirun)
        .args(["--oversubscribe", "-n", &ranks.to_string(), xray()])
        .args(args)
        .current_dir(dir)
        // Open MPI refuses root (CI's containers) without these.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .unwrap_or_else(|e| panic!("{mpirun} runs (feature mpi needs Open MPI): {e}"))
}

#[track_caller]
fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `command` (its arguments but `--out`) alone into `single.npy` and on each rank count
/// into `ranks-N.npy`; asserts the rank counts wrote the same bytes and returns the
/// largest difference from the single process relative to its largest value.
fn compare(command: &[&str], dir: &Path) -> f32 {
    let with_out = |name: &str| -> Vec<String> {
        command
            .iter()
            .map(|s| s.to_string())
            .chain(["--out".into(), name.into(), "--force".into()])
            .collect()
    };
    let args = with_out("single.npy");
    ok(&alone(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        dir,
    ));
    let mut first: Option<Vec<u8>> = None;
    for ranks in RANK_COUNTS {
        let name = format!("ranks-{ranks}.npy");
        let args = with_out(&name);
        let output = under_mpirun(
            ranks,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            dir,
        );
        ok(&output);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.matches("wrote ").count(),
            1,
            "only the root writes and reports: {stderr}"
        );
        let written = bytes(&dir.join(&name));
        match &first {
            None => first = Some(written),
            Some(first) => assert!(
                &written == first,
                "{command:?}: {ranks} ranks wrote other bytes than 1 rank"
            ),
        }
    }
    let single = read_volume_npy(&dir.join("single.npy"), DEFAULT_MAX_BYTES).unwrap();
    let ranks = read_volume_npy(&dir.join("ranks-1.npy"), DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(single.shape(), ranks.shape());
    let largest = single.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = single
        .iter()
        .zip(&ranks)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let relative = diff / largest;
    println!("{command:?}: max |ranks - single| / max = {relative:.2e}");
    relative
}

/// A projection stack of the scanner's, written alone (the commands' input).
fn projections(dir: &Path) {
    let mut args = vec![
        "project",
        "--phantom",
        "shepp-logan",
        "--size",
        "40",
        "--views",
        "40",
    ];
    args.extend_from_slice(SCANNER);
    args.extend_from_slice(&["--out", "p.npy", "--force"]);
    ok(&alone(&args, dir));
}

fn args<'a>(head: &[&'a str], with_grid: bool) -> Vec<&'a str> {
    let mut all = head.to_vec();
    all.extend_from_slice(SCANNER);
    if with_grid {
        all.extend_from_slice(GRID);
    }
    all
}

#[test]
fn projections_are_the_single_process_bytes_on_every_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    for method in ["siddon", "joseph"] {
        let command = args(
            &[
                "project",
                "--phantom",
                "shepp-logan",
                "--size",
                "40",
                "--views",
                "40",
                "--method",
                method,
            ],
            false,
        );
        compare(&command, dir.path());
        let single = bytes(&dir.path().join("single.npy"));
        assert!(single == bytes(&dir.path().join("ranks-3.npy")), "{method}");
    }
}

#[test]
fn backprojections_are_the_same_bytes_on_every_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    projections(dir.path());
    for method in ["siddon", "joseph"] {
        let command = args(
            &["backproject", "--projections", "p.npy", "--method", method],
            true,
        );
        // The same terms as the single process's, added in another order.
        assert!(compare(&command, dir.path()) <= 1e-5, "{method}");
    }
}

#[test]
fn fdk_is_the_single_process_bytes_and_sirt_and_cgls_agree_on_every_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    projections(dir.path());
    let fdk = args(
        &["recon", "--projections", "p.npy", "--algorithm", "fdk"],
        true,
    );
    assert_eq!(compare(&fdk, dir.path()), 0.0);
    assert!(bytes(&dir.path().join("single.npy")) == bytes(&dir.path().join("ranks-2.npy")));
    for algorithm in ["sirt", "cgls"] {
        let command = args(
            &[
                "recon",
                "--projections",
                "p.npy",
                "--algorithm",
                algorithm,
                "--iterations",
                "4",
                "--method",
                "joseph",
            ],
            true,
        );
        assert!(compare(&command, dir.path()) <= 1e-4, "{algorithm}");
    }
}

#[test]
fn a_bad_view_on_one_rank_fails_every_rank_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    projections(dir.path());
    // A NaN in the last view, which only the last of 3 ranks reads.
    let mut stack = read_volume_npy(&dir.path().join("p.npy"), DEFAULT_MAX_BYTES).unwrap();
    stack[[39, 20, 20]] = f32::NAN;
    ndarray_npy::write_npy(dir.path().join("bad.npy"), &stack).unwrap();
    let mut command = args(&["backproject", "--projections", "bad.npy"], true);
    command.extend_from_slice(&["--out", "bp.npy"]);
    let output = under_mpirun(3, &command, dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("non-finite"), "{stderr}");
    assert!(
        stderr.contains("rank 2 failed"),
        "the others say who failed: {stderr}"
    );
    assert!(!dir.path().join("bp.npy").exists());
}
