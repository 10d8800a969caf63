//! The interpreter against the PTX ISA's definitions: small kernels written here run on
//! a fresh address space, and their results are compared with values computed
//! independently (f64 arithmetic correctly rounded to f32, IEEE rules, exact counts).
//! Also: what the memory checker must catch, and what loading must refuse.

use std::sync::Arc;

use cuda_emu::launch::{execute, LaunchFault, LaunchSpec, LaunchStats};
use cuda_emu::memory::{device_base, AddressSpace, Checks};
use cuda_emu::ptx::exec::FaultKind;
use cuda_emu::ptx::{self, Kernel};

const HEADER: &str = ".version 7.0\n.target sm_70\n.address_size 64\n";

/// A kernel `k(out, in, n)` whose body reads `in[i]`, `in[n + i]` into %f1, %f2
/// (as bits in %r1, %r2) and stores the body's result %r3 to `out[i]`, for thread i.
fn binary_kernel(body: &str) -> String {
    format!(
        "{HEADER}.visible .entry k(\n.param .u64 .ptr .align 1 k_param_0,\n.param .u64 .ptr .align 1 k_param_1,\n.param .u32 k_param_2\n)\n{{\n\
         .reg .pred %p<4>;\n.reg .b32 %r<16>;\n.reg .b64 %rd<8>;\n\
         ld.param.b64 %rd1, [k_param_0];\nld.param.b64 %rd2, [k_param_1];\nld.param.b32 %r10, [k_param_2];\n\
         mov.u32 %r11, %tid.x;\nmov.u32 %r12, %ctaid.x;\nmov.u32 %r13, %ntid.x;\nmad.lo.s32 %r11, %r12, %r13, %r11;\n\
         setp.ge.u32 %p1, %r11, %r10;\n@%p1 bra $L_end;\n\
         mul.wide.u32 %rd3, %r11, 4;\nadd.s64 %rd4, %rd2, %rd3;\nld.global.nc.b32 %r1, [%rd4];\n\
         mul.wide.u32 %rd5, %r10, 4;\nadd.s64 %rd6, %rd4, %rd5;\nld.global.nc.b32 %r2, [%rd6];\n\
         {body}\n\
         add.s64 %rd7, %rd1, %rd3;\nst.global.b32 [%rd7], %r3;\n$L_end:\nret;\n}}\n"
    )
}

/// Runs `kernel` over a 1-D grid of `grid` blocks of `block` threads on `space`'s
/// allocations, with every check on.
fn run_grid(
    kernel: &Kernel,
    space: &AddressSpace,
    grid: u32,
    block: u32,
    params: &[u8],
    workers: usize,
    profile: bool,
) -> (LaunchStats, Option<LaunchFault>) {
    let allocations = space.snapshot();
    execute(&LaunchSpec {
        kernel,
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        params,
        allocations: &allocations,
        freed: space.freed(),
        launch: 1,
        checks: Checks {
            init: true,
            hazards: true,
        },
        workers,
        max_steps: 1 << 20,
        profile,
    })
}

struct Run {
    out: Vec<u32>,
    stats: LaunchStats,
    fault: Option<LaunchFault>,
}

fn module(text: &str) -> Arc<Kernel> {
    let module = ptx::load(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Arc::clone(&module.kernels[0])
}

/// Runs `kernel(out, in, n)` over `n` threads (blocks of 64) with `a ++ b` as input.
fn run_binary(kernel: &Kernel, a: &[u32], b: &[u32]) -> Run {
    let n = a.len();
    let mut space = AddressSpace::new(device_base(0), 1 << 30, true);
    let out = space.allocate((n * 4) as u64).unwrap();
    let input = space.allocate((n * 8) as u64).unwrap();
    let bytes: Vec<u8> = a.iter().chain(b).flat_map(|v| v.to_le_bytes()).collect();
    let (allocation, _) = space.find(input, bytes.len() as u64).unwrap();
    allocation.write_bytes(0, &bytes);
    let mut params = Vec::new();
    params.extend_from_slice(&out.to_le_bytes());
    params.extend_from_slice(&input.to_le_bytes());
    params.extend_from_slice(&(n as u32).to_le_bytes());
    let (stats, fault) = run_grid(
        kernel,
        &space,
        (n as u32).div_ceil(64),
        64,
        &params,
        2,
        false,
    );
    let (allocation, _) = space.find(out, (n * 4) as u64).unwrap();
    let mut raw = vec![0u8; n * 4];
    allocation.read_into(0, &mut raw);
    let out = raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Run { out, stats, fault }
}

fn floats(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Hard cases: subnormals, signed zeros, infinities, NaN, values near rounding ties.
fn awkward_pairs() -> (Vec<f32>, Vec<f32>) {
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        3.0,
        0.1,
        1e-40,
        -3e-39,
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1.000_000_1,
        16_777_217.0,
        2.5,
        -2.5,
        0.5,
        7.0e-46,
    ];
    let mut a = Vec::new();
    let mut b = Vec::new();
    for x in specials {
        for y in specials {
            a.push(x);
            b.push(y);
        }
    }
    // Seeded pseudo-random bit patterns (xorshift), finite ones only.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while a.len() < 2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = f32::from_bits(state as u32);
        let y = f32::from_bits((state >> 32) as u32);
        if x.is_finite() && y.is_finite() {
            a.push(x);
            b.push(y);
        }
    }
    (a, b)
}

