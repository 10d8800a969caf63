//! Device memory: allocations with shadow state for the checker, the address space of
//! one context, and [`LaunchView`], the checked view of memory a running kernel gets.
//!
//! Every allocation keeps, per 4-byte word: its value; whether anything has written it
//! (initcheck); and, with `full` checks, which thread of which launch last stored to
//! it (two threads storing to one word in one launch is a race) and which launch last
//! read it through `ld.global.nc` (writing such a word in the same launch breaks the
//! non-coherent cache's contract). Words are atomics, so blocks that run in parallel share memory
//! soundly and `red`/`atom` are truly atomic. Addresses are never reused: an access to
//! freed memory is recognised as such.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::Arc;

use crate::ptx::exec::{flush, FaultKind, GlobalMemory};

/// Which checks run on every access (bounds and alignment always do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    /// Reads of words that nothing has written.
    pub init: bool,
    /// Two threads storing to one word in one launch; writes to words read through
    /// `ld.global.nc` in the same launch.
    pub hazards: bool,
}

/// One device allocation.
pub struct Allocation {
    /// First address.
    pub base: u64,
    /// Size in bytes, as requested.
    pub size: u64,
    words: Box<[AtomicU32]>,
    init: Box<[AtomicU64]>,
    stores: Box<[AtomicU64]>,
    nc_reads: Box<[AtomicU32]>,
}

impl std::fmt::Debug for Allocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Allocation({:#x}, {} bytes)", self.base, self.size)
    }
}

fn atomics32(n: usize) -> Option<Box<[AtomicU32]>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.extend((0..n).map(|_| AtomicU32::new(0)));
    Some(v.into_boxed_slice())
}

fn atomics64(n: usize) -> Option<Box<[AtomicU64]>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.extend((0..n).map(|_| AtomicU64::new(0)));
    Some(v.into_boxed_slice())
}

impl Allocation {
    /// A new allocation of `size` bytes at `base`, uninitialised; `None` if the host
    /// cannot hold it.
    fn new(base: u64, size: u64, shadow: bool) -> Option<Allocation> {
        let words = usize::try_from(size.div_ceil(4)).ok()?;
        let shadow_words = if shadow { words } else { 0 };
        Some(Allocation {
            base,
            size,
            words: atomics32(words)?,
            init: atomics64(words.div_ceil(64))?,
            stores: atomics64(shadow_words)?,
            nc_reads: atomics32(shadow_words)?,
        })
    }

    fn mark_initialised(&self, word: usize) {
        let (slot, bit) = (word / 64, 1u64 << (word % 64));
        if self.init[slot].load(Relaxed) & bit == 0 {
            self.init[slot].fetch_or(bit, Relaxed);
        }
    }

    fn is_initialised(&self, word: usize) -> bool {
        self.init[word / 64].load(Relaxed) & (1 << (word % 64)) != 0
    }

    /// Writes `data` at byte `offset` from the host (the caller checked the range).
    pub fn write_bytes(&self, offset: u64, data: &[u8]) {
        let mut address = offset as usize;
        let mut rest = data;
        while !rest.is_empty() {
            let word = address / 4;
            let within = address % 4;
            if within == 0 && rest.len() >= 4 {
                let n = rest.len() / 4;
                for (i, chunk) in rest[..n * 4].chunks_exact(4).enumerate() {
                    let value = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    self.words[word + i].store(value, Relaxed);
                    self.mark_initialised(word + i);
                }
                address += n * 4;
                rest = &rest[n * 4..];
                continue;
            }
            let mut bytes = self.words[word].load(Relaxed).to_le_bytes();
            let take = (4 - within).min(rest.len());
            bytes[within..within + take].copy_from_slice(&rest[..take]);
            self.words[word].store(u32::from_le_bytes(bytes), Relaxed);
            self.mark_initialised(word);
            address += take;
            rest = &rest[take..];
        }
    }

