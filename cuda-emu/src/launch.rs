//! Running a grid: blocks spread over worker threads, the threads of each block one
//! after another (the kernels this driver accepts use no barriers or shared memory,
//! so no thread waits for another), the first fault stopping the launch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::memory::{add_warp, Access, Allocation, Checks, LaunchView, PcStats, SectorStats};
use crate::ptx::exec::{run_thread, Fault, FaultKind, ThreadEnv};
use crate::ptx::ops::{special, Class};
use crate::ptx::Kernel;

/// A launch's shape and options.
pub struct LaunchSpec<'a> {
    /// The kernel.
    pub kernel: &'a Kernel,
    /// Grid size in blocks.
    pub grid: [u32; 3],
    /// Block size in threads.
    pub block: [u32; 3],
    /// The parameter buffer, laid out as the kernel declares.
    pub params: &'a [u8],
    /// Live allocations, in address order.
    pub allocations: &'a [Arc<Allocation>],
    /// Freed ranges, for diagnostics.
    pub freed: &'a [(u64, u64)],
    /// The launch's number (for the shadow state).
    pub launch: u32,
    /// Checks to run.
    pub checks: Checks,
    /// Worker threads.
    pub workers: usize,
    /// Instruction limit per thread.
    pub max_steps: u64,
    /// Collect the cost report.
    pub profile: bool,
}

/// A fault with where it happened.
#[derive(Clone, Debug)]
pub struct LaunchFault {
    /// What and which instruction.
    pub fault: Fault,
    /// The block's coordinates.
    pub block: [u32; 3],
    /// The thread's coordinates in its block.
    pub thread: [u32; 3],
}

/// What a launch did.
#[derive(Clone, Debug, Default)]
pub struct LaunchStats {
    /// Threads run.
    pub threads: u64,
    /// Dynamic instructions, all threads.
    pub instructions: u64,
    /// The most any thread ran.
    pub max_per_thread: u64,
    /// By class (profile only), in the order of [`Class::ALL`].
    pub by_class: [u64; Class::ALL.len()],
    /// Memory requests and sectors by kind (profile only).
    pub memory: HashMap<Access, SectorStats>,
    /// Thread-level accesses per memory instruction (profile only).
    pub accesses_by_pc: HashMap<u32, PcStats>,
}

#[derive(Default)]
struct WorkerStats {
    threads: u64,
    instructions: u64,
    max_per_thread: u64,
    by_class: [u64; Class::ALL.len()],
    memory: HashMap<Access, SectorStats>,
    accesses_by_pc: HashMap<u32, PcStats>,
}

/// Runs the grid. Returns the statistics and the first fault, if any (the launch
/// stops at it: later blocks do not run).
pub fn execute(spec: &LaunchSpec<'_>) -> (LaunchStats, Option<LaunchFault>) {
    let [gx, gy, gz] = spec.grid.map(u64::from);
    let blocks = gx * gy * gz;
    let per_block = spec.block.iter().map(|&b| u64::from(b)).product::<u64>();
    let next = AtomicU64::new(0);
    let abort = AtomicBool::new(false);
    let first_fault: Mutex<Option<LaunchFault>> = Mutex::new(None);
    let workers = spec.workers.clamp(1, 256).min(blocks.max(1) as usize);
    let results: Vec<WorkerStats> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    if spec.profile {
                        worker::<true>(spec, &next, &abort, &first_fault, blocks, per_block)
                    } else {
                        worker::<false>(spec, &next, &abort, &first_fault, blocks, per_block)
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(stats) => stats,
                Err(panic) => {
                    // A bug in the interpreter: the launch must fail, never return
                    // with blocks missing.
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a worker thread panicked".to_string());
                    keep_first(
                        &first_fault,
                        LaunchFault {
                            fault: Fault {
                                kind: FaultKind::Internal { message },
                                pc: 0,
                            },
                            block: [0; 3],
                            thread: [0; 3],
                        },
                    );
                    WorkerStats::default()
                }
            })
            .collect()
    });
    let mut stats = LaunchStats::default();
    for w in results {
        stats.threads += w.threads;
        stats.instructions += w.instructions;
        stats.max_per_thread = stats.max_per_thread.max(w.max_per_thread);
        for (total, part) in stats.by_class.iter_mut().zip(w.by_class) {
            *total += part;
        }
        for (access, s) in w.memory {
            let entry = stats.memory.entry(access).or_default();
            entry.requests += s.requests;
            entry.sectors += s.sectors;
            entry.bytes += s.bytes;
        }
        for (pc, part) in w.accesses_by_pc {
            stats
                .accesses_by_pc
                .entry(pc)
                .and_modify(|total| total.add(&part))
                .or_insert(part);
        }
    }
    let fault = first_fault
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (stats, fault)
}

