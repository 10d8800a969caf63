//! The pre-decoded form of a kernel: one [`Inst`] per PTX instruction, with register
//! operands as indices into a flat register file and branch targets resolved.
//!
//! Every register holds its value in a `u64`: 32-bit values (`.b32`, `.f32`, `.u32`,
//! `.s32`) in the low half with the high half zero, predicates as 0 or 1. Immediates
//! are given register slots of their own, filled once in the register template, so an
//! operand is always a register index.

/// A register index into the thread's register file.
pub type Reg = u16;

/// Which special register a `mov` reads (`%tid.x` ... `%nctaid.z`), as an index into
/// the thread's special-register array.
pub mod special {
    /// `%tid.x`; `.y` and `.z` follow.
    pub const TID: u8 = 0;
    /// `%ntid.x`; `.y` and `.z` follow.
    pub const NTID: u8 = 3;
    /// `%ctaid.x`; `.y` and `.z` follow.
    pub const CTAID: u8 = 6;
    /// `%nctaid.x`; `.y` and `.z` follow.
    pub const NCTAID: u8 = 9;
    /// Number of special registers.
    pub const COUNT: usize = 12;
}

/// f32 comparison of `setp` (ordered ones are false on NaN, unordered ones true).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatCmp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `lt`
    Lt,
    /// `le`
    Le,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `equ`
    Equ,
    /// `neu`
    Neu,
    /// `ltu`
    Ltu,
    /// `leu`
    Leu,
    /// `gtu`
    Gtu,
    /// `geu`
    Geu,
    /// `num`: neither is NaN
    Num,
    /// `nan`: either is NaN
    Nan,
}

/// Integer comparison of `setp`, signedness included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntCmp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// signed `lt`
    Lt,
    /// signed `le`
    Le,
    /// signed `gt`
    Gt,
    /// signed `ge`
    Ge,
    /// unsigned `lt` / `lo`
    Lo,
    /// unsigned `le` / `ls`
    Ls,
    /// unsigned `gt` / `hi`
    Hi,
    /// unsigned `ge` / `hs`
    Hs,
}

/// Rounding of a float-to-integer or float-to-float-integer `cvt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// `rni`: to nearest, ties to even
    Nearest,
    /// `rzi`: toward zero
    Zero,
    /// `rmi`: toward minus infinity
    Down,
    /// `rpi`: toward plus infinity
    Up,
}

/// An f32 operation with `.ftz` (subnormal inputs and results flushed to zero); rare,
/// so it lives behind one variant instead of doubling the hot ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FtzOp {
    /// `add.ftz`
    Add,
    /// `sub.ftz`
    Sub,
    /// `mul.ftz`
    Mul,
    /// `div.rn.ftz`
    Div,
    /// `min.ftz`
    Min,
    /// `max.ftz`
    Max,
    /// `rcp.rn.ftz` (unary: b unused)
    Rcp,
    /// `sqrt.rn.ftz` (unary)
    Sqrt,
    /// `abs.ftz` (unary)
    Abs,
    /// `neg.ftz` (unary)
    Neg,
}

/// Cost class of an opcode, for the profile's per-class instruction counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// f32 arithmetic
    Float,
    /// integer arithmetic and shifts
    Integer,
    /// bitwise and predicate logic
    Logic,
    /// `setp`, `selp`
    CompareSelect,
    /// `cvt` that changes width or type (`cvta` and same-width `cvt` are moves)
    Convert,
    /// `mov` of registers, immediates and special registers
    Move,
    /// `ld.param`
    LoadParam,
    /// `ld.global` (with `.nc` or not)
    LoadGlobal,
    /// `st.global`
    StoreGlobal,
    /// `red`, `atom`
    Atomic,
    /// `bra`, `ret`, `exit`, `trap`
    Control,
}

impl Class {
    /// Every class, in the order of [`Class::index`].
    pub const ALL: [Class; 11] = [
        Class::Float,
        Class::Integer,
        Class::Logic,
        Class::CompareSelect,
        Class::Convert,
        Class::Move,
        Class::LoadParam,
        Class::LoadGlobal,
        Class::StoreGlobal,
        Class::Atomic,
        Class::Control,
    ];