/// The f32 nearest to an f64 result (ties to even): f64 is exact for f32 +, -, *
/// and correctly rounded for / and sqrt, and rounding f64 to f32 then is exactly
/// the correctly rounded f32 result (double rounding is innocuous for these, since
/// 53 >= 2 * 24 + 2).
fn reference(op: &str, x: f32, y: f32) -> f32 {
    let (x, y) = (f64::from(x), f64::from(y));
    (match op {
        "add" => x + y,
        "sub" => x - y,
        "mul" => x * y,
        "div" => x / y,
        "sqrt" => x.sqrt(),
        "rcp" => 1.0 / x,
        _ => unreachable!(),
    }) as f32
}

fn same_float(got: u32, want: f32) -> bool {
    if want.is_nan() {
        got == 0x7fff_ffff
    } else {
        got == want.to_bits()
    }
}

#[test]
fn f32_arithmetic_is_correctly_rounded_with_canonical_nans() {
    let (a, b) = awkward_pairs();
    for (op, body) in [
        ("add", "add.rn.f32 %r3, %r1, %r2;"),
        ("sub", "sub.rn.f32 %r3, %r1, %r2;"),
        ("mul", "mul.rn.f32 %r3, %r1, %r2;"),
        ("div", "div.rn.f32 %r3, %r1, %r2;"),
        ("sqrt", "sqrt.rn.f32 %r3, %r1;"),
        ("rcp", "rcp.rn.f32 %r3, %r1;"),
    ] {
        let kernel = module(&binary_kernel(body));
        let run = run_binary(&kernel, &floats(&a), &floats(&b));
        assert!(run.fault.is_none(), "{op}: {:?}", run.fault);
        for i in 0..a.len() {
            let want = reference(op, a[i], b[i]);
            assert!(
                same_float(run.out[i], want),
                "{op}({:e}, {:e}): got {:#x}, want {:e} ({:#x})",
                a[i],
                b[i],
                run.out[i],
                want,
                want.to_bits()
            );
        }
    }
}

#[test]
fn fma_rounds_once_and_mul_add_twice() {
    // x*x - x*x with x = 1 + 2^-12: exact square 1 + 2^-11 + 2^-24 does not fit in f32.
    let x = 1.0f32 + f32::powi(2.0, -12);
    let product = x * x; // rounded
    let fused = module(&binary_kernel(
        "neg.f32 %r4, %r2;\nfma.rn.f32 %r3, %r1, %r1, %r4;",
    ));
    let run = run_binary(&fused, &floats(&[x]), &floats(&[product]));
    let exact = f64::from(x) * f64::from(x) - f64::from(product);
    assert_eq!(f32::from_bits(run.out[0]), exact as f32);
    assert_ne!(exact, 0.0);
    let separate = module(&binary_kernel(
        "mul.rn.f32 %r4, %r1, %r1;\nsub.rn.f32 %r3, %r4, %r2;",
    ));
    let run = run_binary(&separate, &floats(&[x]), &floats(&[product]));
    assert_eq!(
        f32::from_bits(run.out[0]),
        0.0,
        "mul then sub must not fuse"
    );
}

#[test]
fn subnormals_are_kept_unless_ftz() {
    let tiny = 1e-40f32;
    let kept = module(&binary_kernel("add.rn.f32 %r3, %r1, %r2;"));
    let run = run_binary(&kept, &floats(&[tiny]), &floats(&[tiny]));
    assert_eq!(f32::from_bits(run.out[0]), reference("add", tiny, tiny));
    assert!(f32::from_bits(run.out[0]).is_subnormal());
    let flushed = module(&binary_kernel("add.rn.ftz.f32 %r3, %r1, %r2;"));
    let run = run_binary(&flushed, &floats(&[tiny, -tiny]), &floats(&[tiny, -0.0]));
    assert_eq!(run.out[0], 0);
    assert_eq!(
        run.out[1], 0x8000_0000,
        "-tiny flushes to -0, and -0 + -0 is -0"
    );
    let unflushed = run_binary(&kept, &floats(&[-tiny]), &floats(&[-0.0]));
    assert_eq!(f32::from_bits(unflushed.out[0]), -tiny);
}

#[test]
fn float_to_integer_conversions_round_saturate_and_map_nan_to_zero() {
    let inputs = [
        2.5f32,
        -2.5,
        3.5,
        -0.7,
        1e10,
        -1e10,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        2_147_483_520.0,
        -2_147_483_648.0,
        0.49999997,
    ];
    let zeros = vec![0f32; inputs.len()];
    for (modifier, f) in [
        ("rni", f64::round_ties_even as fn(f64) -> f64),
        ("rzi", f64::trunc),
        ("rmi", f64::floor),
        ("rpi", f64::ceil),
    ] {
        let kernel = module(&binary_kernel(&format!("cvt.{modifier}.s32.f32 %r3, %r1;")));
        let run = run_binary(&kernel, &floats(&inputs), &floats(&zeros));
        for (i, x) in inputs.iter().enumerate() {
            let want: i32 = if x.is_nan() {
                0
            } else {
                let r = f(f64::from(*x));
                r.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
            };
            assert_eq!(run.out[i] as i32, want, "cvt.{modifier}.s32.f32({x})");
        }
        let kernel = module(&binary_kernel(&format!("cvt.{modifier}.f32.f32 %r3, %r1;")));
        let run = run_binary(&kernel, &floats(&inputs), &floats(&zeros));
        for (i, x) in inputs.iter().enumerate() {
            assert!(
                same_float(run.out[i], f(f64::from(*x)) as f32),
                "cvt.{modifier}.f32.f32({x})"
            );
        }
    }
    let kernel = module(&binary_kernel("cvt.rzi.u32.f32 %r3, %r1;"));
    let run = run_binary(&kernel, &floats(&[-5.0, 5e9, f32::NAN]), &floats(&[0.0; 3]));
    assert_eq!(run.out, vec![0, u32::MAX, 0]);
}

