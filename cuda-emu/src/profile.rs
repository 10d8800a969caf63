//! The cost report (`XRAY_EMU_PROFILE=file.json`): per launch, dynamic instructions
//! (total, per thread mean and max, by opcode class), global bytes loaded and stored,
//! the 32-byte sectors touched per warp-level memory request, and the thread-level
//! accesses of each memory instruction by PTX line (so that the executions of a
//! kernel's inner-loop load give its steps, and instructions per step follow).
//!
//! Warps are the 32 consecutive threads of a block (x fastest, as on the GPU). The
//! accesses of a warp's threads are matched into one request by instruction, by the
//! iteration each thread is in of the loops enclosing the instruction (counted from
//! the backward branches it has taken), and by how many times it has run the
//! instruction in that iteration: the warp is taken to run in lock step, reconverging
//! at loop back edges, after forward branches and after loops, and a thread that does
//! not reach an instruction in an iteration is an inactive lane of that request. This is a deterministic proxy for what Nsight Compute reports
//! (instructions, sectors per request), never a time: caches, latency and occupancy
//! are not modelled. The instructions are PTX instructions per thread (those whose
//! guard was false included), not SASS per warp: on the GPU `ld.param` becomes a
//! constant-bank operand, `cvta` is usually free, and `div.rn`, `rcp.rn` and `sqrt.rn`
//! expand into a dozen or more instructions. `cvta` and same-width `cvt` count as
//! moves.
//!
//! The file holds one JSON object per launch and line (JSON Lines), appended, each
//! with the process id; delete it before a run to start afresh.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::launch::LaunchStats;
use crate::memory::{Access, PcStats};
use crate::ptx::ops::Class;
use crate::ptx::Kernel;

/// Serialises this process's appends.
static WRITE: Mutex<()> = Mutex::new(());

fn sectors(stats: &LaunchStats, access: Access) -> Value {
    let s = stats.memory.get(&access).copied().unwrap_or_default();
    json!({
        "requests": s.requests,
        "sectors": s.sectors,
        "sectors_per_request": if s.requests > 0 { s.sectors as f64 / s.requests as f64 } else { 0.0 },
        "bytes": s.bytes,
    })
}

/// Appends one launch to the report, as one line of JSON (JSON Lines), so that the
/// report is complete after every launch. A file that cannot be written is reported
/// on stderr and does not fail the launch.
pub fn record(
    path: &Path,
    kernel: &Kernel,
    grid: [u32; 3],
    block: [u32; 3],
    stats: &LaunchStats,
    at_seconds: f64,
) {
    let by_class: serde_json::Map<String, Value> = Class::ALL
        .iter()
        .map(|c| (c.name().to_string(), json!(stats.by_class[c.index()])))
        .collect();
    let mut by_line: Vec<(u32, &PcStats)> = stats
        .accesses_by_pc
        .iter()
        .map(|(pc, s)| (kernel.lines.get(*pc as usize).copied().unwrap_or(0), s))
        .collect();
    by_line.sort_unstable_by_key(|(line, _)| *line);
    let memory_by_line: Vec<Value> = by_line
        .into_iter()
        .map(|(line, s)| {
            let kind = match s.access {
                Access::Load => "load",
                Access::LoadNc => "load_nc",
                Access::Store => "store",
                Access::Atomic => "atomic",
            };
            json!({
                "ptx_line": line,
                "kind": kind,
                "accesses": s.accesses,
                "requests": s.requests,
                "sectors_per_request": if s.requests > 0 { s.sectors as f64 / s.requests as f64 } else { 0.0 },
            })
        })
        .collect();
    let record = json!({
        "kernel": kernel.name,
        "grid": grid,
        "block": block,
        "threads": stats.threads,
        "instructions": {
            "total": stats.instructions,
            "per_thread_mean": if stats.threads > 0 { stats.instructions as f64 / stats.threads as f64 } else { 0.0 },
            "per_thread_max": stats.max_per_thread,
            "by_class": by_class,
        },
        "pid": std::process::id(),
        "global_load": sectors(stats, Access::Load),
        "global_load_nc": sectors(stats, Access::LoadNc),
        "global_store": sectors(stats, Access::Store),
        "global_atomic": sectors(stats, Access::Atomic),
        "memory_by_line": memory_by_line,
        "started_at_seconds": at_seconds,
    });
    // One JSON object per line, appended: several processes (a test binary and its
    // children, or several test binaries) can share one report.
    let _serialised = WRITE.lock().unwrap_or_else(|p| p.into_inner());
    let line = format!("{record}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        eprintln!(
            "xray-emu: cannot write the profile {}: {error}",
            path.display()
        );
    }
}