    /// Position in [`Class::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in the profile.
    pub fn name(self) -> &'static str {
        match self {
            Class::Float => "float",
            Class::Integer => "integer",
            Class::Logic => "logic",
            Class::CompareSelect => "compare_select",
            Class::Convert => "convert",
            Class::Move => "move",
            Class::LoadParam => "load_param",
            Class::LoadGlobal => "load_global",
            Class::StoreGlobal => "store_global",
            Class::Atomic => "atomic",
            Class::Control => "control",
        }
    }
}

/// One decoded operation. In every variant, `d` is the destination register, `a`, `b`,
/// `c` the source registers, `p` a predicate register, `v` the value stored, `offset`
/// the address's byte offset from register `a`; other fields are named for what they
/// select.
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)] // the fields, uniform across variants, are described above
pub enum Op {
    /// f32 `add.rn`
    FAdd { d: Reg, a: Reg, b: Reg },
    /// f32 `sub.rn`
    FSub { d: Reg, a: Reg, b: Reg },
    /// f32 `mul.rn`
    FMul { d: Reg, a: Reg, b: Reg },
    /// f32 `div.rn` (correctly rounded)
    FDiv { d: Reg, a: Reg, b: Reg },
    /// f32 `fma.rn` (one rounding)
    FFma { d: Reg, a: Reg, b: Reg, c: Reg },
    /// f32 `rcp.rn` (correctly rounded 1/a)
    FRcp { d: Reg, a: Reg },
    /// f32 `sqrt.rn` (correctly rounded)
    FSqrt { d: Reg, a: Reg },
    /// f32 `abs`
    FAbs { d: Reg, a: Reg },
    /// f32 `neg`
    FNeg { d: Reg, a: Reg },
    /// f32 `min` (NaN loses to a number)
    FMin { d: Reg, a: Reg, b: Reg },
    /// f32 `max` (NaN loses to a number)
    FMax { d: Reg, a: Reg, b: Reg },
    /// f32 operation with `.ftz`
    Ftz { op: FtzOp, d: Reg, a: Reg, b: Reg },
    /// 32-bit `add`
    Add32 { d: Reg, a: Reg, b: Reg },
    /// 32-bit `sub`
    Sub32 { d: Reg, a: Reg, b: Reg },
    /// 32-bit `mul.lo`
    MulLo32 { d: Reg, a: Reg, b: Reg },
    /// `mul.hi.s32`
    MulHiS32 { d: Reg, a: Reg, b: Reg },
    /// `mul.hi.u32`
    MulHiU32 { d: Reg, a: Reg, b: Reg },
    /// `mul.wide.s32`: 64-bit product of two s32
    MulWideS32 { d: Reg, a: Reg, b: Reg },
    /// `mul.wide.u32`: 64-bit product of two u32
    MulWideU32 { d: Reg, a: Reg, b: Reg },
    /// 32-bit `mad.lo`
    MadLo32 { d: Reg, a: Reg, b: Reg, c: Reg },
    /// `mad.wide.s32`
    MadWideS32 { d: Reg, a: Reg, b: Reg, c: Reg },
    /// `mad.wide.u32`
    MadWideU32 { d: Reg, a: Reg, b: Reg, c: Reg },
    /// 64-bit `add`
    Add64 { d: Reg, a: Reg, b: Reg },
    /// 64-bit `sub`
    Sub64 { d: Reg, a: Reg, b: Reg },
    /// 64-bit `mul.lo`
    MulLo64 { d: Reg, a: Reg, b: Reg },
    /// 64-bit `mad.lo`
    MadLo64 { d: Reg, a: Reg, b: Reg, c: Reg },
    /// `min.s32`
    MinS32 { d: Reg, a: Reg, b: Reg },
    /// `max.s32`
    MaxS32 { d: Reg, a: Reg, b: Reg },
    /// `min.u32`
    MinU32 { d: Reg, a: Reg, b: Reg },
    /// `max.u32`
    MaxU32 { d: Reg, a: Reg, b: Reg },
    /// `min.s64`
    MinS64 { d: Reg, a: Reg, b: Reg },
    /// `max.s64`
    MaxS64 { d: Reg, a: Reg, b: Reg },
    /// `min.u64`
    MinU64 { d: Reg, a: Reg, b: Reg },
    /// `max.u64`
    MaxU64 { d: Reg, a: Reg, b: Reg },
    /// 32-bit `neg`
    Neg32 { d: Reg, a: Reg },
    /// 64-bit `neg`
    Neg64 { d: Reg, a: Reg },
    /// `abs.s32`
    AbsS32 { d: Reg, a: Reg },
    /// `and` of any width (the high half of 32-bit values is zero on both sides)
    And { d: Reg, a: Reg, b: Reg },
    /// `or` of any width
    Or { d: Reg, a: Reg, b: Reg },
    /// `xor` of any width
    Xor { d: Reg, a: Reg, b: Reg },
    /// `not.b32`
    Not32 { d: Reg, a: Reg },
    /// `not.b64`
    Not64 { d: Reg, a: Reg },
    /// `not.pred`
    NotPred { d: Reg, a: Reg },
    /// `shl.b32` (a shift of 32 or more gives 0)
    Shl32 { d: Reg, a: Reg, b: Reg },
    /// `shl.b64`
    Shl64 { d: Reg, a: Reg, b: Reg },
    /// `shr.u32` / `shr.b32`
    ShrU32 { d: Reg, a: Reg, b: Reg },
    /// `shr.s32` (sign fill beyond the width)
    ShrS32 { d: Reg, a: Reg, b: Reg },
    /// `shr.u64` / `shr.b64`
    ShrU64 { d: Reg, a: Reg, b: Reg },
    /// `shr.s64`
    ShrS64 { d: Reg, a: Reg, b: Reg },
    /// `setp` on f32
    SetpF32 {
        cmp: FloatCmp,
        ftz: bool,
        d: Reg,
        a: Reg,
        b: Reg,
    },
    /// `setp` on 32-bit integers
    SetpI32 { cmp: IntCmp, d: Reg, a: Reg, b: Reg },
    /// `setp` on 64-bit integers
    SetpI64 { cmp: IntCmp, d: Reg, a: Reg, b: Reg },
    /// `selp`: d = p ? a : b
    Selp { d: Reg, a: Reg, b: Reg, p: Reg },
    /// `mov`, `cvta` and same-width `cvt`: a bit copy
    Mov { d: Reg, a: Reg },
    /// `mov` of a special register
    Special { d: Reg, which: u8 },
    /// `cvt.rn.f32.u32`
    CvtF32U32 { d: Reg, a: Reg },
    /// `cvt.rn.f32.s32`
    CvtF32S32 { d: Reg, a: Reg },
    /// `cvt.rn.f32.u64`
    CvtF32U64 { d: Reg, a: Reg },
    /// `cvt.rn.f32.s64`
    CvtF32S64 { d: Reg, a: Reg },
    /// `cvt.r*i.s32.f32`: round, saturate, NaN to 0
    CvtS32F32 { round: Round, d: Reg, a: Reg },
    /// `cvt.r*i.u32.f32`
    CvtU32F32 { round: Round, d: Reg, a: Reg },
    /// `cvt.r*i.s64.f32`
    CvtS64F32 { round: Round, d: Reg, a: Reg },
    /// `cvt.r*i.u64.f32`
    CvtU64F32 { round: Round, d: Reg, a: Reg },
    /// `cvt.r*i.f32.f32`: round to an integral f32
    CvtRoundF32 {
        round: Round,
        ftz: bool,
        d: Reg,
        a: Reg,
    },
    /// `cvt.u64.u32` (zero extension)
    ZeroExtend32 { d: Reg, a: Reg },
    /// `cvt.s64.s32` (sign extension)
    SignExtend32 { d: Reg, a: Reg },
    /// `cvt.u32.u64` and friends (truncation to the low half)
    Truncate64 { d: Reg, a: Reg },
    /// `ld.param` of `size` bytes at byte `offset` of the parameter buffer
    LdParam { d: Reg, offset: u32, size: u8 },
    /// `ld.global` of 4 bytes at `[a + offset]`; `nc` for the non-coherent path;
    /// `sign_extend` for an `.s32` load into a 64-bit register (PTX lets `ld` write a
    /// register wider than its type: zero-extended for `.b32`/`.u32`, sign-extended for
    /// `.s32`)
    LdGlobal32 {
        d: Reg,
        a: Reg,
        offset: i32,
        nc: bool,
        sign_extend: bool,
    },
    /// `ld.global` of 8 bytes
    LdGlobal64 {
        d: Reg,
        a: Reg,
        offset: i32,
        nc: bool,
    },
    /// `st.global` of 4 bytes of `v` at `[a + offset]`
    StGlobal32 { a: Reg, offset: i32, v: Reg },
    /// `st.global` of 8 bytes
    StGlobal64 { a: Reg, offset: i32, v: Reg },
    /// `red.global.add.f32` / `atom.global.add.f32` (`d` is the old value, for `atom`)
    AtomAddF32 {
        d: Option<Reg>,
        a: Reg,
        offset: i32,
        v: Reg,
    },
    /// `red.global.add.u32` / `atom.global.add.u32` (and `.s32`, the same bits)
    AtomAddU32 {
        d: Option<Reg>,
        a: Reg,
        offset: i32,
        v: Reg,
    },
    /// `bra` to instruction index `target`
    Bra { target: u32 },
    /// `ret` / `exit`
    Exit,
    /// `trap`: the launch fails
    Trap,
}