#[test]
fn compares_follow_ieee_ordered_and_unordered_rules() {
    let a = [1.0f32, f32::NAN, 1.0, -0.0, f32::NAN];
    let b = [2.0f32, 1.0, f32::NAN, 0.0, f32::NAN];
    for (cmp, want) in [
        ("lt", [1, 0, 0, 0, 0]),
        ("ltu", [1, 1, 1, 0, 1]),
        ("eq", [0, 0, 0, 1, 0]),
        ("ne", [1, 0, 0, 0, 0]),
        ("neu", [1, 1, 1, 0, 1]),
        ("geu", [0, 1, 1, 1, 1]),
        ("nan", [0, 1, 1, 0, 1]),
        ("num", [1, 0, 0, 1, 0]),
    ] {
        let kernel = module(&binary_kernel(&format!(
            "setp.{cmp}.f32 %p2, %r1, %r2;\nselp.b32 %r3, 1, 0, %p2;"
        )));
        let run = run_binary(&kernel, &floats(&a), &floats(&b));
        assert_eq!(run.out, want.to_vec(), "setp.{cmp}.f32");
    }
}

#[test]
fn min_and_max_prefer_numbers_to_nan() {
    let a = [1.0f32, f32::NAN, f32::NAN, -0.0, 3.0];
    let b = [f32::NAN, 2.0, f32::NAN, 0.0, -4.0];
    let min = run_binary(
        &module(&binary_kernel("min.f32 %r3, %r1, %r2;")),
        &floats(&a),
        &floats(&b),
    );
    assert_eq!(
        min.out,
        vec![
            1f32.to_bits(),
            2f32.to_bits(),
            0x7fff_ffff,
            (-0f32).to_bits(),
            (-4f32).to_bits()
        ]
    );
    let max = run_binary(
        &module(&binary_kernel("max.f32 %r3, %r1, %r2;")),
        &floats(&a),
        &floats(&b),
    );
    assert_eq!(
        max.out,
        vec![
            1f32.to_bits(),
            2f32.to_bits(),
            0x7fff_ffff,
            0,
            3f32.to_bits()
        ]
    );
}

#[test]
fn integer_arithmetic_wraps_and_shifts_saturate() {
    let a = [u32::MAX, 7, 0x8000_0000, 5, 1];
    let b = [1u32, 40, 31, 2, 32];
    let add = run_binary(&module(&binary_kernel("add.s32 %r3, %r1, %r2;")), &a, &b);
    assert_eq!(add.out, vec![0, 47, 0x8000_001f, 7, 33]);
    let shl = run_binary(&module(&binary_kernel("shl.b32 %r3, %r1, %r2;")), &a, &b);
    assert_eq!(shl.out, vec![0xffff_fffe, 0, 0, 20, 0]);
    let sar = run_binary(&module(&binary_kernel("shr.s32 %r3, %r1, %r2;")), &a, &b);
    assert_eq!(sar.out, vec![u32::MAX, 0, u32::MAX, 1, 0]);
    let hi = run_binary(&module(&binary_kernel("mul.hi.u32 %r3, %r1, %r2;")), &a, &b);
    assert_eq!(hi.out, vec![0, 0, 15, 0, 0]);
    let max = run_binary(&module(&binary_kernel("max.s32 %r3, %r1, %r2;")), &a, &b);
    assert_eq!(max.out, vec![1, 40, 31, 5, 32]);
}

/// A kernel in which every thread adds 1.0 to out[0] atomically, `per_thread` times.
fn atomic_kernel() -> String {
    format!(
        "{HEADER}.visible .entry k(\n.param .u64 .ptr .align 1 k_param_0,\n.param .u64 .ptr .align 1 k_param_1,\n.param .u32 k_param_2\n)\n{{\n\
         .reg .pred %p<2>;\n.reg .b32 %r<4>;\n.reg .b64 %rd<2>;\n\
         ld.param.b64 %rd1, [k_param_0];\nld.param.b32 %r1, [k_param_2];\nmov.b32 %r2, 0;\n\
         $L_loop:\nred.global.add.f32 [%rd1], 0f3F800000;\nadd.s32 %r2, %r2, 1;\n\
         setp.lt.u32 %p1, %r2, %r1;\n@%p1 bra $L_loop;\nret;\n}}\n"
    )
}