    /// Reads bytes at `offset` into `out` (the caller checked the range).
    pub fn read_bytes(&self, offset: u64, out: &mut [u8]) {
        let start = offset as usize;
        for (i, byte) in out.iter_mut().enumerate() {
            let address = start + i;
            let word = self.words[address / 4].load(Relaxed).to_le_bytes();
            *byte = word[address % 4];
        }
    }

    /// Reads bytes fast when `offset` is word-aligned, else byte by byte.
    pub fn read_into(&self, offset: u64, out: &mut [u8]) {
        if !offset.is_multiple_of(4) {
            return self.read_bytes(offset, out);
        }
        let first = (offset / 4) as usize;
        let whole = out.len() / 4;
        for (i, chunk) in out[..whole * 4].chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.words[first + i].load(Relaxed).to_le_bytes());
        }
        let tail = whole * 4;
        if tail < out.len() {
            self.read_bytes(offset + tail as u64, &mut out[tail..]);
        }
    }

    /// Sets `len` bytes at `offset` to `value`.
    pub fn fill_bytes(&self, offset: u64, len: u64, value: u8) {
        let pattern = u32::from_le_bytes([value; 4]);
        let (start, end) = (offset, offset + len);
        let mut address = start;
        while address < end {
            if address % 4 == 0 && end - address >= 4 {
                let word = (address / 4) as usize;
                self.words[word].store(pattern, Relaxed);
                self.mark_initialised(word);
                address += 4;
            } else {
                self.write_bytes(address, &[value]);
                address += 1;
            }
        }
    }

    /// Sets `count` 4-byte words from `offset` (word-aligned) to `value`.
    pub fn fill_words(&self, offset: u64, count: u64, value: u32) {
        let first = (offset / 4) as usize;
        for word in first..first + count as usize {
            self.words[word].store(value, Relaxed);
            self.mark_initialised(word);
        }
    }

    fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// Address-space layout: each device's allocations start at its own base (a terabyte
/// apart), and a gap follows every allocation, so that running off the end never lands
/// in a neighbour.
const DEVICE_BASE: u64 = 0x7e00_0000_0000;
const DEVICE_STRIDE: u64 = 1 << 40;
const ALIGNMENT: u64 = 512;
const GUARD_GAP: u64 = 64 << 10;
/// The first address of device `ordinal`'s allocations.
pub fn device_base(ordinal: u32) -> u64 {
    DEVICE_BASE + u64::from(ordinal) * DEVICE_STRIDE
}

/// How many freed ranges are remembered for diagnostics.
const FREED_REMEMBERED: usize = 1 << 16;

/// Why an allocation or host copy was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// Not enough device (or host) memory.
    OutOfMemory,
    /// A pointer or range that is not inside one live allocation.
    InvalidValue,
}

/// The allocations of one context.
#[derive(Debug)]
pub struct AddressSpace {
    live: BTreeMap<u64, Arc<Allocation>>,
    freed: Vec<(u64, u64)>,
    next: u64,
    used: u64,
    total: u64,
    shadow: bool,
}

impl AddressSpace {
    /// An empty address space of `total` bytes whose allocations start at `start`
    /// (see [`device_base`]); `shadow` keeps the race and non-coherent-read shadows.
    pub fn new(start: u64, total: u64, shadow: bool) -> AddressSpace {
        AddressSpace {
            live: BTreeMap::new(),
            freed: Vec::new(),
            next: start,
            used: 0,
            total,
            shadow,
        }
    }

    /// Where the next allocation would start: a device's later contexts continue from
    /// here, so that no address is ever reused, not even across contexts.
    pub fn next_address(&self) -> u64 {
        self.next
    }

    /// Bytes not allocated.
    pub fn free_bytes(&self) -> u64 {
        self.total.saturating_sub(self.used)
    }