impl Op {
    /// The op's cost class.
    pub fn class(&self) -> Class {
        use Op::*;
        match self {
            FAdd { .. }
            | FSub { .. }
            | FMul { .. }
            | FDiv { .. }
            | FFma { .. }
            | FRcp { .. }
            | FSqrt { .. }
            | FAbs { .. }
            | FNeg { .. }
            | FMin { .. }
            | FMax { .. }
            | Ftz { .. } => Class::Float,
            Add32 { .. }
            | Sub32 { .. }
            | MulLo32 { .. }
            | MulHiS32 { .. }
            | MulHiU32 { .. }
            | MulWideS32 { .. }
            | MulWideU32 { .. }
            | MadLo32 { .. }
            | MadWideS32 { .. }
            | MadWideU32 { .. }
            | Add64 { .. }
            | Sub64 { .. }
            | MulLo64 { .. }
            | MadLo64 { .. }
            | MinS32 { .. }
            | MaxS32 { .. }
            | MinU32 { .. }
            | MaxU32 { .. }
            | MinS64 { .. }
            | MaxS64 { .. }
            | MinU64 { .. }
            | MaxU64 { .. }
            | Neg32 { .. }
            | Neg64 { .. }
            | AbsS32 { .. }
            | Shl32 { .. }
            | Shl64 { .. }
            | ShrU32 { .. }
            | ShrS32 { .. }
            | ShrU64 { .. }
            | ShrS64 { .. } => Class::Integer,
            And { .. } | Or { .. } | Xor { .. } | Not32 { .. } | Not64 { .. } | NotPred { .. } => {
                Class::Logic
            }
            SetpF32 { .. } | SetpI32 { .. } | SetpI64 { .. } | Selp { .. } => Class::CompareSelect,
            CvtF32U32 { .. }
            | CvtF32S32 { .. }
            | CvtF32U64 { .. }
            | CvtF32S64 { .. }
            | CvtS32F32 { .. }
            | CvtU32F32 { .. }
            | CvtS64F32 { .. }
            | CvtU64F32 { .. }
            | CvtRoundF32 { .. }
            | ZeroExtend32 { .. }
            | SignExtend32 { .. }
            | Truncate64 { .. } => Class::Convert,
            Mov { .. } | Special { .. } => Class::Move,
            LdParam { .. } => Class::LoadParam,
            LdGlobal32 { .. } | LdGlobal64 { .. } => Class::LoadGlobal,
            StGlobal32 { .. } | StGlobal64 { .. } => Class::StoreGlobal,
            AtomAddF32 { .. } | AtomAddU32 { .. } => Class::Atomic,
            Bra { .. } | Exit | Trap => Class::Control,
        }
    }
}

/// No guard predicate.
pub const UNGUARDED: Reg = Reg::MAX;

/// A decoded instruction: the op and its guard (`@%p` / `@!%p`).
#[derive(Clone, Copy, Debug)]
pub struct Inst {
    /// What it does.
    pub op: Op,
    /// The guard predicate's register, or [`UNGUARDED`].
    pub guard: Reg,
    /// True for `@!%p`: run when the predicate is false.
    pub guard_negated: bool,
}