#[test]
fn atomics_are_atomic_across_parallel_blocks() {
    let kernel = module(&atomic_kernel());
    let mut space = AddressSpace::new(device_base(0), 1 << 30, true);
    let out = space.allocate(4).unwrap();
    space.find(out, 4).unwrap().0.fill_bytes(0, 4, 0);
    let mut params = Vec::new();
    params.extend_from_slice(&out.to_le_bytes());
    params.extend_from_slice(&out.to_le_bytes());
    params.extend_from_slice(&16u32.to_le_bytes());
    let (stats, fault) = run_grid(&kernel, &space, 64, 128, &params, 4, false);
    assert!(fault.is_none(), "{fault:?}");
    let mut raw = [0u8; 4];
    space.find(out, 4).unwrap().0.read_into(0, &mut raw);
    // 131072 increments: exactly representable, so any lost update would show.
    assert_eq!(f32::from_le_bytes(raw), 64.0 * 128.0 * 16.0);
    assert_eq!(stats.threads, 64 * 128);
}

fn fault_of(run: &Run) -> &FaultKind {
    &run.fault
        .as_ref()
        .expect("the launch must fault")
        .fault
        .kind
}

#[test]
fn reads_past_an_allocation_fail_with_the_address_and_line() {
    // Thread i reads in[n + i]: the last thread of n + 1 reads past the 8n bytes.
    let kernel = module(&binary_kernel("add.s32 %r3, %r1, %r2;"));
    // The input holds 2 * 9 values but the kernel is told n = 10: thread 8 reads
    // in[18], the word just past the end.
    let a = vec![1u32; 9];
    let run = run_binary_with_n(&kernel, &a, &a, 10);
    match fault_of(&run) {
        FaultKind::IllegalAddress { access, detail, .. } => {
            assert_eq!(*access, "read");
            assert!(
                detail.contains("after the end") || detail.contains("straddling"),
                "{detail}"
            );
        }
        other => panic!("expected an illegal address, got {other:?}"),
    }
    // The fault names the PTX line of the second load, in[n + i].
    let fault = run.fault.as_ref().unwrap();
    let text = binary_kernel("add.s32 %r3, %r1, %r2;");
    let second_load = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("ld.global.nc.b32"))
        .nth(1)
        .map(|(i, _)| i as u32 + 1)
        .unwrap();
    assert_eq!(kernel.lines[fault.fault.pc as usize], second_load);
}

/// As `run_binary` but the kernel is told `n` threads (may exceed the input).
fn run_binary_with_n(kernel: &Kernel, a: &[u32], b: &[u32], n: u32) -> Run {
    let mut space = AddressSpace::new(device_base(0), 1 << 30, true);
    let out = space.allocate(u64::from(n) * 4).unwrap();
    let input = space.allocate((a.len() * 8) as u64).unwrap();
    let bytes: Vec<u8> = a.iter().chain(b).flat_map(|v| v.to_le_bytes()).collect();
    space
        .find(input, bytes.len() as u64)
        .unwrap()
        .0
        .write_bytes(0, &bytes);
    let mut params = Vec::new();
    params.extend_from_slice(&out.to_le_bytes());
    params.extend_from_slice(&input.to_le_bytes());
    params.extend_from_slice(&n.to_le_bytes());
    let (stats, fault) = run_grid(kernel, &space, n.div_ceil(64), 64, &params, 1, false);
    Run {
        out: Vec::new(),
        stats,
        fault,
    }
}

#[test]
fn uninitialised_reads_are_reported() {
    let kernel = module(&binary_kernel("add.s32 %r3, %r1, %r2;"));
    let mut space = AddressSpace::new(device_base(0), 1 << 30, true);
    let out = space.allocate(4).unwrap();
    let input = space.allocate(8).unwrap();
    // Only the first word of the input is written.
    space
        .find(input, 4)
        .unwrap()
        .0
        .write_bytes(0, &[1, 0, 0, 0]);
    let mut params = Vec::new();
    params.extend_from_slice(&out.to_le_bytes());
    params.extend_from_slice(&input.to_le_bytes());
    params.extend_from_slice(&1u32.to_le_bytes());
    let (_, fault) = run_grid(&kernel, &space, 1, 1, &params, 1, false);
    match fault.map(|f| f.fault.kind) {
        Some(FaultKind::Hazard { what, address }) => {
            assert!(what.contains("uninitialised"), "{what}");
            assert_eq!(address, input + 4);
        }
        other => panic!("expected an initcheck report, got {other:?}"),
    }
}

#[test]
fn two_threads_storing_to_one_address_is_a_race() {
    // Every thread stores to out[0].
    let text = binary_kernel("add.s32 %r3, %r1, %r2;")
        .replace("add.s64 %rd7, %rd1, %rd3;", "mov.b64 %rd7, %rd1;");
    let kernel = module(&text);
    let run = run_binary(&kernel, &[1, 2], &[3, 4]);
    match fault_of(&run) {
        FaultKind::Hazard { what, .. } => assert!(what.contains("two threads"), "{what}"),
        other => panic!("expected a race report, got {other:?}"),
    }
}

