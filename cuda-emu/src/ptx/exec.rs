//! The interpreter: runs one thread of a decoded kernel to its exit.
//!
//! Numerics follow the PTX ISA: f32 arithmetic is IEEE binary32 with round to nearest
//! even (Rust's `f32` operations are exactly that, and `div`, `sqrt` and `1/x` are
//! correctly rounded); `fma` is fused (one rounding) and nothing else is; subnormals
//! are kept unless the instruction says `.ftz`; a NaN result is the canonical NaN
//! `0x7fffffff`, as on NVIDIA GPUs; `min`/`max` return the number when one operand is
//! NaN and order -0 below +0; float-to-integer `cvt` rounds as its modifier says,
//! saturates, and turns NaN into 0; unordered compares are true on NaN. Integer
//! arithmetic wraps; shifts by the width or more give 0 (or the sign, for `shr.s`).

use super::decode::Kernel;
use super::ops::{special, Class, FloatCmp, FtzOp, IntCmp, Op, Round, UNGUARDED};

/// NVIDIA's canonical NaN.
const CANONICAL_NAN: u32 = 0x7fff_ffff;

/// Why a thread stopped the launch.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// An access outside every live allocation (`detail` says what is near).
    IllegalAddress {
        /// The address.
        address: u64,
        /// Bytes accessed.
        size: u32,
        /// `read`, `write` or `atomic`.
        access: &'static str,
        /// Where the address lies: freed memory, past an allocation's end, nowhere.
        detail: String,
    },
    /// An access not aligned to its size.
    Misaligned {
        /// The address.
        address: u64,
        /// Bytes accessed.
        size: u32,
    },
    /// A hazard the memory checker found: an uninitialised read, two threads storing
    /// to one address, or a write to memory the launch reads through `ld.global.nc`.
    Hazard {
        /// What was found.
        what: String,
        /// The address.
        address: u64,
    },
    /// `trap`.
    Trap,
    /// The thread ran more instructions than the configured limit.
    Timeout {
        /// The limit.
        steps: u64,
    },
    /// The interpreter itself failed (a bug in this driver, never in the kernel): the
    /// launch fails instead of returning partial results.
    Internal {
        /// What happened.
        message: String,
    },
}

/// A thread's fault and the instruction that raised it.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// What went wrong.
    pub kind: FaultKind,
    /// Index of the instruction in the kernel's code.
    pub pc: u32,
}

/// Global memory as the interpreter sees it. `pc` is the instruction's index, for the
/// profile.
pub trait GlobalMemory {
    /// A 4-byte load; `nc` for `ld.global.nc`.
    fn load32(&mut self, address: u64, nc: bool, pc: u32) -> Result<u32, FaultKind>;
    /// An 8-byte load.
    fn load64(&mut self, address: u64, nc: bool, pc: u32) -> Result<u64, FaultKind>;
    /// A 4-byte store.
    fn store32(&mut self, address: u64, value: u32, pc: u32) -> Result<(), FaultKind>;
    /// An 8-byte store.
    fn store64(&mut self, address: u64, value: u64, pc: u32) -> Result<(), FaultKind>;
    /// Atomic f32 add; returns the old value.
    fn atomic_add_f32(&mut self, address: u64, value: f32, pc: u32) -> Result<f32, FaultKind>;
    /// Atomic u32 add; returns the old value.
    fn atomic_add_u32(&mut self, address: u64, value: u32, pc: u32) -> Result<u32, FaultKind>;
    /// The thread took a backward branch from instruction `from` to `to` (a loop's next
    /// iteration); called only when profiling, for grouping accesses into warp-level
    /// requests.
    fn back_edge(&mut self, _from: u32, _to: u32) {}
}

/// What one thread sees besides memory.
pub struct ThreadEnv<'a> {
    /// `%tid`, `%ntid`, `%ctaid`, `%nctaid` (see [`special`]).
    pub specials: [u32; special::COUNT],
    /// The launch's parameter buffer.
    pub params: &'a [u8],
    /// Most instructions one thread may run.
    pub max_steps: u64,
}