    /// Total bytes.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Allocates `size` bytes (more than 0).
    pub fn allocate(&mut self, size: u64) -> Result<u64, MemoryError> {
        if size == 0 {
            return Err(MemoryError::InvalidValue);
        }
        let rounded = size.div_ceil(ALIGNMENT).saturating_mul(ALIGNMENT);
        if rounded > self.free_bytes() {
            return Err(MemoryError::OutOfMemory);
        }
        let base = self.next;
        let allocation =
            Allocation::new(base, size, self.shadow).ok_or(MemoryError::OutOfMemory)?;
        self.next = base + rounded + GUARD_GAP;
        self.used += rounded;
        self.live.insert(base, Arc::new(allocation));
        Ok(base)
    }

    /// Frees the allocation that starts at `base`.
    pub fn free(&mut self, base: u64) -> Result<(), MemoryError> {
        let allocation = self.live.remove(&base).ok_or(MemoryError::InvalidValue)?;
        self.used -= allocation.size.div_ceil(ALIGNMENT) * ALIGNMENT;
        if self.freed.len() == FREED_REMEMBERED {
            self.freed.remove(0);
        }
        self.freed.push((allocation.base, allocation.size));
        Ok(())
    }

    /// The allocation holding `[address, address + len)` and the offset in it.
    pub fn find(&self, address: u64, len: u64) -> Result<(Arc<Allocation>, u64), MemoryError> {
        let (_, allocation) = self
            .live
            .range(..=address)
            .next_back()
            .ok_or(MemoryError::InvalidValue)?;
        let end = address.checked_add(len).ok_or(MemoryError::InvalidValue)?;
        if end > allocation.end() {
            return Err(MemoryError::InvalidValue);
        }
        Ok((Arc::clone(allocation), address - allocation.base))
    }

    /// The live allocations in address order.
    pub fn snapshot(&self) -> Vec<Arc<Allocation>> {
        self.live.values().cloned().collect()
    }

    /// Freed ranges, for diagnostics.
    pub fn freed(&self) -> &[(u64, u64)] {
        &self.freed
    }

    /// Live allocations: count and bytes (the leak report).
    pub fn live_summary(&self) -> (usize, u64) {
        (self.live.len(), self.live.values().map(|a| a.size).sum())
    }

    /// The live allocations' addresses and sizes (the leak report's detail).
    pub fn live_list(&self) -> Vec<(u64, u64)> {
        self.live.values().map(|a| (a.base, a.size)).collect()
    }
}

/// Kinds of memory access, for the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `ld.global`
    Load,
    /// `ld.global.nc`
    LoadNc,
    /// `st.global`
    Store,
    /// `red` / `atom`
    Atomic,
}

/// One access in a thread's log (profile only).
#[derive(Clone, Copy, Debug)]
pub struct Logged {
    /// Instruction index.
    pub pc: u32,
    /// Iterations the thread had run of the loops enclosing the instruction.
    pub iteration: u32,
    /// Address.
    pub address: u64,
    /// Bytes.
    pub size: u32,
    /// What kind.
    pub access: Access,
}

/// Warp-level memory statistics of a launch (profile only).
#[derive(Clone, Copy, Debug, Default)]
pub struct SectorStats {
    /// Warp-level requests.
    pub requests: u64,
    /// 32-byte sectors those requests touch.
    pub sectors: u64,
    /// Bytes the threads accessed.
    pub bytes: u64,
}

/// Memory statistics of one memory instruction (profile only).
#[derive(Clone, Copy, Debug)]
pub struct PcStats {
    /// Its kind.
    pub access: Access,
    /// Thread-level accesses.
    pub accesses: u64,
    /// Warp-level requests.
    pub requests: u64,
    /// Sectors those requests touch.
    pub sectors: u64,
}

impl PcStats {
    fn new(access: Access) -> PcStats {
        PcStats {
            access,
            accesses: 0,
            requests: 0,
            sectors: 0,
        }
    }