#[test]
fn writing_memory_the_launch_reads_through_nc_is_reported() {
    // Thread i stores its result into in[i], which it (and others) read with .nc.
    let text = binary_kernel("add.s32 %r3, %r1, %r2;")
        .replace("add.s64 %rd7, %rd1, %rd3;", "mov.b64 %rd7, %rd4;");
    let kernel = module(&text);
    let run = run_binary(&kernel, &[1, 2, 3], &[3, 4, 5]);
    match fault_of(&run) {
        FaultKind::Hazard { what, .. } => assert!(what.contains("ld.global.nc"), "{what}"),
        other => panic!("expected an .nc hazard, got {other:?}"),
    }
}

#[test]
fn unimplemented_ptx_is_refused_at_load_with_its_line() {
    for (body, needle) in [
        ("bar.sync 0;\nadd.s32 %r3, %r1, %r2;", "bar.sync"),
        ("div.approx.f32 %r3, %r1, %r2;", ".approx"),
        ("mov.u32 %r3, %laneid;", "%laneid"),
        ("add.f16 %r3, %r1, %r2;", ".f16"),
        ("shfl.sync.idx.b32 %r3, %r1, 0, 31, -1;", "shfl"),
        ("add.s64 %r3, %r1, %r2;", "32-bit"),
    ] {
        let text = binary_kernel(body);
        let error = ptx::load(&text).expect_err(body);
        assert!(error.message.contains(needle), "{body}: {}", error.message);
        let want_line = text
            .lines()
            .position(|l| l.contains(body.lines().next().unwrap()))
            .unwrap() as u32
            + 1;
        assert_eq!(error.line, want_line, "{body}: {error}");
    }
}