#[inline(always)]
fn canonical(x: f32) -> u64 {
    if x.is_nan() {
        u64::from(CANONICAL_NAN)
    } else {
        u64::from(x.to_bits())
    }
}

/// Flushes an f32 subnormal to a zero of its sign (`.ftz`, and `atom.add.f32`).
pub(crate) fn flush(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

fn fmin(a: f32, b: f32) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f32::from_bits(CANONICAL_NAN),
        (true, false) => b,
        (false, true) => a,
        _ if a == b => {
            if a.is_sign_negative() {
                a
            } else {
                b
            }
        }
        _ => {
            if a < b {
                a
            } else {
                b
            }
        }
    }
}

fn fmax(a: f32, b: f32) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f32::from_bits(CANONICAL_NAN),
        (true, false) => b,
        (false, true) => a,
        _ if a == b => {
            if a.is_sign_positive() {
                a
            } else {
                b
            }
        }
        _ => {
            if a > b {
                a
            } else {
                b
            }
        }
    }
}

fn round(x: f32, mode: Round) -> f32 {
    match mode {
        Round::Nearest => x.round_ties_even(),
        Round::Zero => x.trunc(),
        Round::Down => x.floor(),
        Round::Up => x.ceil(),
    }
}

fn float_compare(cmp: FloatCmp, a: f32, b: f32) -> bool {
    let unordered = a.is_nan() || b.is_nan();
    match cmp {
        FloatCmp::Eq => a == b,
        FloatCmp::Ne => !unordered && a != b,
        FloatCmp::Lt => a < b,
        FloatCmp::Le => a <= b,
        FloatCmp::Gt => a > b,
        FloatCmp::Ge => a >= b,
        FloatCmp::Equ => unordered || a == b,
        FloatCmp::Neu => a != b,
        FloatCmp::Ltu => unordered || a < b,
        FloatCmp::Leu => unordered || a <= b,
        FloatCmp::Gtu => unordered || a > b,
        FloatCmp::Geu => unordered || a >= b,
        FloatCmp::Num => !unordered,
        FloatCmp::Nan => unordered,
    }
}

fn int_compare(cmp: IntCmp, a: u64, b: u64, signed_a: i64, signed_b: i64) -> bool {
    match cmp {
        IntCmp::Eq => a == b,
        IntCmp::Ne => a != b,
        IntCmp::Lt => signed_a < signed_b,
        IntCmp::Le => signed_a <= signed_b,
        IntCmp::Gt => signed_a > signed_b,
        IntCmp::Ge => signed_a >= signed_b,
        IntCmp::Lo => a < b,
        IntCmp::Ls => a <= b,
        IntCmp::Hi => a > b,
        IntCmp::Hs => a >= b,
    }
}

fn ftz_op(op: FtzOp, a: f32, b: f32) -> f32 {
    let (a, b) = (flush(a), flush(b));
    flush(match op {
        FtzOp::Add => a + b,
        FtzOp::Sub => a - b,
        FtzOp::Mul => a * b,
        FtzOp::Div => a / b,
        FtzOp::Min => fmin(a, b),
        FtzOp::Max => fmax(a, b),
        FtzOp::Rcp => 1.0 / a,
        FtzOp::Sqrt => a.sqrt(),
        FtzOp::Abs => a.abs(),
        FtzOp::Neg => -a,
    })
}