fn worker<const PROFILE: bool>(
    spec: &LaunchSpec<'_>,
    next: &AtomicU64,
    abort: &AtomicBool,
    first_fault: &Mutex<Option<LaunchFault>>,
    blocks: u64,
    per_block: u64,
) -> WorkerStats {
    let kernel = spec.kernel;
    let mut regs = kernel.template.clone();
    let mut memory = LaunchView::new(
        spec.allocations,
        spec.freed,
        spec.launch,
        spec.checks,
        PROFILE,
    );
    let mut stats = WorkerStats::default();
    let [gx, gy, _] = spec.grid;
    let [bx, by, bz] = spec.block;
    let mut warp_logs: Vec<Vec<crate::memory::Logged>> = Vec::new();
    let mut env = ThreadEnv {
        specials: [0; special::COUNT],
        params: spec.params,
        max_steps: spec.max_steps,
    };
    env.specials[special::NTID as usize..special::NTID as usize + 3].copy_from_slice(&spec.block);
    env.specials[special::NCTAID as usize..special::NCTAID as usize + 3]
        .copy_from_slice(&spec.grid);
    loop {
        if abort.load(Ordering::Relaxed) {
            break;
        }
        let block = next.fetch_add(1, Ordering::Relaxed);
        if block >= blocks {
            break;
        }
        let coords = [
            (block % u64::from(gx)) as u32,
            ((block / u64::from(gx)) % u64::from(gy)) as u32,
            (block / (u64::from(gx) * u64::from(gy))) as u32,
        ];
        env.specials[special::CTAID as usize..special::CTAID as usize + 3].copy_from_slice(&coords);
        let mut local = 0u64;
        for tz in 0..bz {
            for ty in 0..by {
                for tx in 0..bx {
                    env.specials[special::TID as usize] = tx;
                    env.specials[special::TID as usize + 1] = ty;
                    env.specials[special::TID as usize + 2] = tz;
                    memory.set_thread(block * per_block + local);
                    let outcome = run_thread::<_, PROFILE>(
                        kernel,
                        &mut regs,
                        &env,
                        &mut memory,
                        &mut stats.by_class,
                    );
                    local += 1;
                    match outcome {
                        Ok(steps) => {
                            stats.threads += 1;
                            stats.instructions += steps;
                            stats.max_per_thread = stats.max_per_thread.max(steps);
                        }
                        Err(fault) => {
                            abort.store(true, Ordering::Relaxed);
                            keep_first(
                                first_fault,
                                LaunchFault {
                                    fault,
                                    block: coords,
                                    thread: [tx, ty, tz],
                                },
                            );
                            return stats;
                        }
                    }
                    if PROFILE {
                        if let Some(log) = memory.log.as_mut() {
                            warp_logs.push(std::mem::take(log));
                        }
                        if local.is_multiple_of(32) || local == per_block {
                            add_warp(&warp_logs, &mut stats.memory, &mut stats.accesses_by_pc);
                            warp_logs.clear();
                        }
                    }
                }
            }
        }
    }
    stats
}

/// Keeps the fault of the lowest (block, thread) seen, so that which fault is reported
/// does not depend on how the workers happened to interleave (as far as they ran).
fn keep_first(slot: &Mutex<Option<LaunchFault>>, fault: LaunchFault) {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    let order = |f: &LaunchFault| {
        let [bx, by, bz] = f.block;
        let [tx, ty, tz] = f.thread;
        (bz, by, bx, tz, ty, tx)
    };
    match slot.as_ref() {
        Some(kept) if order(kept) <= order(&fault) => {}
        _ => *slot = Some(fault),
    }
}

/// A human-readable report of a fault, in the spirit of compute-sanitizer's.
pub fn describe_fault(kernel: &Kernel, fault: &LaunchFault) -> String {
    let line = kernel
        .lines
        .get(fault.fault.pc as usize)
        .copied()
        .unwrap_or(0);
    let what = match &fault.fault.kind {
        FaultKind::IllegalAddress {
            address,
            size,
            access,
            detail,
        } => format!(
            "invalid __global__ {access} of size {size} bytes at address {address:#x}: {detail}"
        ),
        FaultKind::Misaligned { address, size } => {
            format!("misaligned access of size {size} bytes at address {address:#x}")
        }
        FaultKind::Hazard { what, address } => format!("{what}, at address {address:#x}"),
        FaultKind::Trap => "the kernel executed `trap`".to_string(),
        FaultKind::Timeout { steps } => {
            format!("a thread ran more than {steps} instructions (XRAY_EMU_MAX_STEPS)")
        }
        FaultKind::Internal { message } => {
            format!("internal error of the software driver (please report it): {message}")
        }
    };
    let [bx, by, bz] = fault.block;
    let [tx, ty, tz] = fault.thread;
    format!(
        "========= xray-emu: {what}\n=========     in kernel {} at PTX line {line}\n=========     by thread ({tx},{ty},{tz}) in block ({bx},{by},{bz})",
        kernel.name
    )
}