#[test]
fn the_projects_ptx_loads_with_every_kernel() {
    let text = include_str!("../../kernels/xray_kernels.ptx");
    let module = ptx::load(text).unwrap();
    let names: Vec<&str> = module.kernels.iter().map(|k| k.name.as_str()).collect();
    for name in [
        "xray_forward_siddon",
        "xray_forward_joseph",
        "xray_backward_siddon",
        "xray_backward_joseph",
        "xray_fdk_backproject",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn stats_count_every_instruction() {
    let kernel = module(&binary_kernel("add.s32 %r3, %r1, %r2;"));
    let run = run_binary(&kernel, &[1; 100], &[2; 100]);
    assert_eq!(run.out, vec![3; 100]);
    // 19 instructions per active thread (counted in `binary_kernel`); the 28 idle
    // threads of the second block run 9, branch, and `ret`: 10.
    assert_eq!(run.stats.threads, 128);
    assert_eq!(run.stats.max_per_thread, 19);
    assert_eq!(run.stats.instructions, 100 * 19 + 28 * 10);
}

/// A kernel `k(out, in, n)` over 64-bit values: thread i reads the 64-bit `in[i]` and
/// `in[n + i]` into %rd10, %rd11 and stores %rd12 to the 64-bit `out[i]`.
fn binary_kernel_64(body: &str) -> String {
    format!(
        "{HEADER}.visible .entry k(\n.param .u64 .ptr .align 1 k_param_0,\n.param .u64 .ptr .align 1 k_param_1,\n.param .u32 k_param_2\n)\n{{\n\
         .reg .pred %p<4>;\n.reg .b32 %r<16>;\n.reg .b64 %rd<16>;\n\
         ld.param.b64 %rd1, [k_param_0];\nld.param.b64 %rd2, [k_param_1];\nld.param.b32 %r10, [k_param_2];\n\
         mov.u32 %r11, %tid.x;\n\
         setp.ge.u32 %p1, %r11, %r10;\n@%p1 bra $L_end;\n\
         mul.wide.u32 %rd3, %r11, 8;\nadd.s64 %rd4, %rd2, %rd3;\nld.global.b64 %rd10, [%rd4];\n\
         mul.wide.u32 %rd5, %r10, 8;\nadd.s64 %rd6, %rd4, %rd5;\nld.global.b64 %rd11, [%rd6];\n\
         cvt.u32.u64 %r1, %rd10;\ncvt.u32.u64 %r2, %rd11;\n\
         {body}\n\
         add.s64 %rd7, %rd1, %rd3;\nst.global.b64 [%rd7], %rd12;\n$L_end:\nret;\n}}\n"
    )
}

fn run_64(body: &str, a: &[u64], b: &[u64]) -> Vec<u64> {
    let kernel = module(&binary_kernel_64(body));
    let n = a.len();
    let mut space = AddressSpace::new(device_base(0), 1 << 30, true);
    let out = space.allocate((n * 8) as u64).unwrap();
    let input = space.allocate((n * 16) as u64).unwrap();
    let bytes: Vec<u8> = a.iter().chain(b).flat_map(|v| v.to_le_bytes()).collect();
    space
        .find(input, bytes.len() as u64)
        .unwrap()
        .0
        .write_bytes(0, &bytes);
    let mut params = Vec::new();
    params.extend_from_slice(&out.to_le_bytes());
    params.extend_from_slice(&input.to_le_bytes());
    params.extend_from_slice(&(n as u32).to_le_bytes());
    let (_, fault) = run_grid(&kernel, &space, 1, n as u32, &params, 1, false);
    assert!(fault.is_none(), "{body}: {fault:?}");
    let mut raw = vec![0u8; n * 8];
    space
        .find(out, raw.len() as u64)
        .unwrap()
        .0
        .read_into(0, &mut raw);
    raw.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn four_byte_loads_into_64_bit_registers_extend_by_their_type() {
    // PTX lets `ld` write a register wider than its type (LLVM emits this for a `u32`
    // field read into a `usize`): `.u32`/`.b32` zero-extend, `.s32` sign-extends.
    let a = [0xFFFF_FFFF_8000_0001u64, 7];
    let b = [0u64, 0];
    assert_eq!(
        run_64("ld.global.u32 %rd12, [%rd4];", &a, &b),
        vec![0x8000_0001, 7]
    );
    assert_eq!(
        run_64("ld.global.b32 %rd12, [%rd4];", &a, &b),
        vec![0x8000_0001, 7]
    );
    assert_eq!(
        run_64("ld.global.s32 %rd12, [%rd4];", &a, &b),
        vec![0xFFFF_FFFF_8000_0001, 7]
    );
}

#[test]
fn wide_products_extensions_and_64_bit_shifts() {
    let a = [(-2i32) as u32 as u64, 0xffff_ffff, 0x8000_0000];
    let b = [3u64, 0xffff_ffff, 1];
    assert_eq!(
        run_64("mul.wide.s32 %rd12, %r1, %r2;", &a, &b),
        vec![0xffff_ffff_ffff_fffa, 1, 0xffff_ffff_8000_0000]
    );
    assert_eq!(
        run_64("mul.wide.u32 %rd12, %r1, %r2;", &a, &b),
        vec![0x2_ffff_fffa, 0xffff_fffe_0000_0001, 0x8000_0000]
    );
    assert_eq!(
        run_64(
            "mad.wide.s32 %rd12, %r1, %r2, %rd11;",
            &[u64::from(u32::MAX)],
            &[1]
        ),
        vec![0],
        "(-1) * 1 + 1"
    );
    assert_eq!(
        run_64("cvt.s64.s32 %rd12, %r1;", &[0x8000_0000], &[0]),
        vec![0xffff_ffff_8000_0000]
    );
    assert_eq!(
        run_64("cvt.u64.u32 %rd12, %r1;", &[0x8000_0000], &[0]),
        vec![0x8000_0000]
    );
    assert_eq!(
        run_64("shl.b64 %rd12, %rd10, %r2;", &[1, 1], &[63, 64]),
        vec![1 << 63, 0]
    );
    assert_eq!(
        run_64(
            "shr.s64 %rd12, %rd10, %r2;",
            &[(-8i64) as u64, 1 << 63],
            &[100, 1]
        ),
        vec![u64::MAX, 0xc000_0000_0000_0000]
    );
    assert_eq!(
        run_64(
            "shr.u32 %r3, %r1, %r2;\ncvt.u64.u32 %rd12, %r3;",
            &[u64::from(u32::MAX)],
            &[32]
        ),
        vec![0]
    );
}

#[test]
fn integer_to_float_conversions_round_to_nearest_even() {
    let got = run_64(
        "cvt.rn.f32.u32 %r3, %r1;\ncvt.u64.u32 %rd12, %r3;",
        &[16_777_217, 16_777_219, u64::from(u32::MAX)],
        &[0, 0, 0],
    );
    assert_eq!(got, vec![0x4b80_0000, 0x4b80_0002, 0x4f80_0000]);
    let got = run_64(
        "cvt.rn.f32.u64 %r3, %rd10;\ncvt.u64.u32 %rd12, %r3;",
        &[u64::MAX],
        &[0],
    );
    assert_eq!(got, vec![0x5f80_0000]);
    let got = run_64(
        "cvt.rn.f32.s64 %r3, %rd10;\ncvt.u64.u32 %rd12, %r3;",
        &[i64::MIN as u64],
        &[0],
    );
    assert_eq!(got, vec![0xdf00_0000]);
}

#[test]
fn guards_run_an_instruction_when_their_predicate_says() {
    let body = "mov.u32 %r3, 7;\nsetp.eq.u32 %p2, %r1, 1;\n@!%p2 mov.u32 %r3, 9;\n@%p2 add.s32 %r3, %r3, 1;";
    let run = run_binary(&module(&binary_kernel(body)), &[1, 0], &[0, 0]);
    assert_eq!(run.out, vec![8, 9]);
}

#[test]
fn more_compares_on_nan_and_signed_zeros() {
    let a = [1.0f32, f32::NAN, 1.0, -0.0, f32::NAN];
    let b = [2.0f32, 1.0, f32::NAN, 0.0, f32::NAN];
    for (cmp, want) in [
        ("le", [1, 0, 0, 1, 0]),
        ("gtu", [0, 1, 1, 0, 1]),
        ("equ", [0, 1, 1, 1, 1]),
    ] {
        let kernel = module(&binary_kernel(&format!(
            "setp.{cmp}.f32 %p2, %r1, %r2;\nselp.b32 %r3, 1, 0, %p2;"
        )));
        assert_eq!(
            run_binary(&kernel, &floats(&a), &floats(&b)).out,
            want.to_vec(),
            "setp.{cmp}"
        );
    }
}

#[test]
fn integer_literals_follow_ptx_bases_and_must_fit() {
    let run = run_binary(
        &module(&binary_kernel("add.s32 %r3, %r1, 010;")),
        &[1],
        &[0],
    );
    assert_eq!(run.out, vec![9], "010 is octal 8");
    let run = run_binary(
        &module(&binary_kernel("add.s32 %r3, %r1, 0b101;")),
        &[1],
        &[0],
    );
    assert_eq!(run.out, vec![6]);
    let run = run_binary(&module(&binary_kernel("add.s32 %r3, %r1, -1;")), &[1], &[0]);
    assert_eq!(run.out, vec![0]);
    let error = ptx::load(&binary_kernel("add.s32 %r3, %r1, 4294967296;")).unwrap_err();
    assert!(error.message.contains("does not fit"), "{error}");
}

#[test]
fn f32_arithmetic_without_rn_is_refused_because_ptxas_may_fuse_it() {
    for body in ["add.f32 %r3, %r1, %r2;", "mul.f32 %r3, %r1, %r2;"] {
        let error = ptx::load(&binary_kernel(body)).unwrap_err();
        assert!(error.message.contains("contract"), "{body}: {error}");
    }
}

#[test]
fn a_wild_address_near_the_top_of_memory_is_an_illegal_address() {
    // Index -1 from a null pointer: address + size wraps around to 0.
    let body = "mov.b64 %rd0, -4;\nld.global.b32 %r3, [%rd0];";
    let run = run_binary(&module(&binary_kernel(body)), &[1], &[1]);
    assert!(
        matches!(fault_of(&run), FaultKind::IllegalAddress { .. }),
        "{:?}",
        run.fault
    );
}

/// Runs a one-block kernel `k(p)` of `threads` threads on one 4-byte word at `p`,
/// set to `initial` first unless it is `None` (left unwritten).
fn run_on_word(body: &str, threads: u32, initial: Option<u32>) -> (u32, Option<LaunchFault>) {
    let text = format!(
        "{HEADER}.visible .entry k(\n.param .u64 .ptr .align 1 k_param_0\n)\n{{\n\
         .reg .pred %p<4>;\n.reg .b32 %r<8>;\n.reg .b64 %rd<4>;\n\
         ld.param.b64 %rd1, [k_param_0];\nmov.u32 %r1, %tid.x;\n{body}\nret;\n}}\n"
    );
    let kernel = module(&text);
    let mut space = AddressSpace::new(device_base(0), 1 << 30, true);
    let word = space.allocate(4).unwrap();
    if let Some(value) = initial {
        space
            .find(word, 4)
            .unwrap()
            .0
            .write_bytes(0, &value.to_le_bytes());
    }
    let params = word.to_le_bytes();
    let (_, fault) = run_grid(&kernel, &space, 1, threads, &params, 1, false);
    let mut raw = [0u8; 4];
    space.find(word, 4).unwrap().0.read_into(0, &mut raw);
    (u32::from_le_bytes(raw), fault)
}

#[test]
fn atomic_f32_adds_flush_subnormals_as_the_isa_says() {
    // 2^-127 + 2^-127 = 2^-126 unflushed; the ISA flushes inputs: 0.
    let (value, fault) = run_on_word(
        "red.global.add.f32 [%rd1], 0f00400000;",
        1,
        Some(0x0040_0000),
    );
    assert!(fault.is_none(), "{fault:?}");
    assert_eq!(value, 0);
    let (value, _) = run_on_word(
        "red.global.add.f32 [%rd1], 0f3F800000;",
        3,
        Some(0x4000_0000),
    );
    assert_eq!(f32::from_bits(value), 5.0);
}

#[test]
fn atomics_on_unwritten_memory_and_mixed_with_plain_stores_are_reported() {
    let (_, fault) = run_on_word("red.global.add.f32 [%rd1], 0f3F800000;", 1, None);
    match fault.map(|f| f.fault.kind) {
        Some(FaultKind::Hazard { what, .. }) => assert!(what.contains("uninitialised"), "{what}"),
        other => panic!("expected initcheck, got {other:?}"),
    }
    // Thread 0 stores, thread 1 adds atomically: a race.
    let body = "setp.eq.u32 %p1, %r1, 0;\n@%p1 st.global.b32 [%rd1], %r1;\n@!%p1 red.global.add.u32 [%rd1], 1;";
    let (_, fault) = run_on_word(body, 2, Some(0));
    match fault.map(|f| f.fault.kind) {
        Some(FaultKind::Hazard { what, .. }) => assert!(what.contains("one atomically"), "{what}"),
        other => panic!("expected a race, got {other:?}"),
    }
    // Thread 0 adds atomically, thread 1 reads through .nc: a hazard.
    let body = "setp.eq.u32 %p1, %r1, 0;\n@%p1 red.global.add.u32 [%rd1], 1;\n@!%p1 ld.global.nc.b32 %r2, [%rd1];";
    let (_, fault) = run_on_word(body, 2, Some(0));
    match fault.map(|f| f.fault.kind) {
        Some(FaultKind::Hazard { what, .. }) => assert!(what.contains("ld.global.nc"), "{what}"),
        other => panic!("expected an .nc hazard, got {other:?}"),
    }
    // Atomics from many threads on one word are fine.
    let (value, fault) = run_on_word("red.global.add.u32 [%rd1], 1;", 64, Some(0));
    assert!(fault.is_none(), "{fault:?}");
    assert_eq!(value, 64);
}

/// Profiles one warp of `k(in)` whose body reads `in` with the address in %rd3.
fn warp_sectors(body: &str) -> (u64, u64) {
    let text = format!(
        "{HEADER}.visible .entry k(\n.param .u64 .ptr .align 1 k_param_0\n)\n{{\n\
         .reg .pred %p<4>;\n.reg .b32 %r<8>;\n.reg .b64 %rd<8>;\n\
         ld.param.b64 %rd1, [k_param_0];\nmov.u32 %r1, %tid.x;\n{body}\nret;\n}}\n"
    );
    let kernel = module(&text);
    let mut space = AddressSpace::new(device_base(0), 1 << 30, true);
    let input = space.allocate(32 * 32 * 4 * 4).unwrap();
    space
        .find(input, 32 * 32 * 16)
        .unwrap()
        .0
        .fill_bytes(0, 32 * 32 * 16, 0);
    let params = input.to_le_bytes();
    let (stats, fault) = run_grid(&kernel, &space, 1, 32, &params, 1, true);
    assert!(fault.is_none(), "{fault:?}");
    let s = stats
        .memory
        .values()
        .fold((0, 0), |(r, n), s| (r + s.requests, n + s.sectors));
    (s.0, s.1)
}

#[test]
fn the_profile_counts_sectors_per_warp_request() {
    // in[lane]: one request, 128 bytes = 4 sectors.
    let coalesced =
        "mul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd3, %rd1, %rd2;\nld.global.b32 %r2, [%rd3];";
    assert_eq!(warp_sectors(coalesced), (1, 4));
    // in[32 * lane]: one request, 32 sectors.
    let strided =
        "mul.wide.u32 %rd2, %r1, 128;\nadd.s64 %rd3, %rd1, %rd2;\nld.global.b32 %r2, [%rd3];";
    assert_eq!(warp_sectors(strided), (1, 32));
    // Every lane reads in[0]: one request, one sector.
    assert_eq!(warp_sectors("ld.global.b32 %r2, [%rd1];"), (1, 1));
    // Four iterations, each loading in[32 * iter + lane] only in lanes where
    // iter + lane is odd: four requests (one per iteration), four sectors each.
    let looped = "mov.u32 %r3, 0;\n$L_loop:\nshl.b32 %r4, %r3, 5;\nadd.s32 %r4, %r4, %r1;\n\
        mul.wide.u32 %rd2, %r4, 4;\nadd.s64 %rd3, %rd1, %rd2;\nadd.s32 %r5, %r3, %r1;\n\
        and.b32 %r5, %r5, 1;\nsetp.eq.u32 %p1, %r5, 1;\n@%p1 ld.global.b32 %r2, [%rd3];\n\
        add.s32 %r3, %r3, 1;\nsetp.lt.u32 %p2, %r3, 4;\n@%p2 bra $L_loop;";
    assert_eq!(warp_sectors(looped), (4, 16));
    // Lane i loops i times, then loads in[lane]: after the loop the warp has
    // reconverged, so that is one request of four sectors, however long each looped.
    let after_loop = "mov.u32 %r3, 0;\n$L_spin:\nadd.s32 %r3, %r3, 1;\nsetp.lt.u32 %p2, %r3, %r1;\n\
        @%p2 bra $L_spin;\nmul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd3, %rd1, %rd2;\nld.global.b32 %r2, [%rd3];";
    assert_eq!(warp_sectors(after_loop), (1, 4));
}

#[test]
fn misaligned_and_freed_addresses_fail_and_the_report_says_where() {
    let text = format!(
        "{HEADER}.visible .entry k(\n.param .u64 .ptr .align 1 k_param_0\n)\n{{\n\
         .reg .b32 %r<4>;\n.reg .b64 %rd<4>;\n\
         ld.param.b64 %rd1, [k_param_0];\nld.global.b32 %r1, [%rd1];\nret;\n}}\n"
    );
    let kernel = module(&text);
    let mut space = AddressSpace::new(device_base(0), 1 << 30, true);
    let kept = space.allocate(64).unwrap();
    space.find(kept, 64).unwrap().0.fill_bytes(0, 64, 0);
    let freed = space.allocate(64).unwrap();
    space.free(freed).unwrap();
    let launch = |address: u64| {
        let params = address.to_le_bytes();
        run_grid(&kernel, &space, 1, 1, &params, 1, false)
            .1
            .expect("the launch must fault")
    };
    let fault = launch(kept + 2);
    assert_eq!(
        fault.fault.kind,
        FaultKind::Misaligned {
            address: kept + 2,
            size: 4
        }
    );
    let fault = launch(freed + 8);
    match &fault.fault.kind {
        FaultKind::IllegalAddress { detail, .. } => assert!(detail.contains("freed"), "{detail}"),
        other => panic!("expected an illegal address, got {other:?}"),
    }
    // The printed report names the kernel, the PTX line of the load, the thread, the
    // block and the address.
    let report = cuda_emu::launch::describe_fault(&kernel, &fault);
    let load_line = text
        .lines()
        .position(|l| l.starts_with("ld.global"))
        .unwrap()
        + 1;
    for needle in [
        "kernel k",
        &format!("PTX line {load_line}"),
        "thread (0,0,0)",
        "block (0,0,0)",
        &format!("{:#x}", freed + 8),
        "freed",
    ] {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
}