/// Runs one thread from the kernel's first instruction to its exit. `regs` must be
/// the kernel's template (or a register file left by another thread of it: the
/// writable registers are zeroed here). Returns the instructions executed, including
/// those whose guard was false; with `PROFILE`, also counts them by class into
/// `classes`.
///
/// # Errors
/// The first fault, with the instruction that raised it.
pub fn run_thread<M: GlobalMemory, const PROFILE: bool>(
    kernel: &Kernel,
    regs: &mut [u64],
    env: &ThreadEnv<'_>,
    memory: &mut M,
    classes: &mut [u64; Class::ALL.len()],
) -> Result<u64, Fault> {
    regs[..kernel.writable].fill(0);
    let code = &kernel.code[..];
    let mut pc = 0usize;
    let mut steps = 0u64;
    macro_rules! f {
        ($r:expr) => {
            f32::from_bits(regs[$r as usize] as u32)
        };
    }
    macro_rules! u {
        ($r:expr) => {
            regs[$r as usize] as u32
        };
    }
    macro_rules! q {
        ($r:expr) => {
            regs[$r as usize]
        };
    }
    macro_rules! set {
        ($d:expr, $v:expr) => {{
            let value: u64 = $v;
            regs[$d as usize] = value;
        }};
    }
    macro_rules! fault {
        ($kind:expr) => {
            return Err(Fault {
                kind: $kind,
                pc: (pc - 1) as u32,
            })
        };
    }
    macro_rules! mem {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(kind) => fault!(kind),
            }
        };
    }
    loop {
        let Some(inst) = code.get(pc) else {
            return Ok(steps);
        };
        steps += 1;
        pc += 1;
        if PROFILE {
            classes[inst.op.class().index()] += 1;
        }
        if inst.guard != UNGUARDED && ((regs[inst.guard as usize] != 0) == inst.guard_negated) {
            continue;
        }
        let at = (pc - 1) as u32;
        match inst.op {
            Op::FAdd { d, a, b } => set!(d, canonical(f!(a) + f!(b))),
            Op::FSub { d, a, b } => set!(d, canonical(f!(a) - f!(b))),
            Op::FMul { d, a, b } => set!(d, canonical(f!(a) * f!(b))),
            Op::FDiv { d, a, b } => set!(d, canonical(f!(a) / f!(b))),
            Op::FFma { d, a, b, c } => set!(d, canonical(f!(a).mul_add(f!(b), f!(c)))),
            Op::FRcp { d, a } => set!(d, canonical(1.0 / f!(a))),
            Op::FSqrt { d, a } => set!(d, canonical(f!(a).sqrt())),
            Op::FAbs { d, a } => set!(d, q!(a) & 0x7fff_ffff),
            Op::FNeg { d, a } => set!(d, q!(a) ^ 0x8000_0000),
            Op::FMin { d, a, b } => set!(d, u64::from(fmin(f!(a), f!(b)).to_bits())),
            Op::FMax { d, a, b } => set!(d, u64::from(fmax(f!(a), f!(b)).to_bits())),
            Op::Ftz { op, d, a, b } => set!(d, canonical(ftz_op(op, f!(a), f!(b)))),
            Op::Add32 { d, a, b } => set!(d, u64::from(u!(a).wrapping_add(u!(b)))),
            Op::Sub32 { d, a, b } => set!(d, u64::from(u!(a).wrapping_sub(u!(b)))),
            Op::MulLo32 { d, a, b } => set!(d, u64::from(u!(a).wrapping_mul(u!(b)))),
            Op::MulHiS32 { d, a, b } => {
                let p = i64::from(u!(a) as i32) * i64::from(u!(b) as i32);
                set!(d, u64::from((p >> 32) as u32))
            }
            Op::MulHiU32 { d, a, b } => {
                set!(d, (u64::from(u!(a)) * u64::from(u!(b))) >> 32)
            }
            Op::MulWideS32 { d, a, b } => {
                set!(
                    d,
                    (i64::from(u!(a) as i32) * i64::from(u!(b) as i32)) as u64
                )
            }
            Op::MulWideU32 { d, a, b } => set!(d, u64::from(u!(a)) * u64::from(u!(b))),
            Op::MadLo32 { d, a, b, c } => {
                set!(d, u64::from(u!(a).wrapping_mul(u!(b)).wrapping_add(u!(c))))
            }
            Op::MadWideS32 { d, a, b, c } => set!(
                d,
                ((i64::from(u!(a) as i32) * i64::from(u!(b) as i32)) as u64).wrapping_add(q!(c))
            ),
            Op::MadWideU32 { d, a, b, c } => {
                set!(d, (u64::from(u!(a)) * u64::from(u!(b))).wrapping_add(q!(c)))
            }
            Op::Add64 { d, a, b } => set!(d, q!(a).wrapping_add(q!(b))),
            Op::Sub64 { d, a, b } => set!(d, q!(a).wrapping_sub(q!(b))),
            Op::MulLo64 { d, a, b } => set!(d, q!(a).wrapping_mul(q!(b))),
            Op::MadLo64 { d, a, b, c } => set!(d, q!(a).wrapping_mul(q!(b)).wrapping_add(q!(c))),
            Op::MinS32 { d, a, b } => set!(d, u64::from((u!(a) as i32).min(u!(b) as i32) as u32)),
            Op::MaxS32 { d, a, b } => set!(d, u64::from((u!(a) as i32).max(u!(b) as i32) as u32)),
            Op::MinU32 { d, a, b } => set!(d, u64::from(u!(a).min(u!(b)))),
            Op::MaxU32 { d, a, b } => set!(d, u64::from(u!(a).max(u!(b)))),
            Op::MinS64 { d, a, b } => set!(d, (q!(a) as i64).min(q!(b) as i64) as u64),
            Op::MaxS64 { d, a, b } => set!(d, (q!(a) as i64).max(q!(b) as i64) as u64),
            Op::MinU64 { d, a, b } => set!(d, q!(a).min(q!(b))),
            Op::MaxU64 { d, a, b } => set!(d, q!(a).max(q!(b))),
            Op::Neg32 { d, a } => set!(d, u64::from(u!(a).wrapping_neg())),
            Op::Neg64 { d, a } => set!(d, q!(a).wrapping_neg()),
            Op::AbsS32 { d, a } => set!(d, u64::from((u!(a) as i32).wrapping_abs() as u32)),
            Op::And { d, a, b } => set!(d, q!(a) & q!(b)),
            Op::Or { d, a, b } => set!(d, q!(a) | q!(b)),
            Op::Xor { d, a, b } => set!(d, q!(a) ^ q!(b)),
            Op::Not32 { d, a } => set!(d, u64::from(!u!(a))),
            Op::Not64 { d, a } => set!(d, !q!(a)),
            Op::NotPred { d, a } => set!(d, u64::from(q!(a) == 0)),
            Op::Shl32 { d, a, b } => {
                let s = u!(b);
                set!(d, if s >= 32 { 0 } else { u64::from(u!(a) << s) })
            }
            Op::Shl64 { d, a, b } => {
                let s = u!(b);
                set!(d, if s >= 64 { 0 } else { q!(a) << s })
            }
            Op::ShrU32 { d, a, b } => {
                let s = u!(b);
                set!(d, if s >= 32 { 0 } else { u64::from(u!(a) >> s) })
            }
            Op::ShrS32 { d, a, b } => {
                let s = u!(b).min(31);
                set!(d, u64::from(((u!(a) as i32) >> s) as u32))
            }
            Op::ShrU64 { d, a, b } => {
                let s = u!(b);
                set!(d, if s >= 64 { 0 } else { q!(a) >> s })
            }
            Op::ShrS64 { d, a, b } => {
                let s = u!(b).min(63);
                set!(d, ((q!(a) as i64) >> s) as u64)
            }
            Op::SetpF32 { cmp, ftz, d, a, b } => {
                let (x, y) = if ftz {
                    (flush(f!(a)), flush(f!(b)))
                } else {
                    (f!(a), f!(b))
                };
                set!(d, u64::from(float_compare(cmp, x, y)))
            }
            Op::SetpI32 { cmp, d, a, b } => {
                let (x, y) = (u!(a), u!(b));
                let r = int_compare(
                    cmp,
                    u64::from(x),
                    u64::from(y),
                    i64::from(x as i32),
                    i64::from(y as i32),
                );
                set!(d, u64::from(r))
            }
            Op::SetpI64 { cmp, d, a, b } => {
                let (x, y) = (q!(a), q!(b));
                set!(d, u64::from(int_compare(cmp, x, y, x as i64, y as i64)))
            }
            Op::Selp { d, a, b, p } => set!(d, if q!(p) != 0 { q!(a) } else { q!(b) }),
            Op::Mov { d, a } => set!(d, q!(a)),
            Op::Special { d, which } => set!(d, u64::from(env.specials[which as usize])),
            Op::CvtF32U32 { d, a } => set!(d, u64::from((u!(a) as f32).to_bits())),
            Op::CvtF32S32 { d, a } => set!(d, u64::from((u!(a) as i32 as f32).to_bits())),
            Op::CvtF32U64 { d, a } => set!(d, u64::from((q!(a) as f32).to_bits())),
            Op::CvtF32S64 { d, a } => set!(d, u64::from((q!(a) as i64 as f32).to_bits())),
            Op::CvtS32F32 { round: r, d, a } => {
                set!(d, u64::from(round(f!(a), r) as i32 as u32))
            }
            Op::CvtU32F32 { round: r, d, a } => set!(d, u64::from(round(f!(a), r) as u32)),
            Op::CvtS64F32 { round: r, d, a } => set!(d, round(f!(a), r) as i64 as u64),
            Op::CvtU64F32 { round: r, d, a } => set!(d, round(f!(a), r) as u64),
            Op::CvtRoundF32 {
                round: r,
                ftz,
                d,
                a,
            } => {
                let x = if ftz { flush(f!(a)) } else { f!(a) };
                set!(d, canonical(round(x, r)))
            }
            Op::ZeroExtend32 { d, a } => set!(d, u64::from(u!(a))),
            Op::SignExtend32 { d, a } => set!(d, i64::from(u!(a) as i32) as u64),
            Op::Truncate64 { d, a } => set!(d, u64::from(q!(a) as u32)),
            Op::LdParam { d, offset, size } => {
                let start = offset as usize;
                let bytes = env.params.get(start..start + size as usize);
                let value = match bytes {
                    Some(b) if b.len() == 4 => {
                        u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    }
                    Some(b) if b.len() == 8 => {
                        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    }
                    _ => fault!(FaultKind::IllegalAddress {
                        address: u64::from(offset),
                        size: u32::from(size),
                        access: "parameter read",
                        detail: "outside the parameter buffer".into(),
                    }),
                };
                set!(d, value)
            }
            Op::LdGlobal32 {
                d,
                a,
                offset,
                nc,
                sign_extend,
            } => {
                let address = q!(a).wrapping_add(offset as i64 as u64);
                let value = mem!(memory.load32(address, nc, at));
                if sign_extend {
                    set!(d, value as i32 as i64 as u64)
                } else {
                    set!(d, u64::from(value))
                }
            }
            Op::LdGlobal64 { d, a, offset, nc } => {
                let address = q!(a).wrapping_add(offset as i64 as u64);
                let value = mem!(memory.load64(address, nc, at));
                set!(d, value)
            }
            Op::StGlobal32 { a, offset, v } => {
                let address = q!(a).wrapping_add(offset as i64 as u64);
                mem!(memory.store32(address, u!(v), at))
            }
            Op::StGlobal64 { a, offset, v } => {
                let address = q!(a).wrapping_add(offset as i64 as u64);
                mem!(memory.store64(address, q!(v), at))
            }
            Op::AtomAddF32 { d, a, offset, v } => {
                let address = q!(a).wrapping_add(offset as i64 as u64);
                let old = mem!(memory.atomic_add_f32(address, f!(v), at));
                if let Some(d) = d {
                    set!(d, u64::from(old.to_bits()))
                }
            }
            Op::AtomAddU32 { d, a, offset, v } => {
                let address = q!(a).wrapping_add(offset as i64 as u64);
                let old = mem!(memory.atomic_add_u32(address, u!(v), at));
                if let Some(d) = d {
                    set!(d, u64::from(old))
                }
            }
            Op::Bra { target } => {
                if steps > env.max_steps {
                    fault!(FaultKind::Timeout {
                        steps: env.max_steps
                    });
                }
                if PROFILE && (target as usize) < pc {
                    memory.back_edge(at, target);
                }
                pc = target as usize;
            }
            Op::Exit => return Ok(steps),
            Op::Trap => fault!(FaultKind::Trap),
        }
    }
}