    /// Adds another worker's counts.
    pub fn add(&mut self, other: &PcStats) {
        self.accesses += other.accesses;
        self.requests += other.requests;
        self.sectors += other.sectors;
    }
}

/// The memory a launch sees, with checks, from one worker thread.
pub struct LaunchView<'a> {
    allocations: &'a [Arc<Allocation>],
    freed: &'a [(u64, u64)],
    cached: usize,
    tag: u64,
    launch: u32,
    checks: Checks,
    /// The backward branches the running thread has taken: (from, to, times).
    loops: Vec<(u32, u32, u32)>,
    /// Per-thread access log, when profiling.
    pub log: Option<Vec<Logged>>,
}

/// A store shadow word: the launch (24 bits), whether the store was atomic (1 bit),
/// and the storing thread's index in the launch plus one (39 bits).
const LAUNCH_SHIFT: u32 = 40;
const ATOMIC_BIT: u64 = 1 << 39;
const THREAD_MASK: u64 = ATOMIC_BIT - 1;

impl<'a> LaunchView<'a> {
    /// A view of `allocations` (in address order) for launch number `launch`.
    pub fn new(
        allocations: &'a [Arc<Allocation>],
        freed: &'a [(u64, u64)],
        launch: u32,
        checks: Checks,
        profile: bool,
    ) -> LaunchView<'a> {
        LaunchView {
            allocations,
            freed,
            cached: 0,
            tag: 0,
            launch: launch & 0xff_ffff,
            checks,
            loops: Vec::new(),
            log: profile.then(Vec::new),
        }
    }

    /// Sets the running thread (its linear index in the launch).
    pub fn set_thread(&mut self, thread: u64) {
        self.tag = (u64::from(self.launch) << LAUNCH_SHIFT) | ((thread + 1) & THREAD_MASK);
        self.loops.clear();
    }

    fn describe(&self, address: u64) -> String {
        if let Some((base, size)) = self
            .freed
            .iter()
            .rev()
            .find(|(base, size)| address >= *base && address < base + size)
        {
            return format!("inside a freed allocation of {size} bytes at {base:#x}");
        }
        let index = self.allocations.partition_point(|a| a.base <= address);
        if index > 0 {
            let before = &self.allocations[index - 1];
            if address >= before.end() {
                return format!(
                    "{} bytes after the end of the {}-byte allocation at {:#x}",
                    address - before.end(),
                    before.size,
                    before.base
                );
            }
            return format!(
                "straddling the end of the {}-byte allocation at {:#x}",
                before.size, before.base
            );
        }
        "not in any allocation".to_string()
    }

    #[inline(always)]
    fn locate(
        &mut self,
        address: u64,
        size: u32,
        access: &'static str,
        pc: u32,
        kind: Access,
    ) -> Result<(&'a Allocation, usize), FaultKind> {
        if !address.is_multiple_of(u64::from(size)) {
            return Err(FaultKind::Misaligned { address, size });
        }
        let illegal = |view: &Self| FaultKind::IllegalAddress {
            address,
            size,
            access,
            detail: view.describe(address),
        };
        let Some(end) = address.checked_add(u64::from(size)) else {
            return Err(illegal(self));
        };
        let allocations = self.allocations;
        let inside = |a: &Allocation| address >= a.base && end <= a.end();
        let allocation = match allocations.get(self.cached) {
            Some(a) if inside(a) => a,
            _ => {
                let index = allocations.partition_point(|a| a.base <= address);
                match index.checked_sub(1).and_then(|i| allocations.get(i)) {
                    Some(a) if inside(a) => {
                        self.cached = index - 1;
                        a
                    }
                    _ => return Err(illegal(self)),
                }
            }
        };
        if let Some(log) = &mut self.log {
            // The iterations of the loops that enclose this instruction: accesses after
            // a loop belong to one request however long each lane looped.
            let iteration = self
                .loops
                .iter()
                .filter(|(from, to, _)| *to <= pc && pc <= *from)
                .map(|(_, _, n)| *n)
                .sum();
            log.push(Logged {
                pc,
                iteration,
                address,
                size,
                access: kind,
            });
        }
        Ok((allocation, ((address - allocation.base) / 4) as usize))
    }

    #[inline(always)]
    fn check_read(
        &self,
        allocation: &Allocation,
        word: usize,
        nc: bool,
        address: u64,
    ) -> Result<(), FaultKind> {
        if self.checks.init && !allocation.is_initialised(word) {
            return Err(FaultKind::Hazard {
                what: "read of uninitialised device memory (initcheck)".into(),
                address,
            });
        }
        if nc && self.checks.hazards {
            // SeqCst on both sides (here and in `check_write`): of a concurrent read and
            // write of one word, at least one sees the other.
            if allocation.nc_reads[word].load(SeqCst) != self.launch {
                allocation.nc_reads[word].store(self.launch, SeqCst);
            }
            let stored = allocation.stores[word].load(SeqCst);
            if stored >> LAUNCH_SHIFT == u64::from(self.launch) {
                return Err(FaultKind::Hazard {
                    what: "ld.global.nc of memory this launch has written (the non-coherent cache may return stale data)".into(),
                    address,
                });
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn check_write(
        &self,
        allocation: &Allocation,
        word: usize,
        atomic: bool,
        address: u64,
    ) -> Result<(), FaultKind> {
        if atomic && self.checks.init && !allocation.is_initialised(word) {
            return Err(FaultKind::Hazard {
                what: "atomic update of uninitialised device memory (initcheck)".into(),
                address,
            });
        }
        if self.checks.hazards {
            let tag = self.tag | if atomic { ATOMIC_BIT } else { 0 };
            let previous = allocation.stores[word].swap(tag, SeqCst);
            if allocation.nc_reads[word].load(SeqCst) == self.launch {
                return Err(FaultKind::Hazard {
                    what: "write to memory this launch reads through ld.global.nc".into(),
                    address,
                });
            }
            let same_launch = previous >> LAUNCH_SHIFT == u64::from(self.launch);
            let other_thread = previous & THREAD_MASK != self.tag & THREAD_MASK;
            let both_atomic = atomic && previous & ATOMIC_BIT != 0;
            if same_launch && other_thread && !both_atomic {
                let other = (previous & THREAD_MASK) - 1;
                let how = if atomic || previous & ATOMIC_BIT != 0 {
                    "one atomically, one not"
                } else {
                    "without an atomic"
                };
                return Err(FaultKind::Hazard {
                    what: format!("two threads store to this address in one launch, {how} (the other is thread {other} of the launch)"),
                    address,
                });
            }
        }
        allocation.mark_initialised(word);
        Ok(())
    }
}

impl GlobalMemory for LaunchView<'_> {
    #[inline(always)]
    fn load32(&mut self, address: u64, nc: bool, pc: u32) -> Result<u32, FaultKind> {
        let kind = if nc { Access::LoadNc } else { Access::Load };
        let (allocation, word) = self.locate(address, 4, "read", pc, kind)?;
        self.check_read(allocation, word, nc, address)?;
        Ok(allocation.words[word].load(Relaxed))
    }

    fn load64(&mut self, address: u64, nc: bool, pc: u32) -> Result<u64, FaultKind> {
        let kind = if nc { Access::LoadNc } else { Access::Load };
        let (allocation, word) = self.locate(address, 8, "read", pc, kind)?;
        self.check_read(allocation, word, nc, address)?;
        self.check_read(allocation, word + 1, nc, address + 4)?;
        let low = allocation.words[word].load(Relaxed);
        let high = allocation.words[word + 1].load(Relaxed);
        Ok(u64::from(low) | (u64::from(high) << 32))
    }

    fn store32(&mut self, address: u64, value: u32, pc: u32) -> Result<(), FaultKind> {
        let (allocation, word) = self.locate(address, 4, "write", pc, Access::Store)?;
        self.check_write(allocation, word, false, address)?;
        allocation.words[word].store(value, Relaxed);
        Ok(())
    }

    fn store64(&mut self, address: u64, value: u64, pc: u32) -> Result<(), FaultKind> {
        let (allocation, word) = self.locate(address, 8, "write", pc, Access::Store)?;
        self.check_write(allocation, word, false, address)?;
        self.check_write(allocation, word + 1, false, address + 4)?;
        allocation.words[word].store(value as u32, Relaxed);
        allocation.words[word + 1].store((value >> 32) as u32, Relaxed);
        Ok(())
    }

    /// `atom/red.add.f32` round to nearest even and flush subnormal inputs and results
    /// to sign-preserving zero (PTX ISA, `atom`).
    fn atomic_add_f32(&mut self, address: u64, value: f32, pc: u32) -> Result<f32, FaultKind> {
        let (allocation, word) = self.locate(address, 4, "atomic", pc, Access::Atomic)?;
        self.check_write(allocation, word, true, address)?;
        let cell = &allocation.words[word];
        let mut current = cell.load(Relaxed);
        let value = flush(value);
        loop {
            let sum = flush(flush(f32::from_bits(current)) + value);
            let bits = if sum.is_nan() {
                0x7fff_ffff
            } else {
                sum.to_bits()
            };
            match cell.compare_exchange_weak(current, bits, Relaxed, Relaxed) {
                Ok(old) => return Ok(f32::from_bits(old)),
                Err(now) => current = now,
            }
        }
    }

    fn atomic_add_u32(&mut self, address: u64, value: u32, pc: u32) -> Result<u32, FaultKind> {
        let (allocation, word) = self.locate(address, 4, "atomic", pc, Access::Atomic)?;
        self.check_write(allocation, word, true, address)?;
        Ok(allocation.words[word].fetch_add(value, Relaxed))
    }

    fn back_edge(&mut self, from: u32, to: u32) {
        match self
            .loops
            .iter_mut()
            .find(|(f, t, _)| *f == from && *t == to)
        {
            Some((_, _, count)) => *count += 1,
            None => self.loops.push((from, to, 1)),
        }
    }
}

/// Adds one warp's accesses to `stats`: the accesses of its threads are grouped into
/// warp-level requests by (instruction, iterations the thread had run of the loops that
/// enclose it, how many times it had run the instruction in that iteration): the warp
/// is taken to run in lock step, reconverging at each loop's back edge, after each
/// forward branch and after each loop; a thread that does not reach an instruction in
/// an iteration is an inactive lane of that request.
pub fn add_warp(
    logs: &[Vec<Logged>],
    stats: &mut HashMap<Access, SectorStats>,
    by_pc: &mut HashMap<u32, PcStats>,
) {
    let mut requests: HashMap<(u32, u32, u32, Access), HashSet<u64>> = HashMap::new();
    for log in logs {
        let mut seen: HashMap<(u32, u32), u32> = HashMap::new();
        for access in log {
            let occurrence = seen.entry((access.pc, access.iteration)).or_insert(0);
            let sectors = requests
                .entry((access.pc, access.iteration, *occurrence, access.access))
                .or_default();
            *occurrence += 1;
            let first = access.address / 32;
            let last = (access.address + u64::from(access.size) - 1) / 32;
            sectors.extend(first..=last);
            stats.entry(access.access).or_default().bytes += u64::from(access.size);
            by_pc
                .entry(access.pc)
                .or_insert_with(|| PcStats::new(access.access))
                .accesses += 1;
        }
    }
    for ((pc, _, _, access), sectors) in requests {
        let entry = stats.entry(access).or_default();
        entry.requests += 1;
        entry.sectors += sectors.len() as u64;
        let at = by_pc.entry(pc).or_insert_with(|| PcStats::new(access));
        at.requests += 1;
        at.sectors += sectors.len() as u64;
    }
}
