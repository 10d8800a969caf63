//! Parsed kernels to decoded ones: registers numbered, immediates given slots, operand
//! widths checked against the declarations, parameters laid out, labels resolved.
//!
//! Every opcode, modifier, type, operand form and special register is matched against
//! what is implemented; anything else is a [`LoadError`] that names it and its line.

use std::collections::HashMap;

use super::ops::{special, FloatCmp, FtzOp, Inst, IntCmp, Op, Reg, Round, UNGUARDED};
use super::parse::{type_size, KernelText, Statement};
use super::LoadError;

/// A kernel parameter's place in the parameter buffer.
#[derive(Clone, Debug)]
pub struct ParamSlot {
    /// Its name.
    pub name: String,
    /// Byte offset in the buffer.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// A kernel ready to run.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The entry's name.
    pub name: String,
    /// Parameters in order, with their offsets.
    pub params: Vec<ParamSlot>,
    /// Bytes of the parameter buffer.
    pub param_bytes: u32,
    /// The instructions.
    pub code: Vec<Inst>,
    /// The PTX line of each instruction.
    pub lines: Vec<u32>,
    /// The register file every thread starts from: zeros, then the immediates' slots.
    pub template: Vec<u64>,
    /// Registers that threads write (the slots before the immediates), reset per thread.
    pub writable: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Width {
    Pred,
    W32,
    W64,
}

impl Width {
    fn name(self) -> &'static str {
        match self {
            Width::Pred => ".pred",
            Width::W32 => "32-bit",
            Width::W64 => "64-bit",
        }
    }
}

fn width_of(ty: &str) -> Option<Width> {
    match type_size(ty)? {
        _ if ty == "pred" => Some(Width::Pred),
        4 => Some(Width::W32),
        8 => Some(Width::W64),
        _ => None,
    }
}

struct Decoder<'a> {
    kernel: &'a KernelText,
    regs: HashMap<String, (Reg, Width)>,
    constants: HashMap<u64, Reg>,
    constant_values: Vec<u64>,
    next_constant_base: usize,
    params: HashMap<String, ParamSlot>,
    line: u32,
}

/// What an instruction's text names as its type and kind of value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Float,
    Signed,
    Unsigned,
    Bits,
    Pred,
}

fn kind_of(ty: &str) -> Option<(Kind, Width)> {
    let kind = match ty.as_bytes().first()? {
        b'f' => Kind::Float,
        b's' => Kind::Signed,
        b'u' => Kind::Unsigned,
        b'b' => Kind::Bits,
        b'p' if ty == "pred" => Kind::Pred,
        _ => return None,
    };
    Some((kind, width_of(ty)?))
}

impl<'a> Decoder<'a> {
    fn error(&self, message: impl Into<String>) -> LoadError {
        LoadError {
            line: self.line,
            message: format!("kernel `{}`: {}", self.kernel.name, message.into()),
        }
    }

    fn register(&self, name: &str, want: Width) -> Result<Reg, LoadError> {
        let (reg, width) = *self
            .regs
            .get(name)
            .ok_or_else(|| self.error(format!("undeclared register `{name}`")))?;
        if width != want {
            return Err(self.error(format!(
                "register `{name}` is {} but the instruction needs {}",
                width.name(),
                want.name()
            )));
        }
        Ok(reg)
    }

    fn constant(&mut self, bits: u64) -> Result<Reg, LoadError> {
        if let Some(reg) = self.constants.get(&bits) {
            return Ok(*reg);
        }
        let index = self.next_constant_base + self.constant_values.len();
        let reg = Reg::try_from(index)
            .ok()
            .filter(|r| *r != UNGUARDED)
            .ok_or_else(|| self.error("too many registers and immediates"))?;
        self.constants.insert(bits, reg);
        self.constant_values.push(bits);
        Ok(reg)
    }

    /// A source operand: a register of the right width or an immediate of `ty`.
    fn source(&mut self, text: &str, ty: &str) -> Result<Reg, LoadError> {
        let (kind, width) =
            kind_of(ty).ok_or_else(|| self.error(format!("type `.{ty}` is not implemented")))?;
        if text.starts_with('%') {
            return self.register(text, width);
        }
        let bits = self.immediate(text, kind, width)?;
        self.constant(bits)
    }

    fn immediate(&self, text: &str, kind: Kind, width: Width) -> Result<u64, LoadError> {
        let bad = || self.error(format!("immediate `{text}` is not valid for its type"));
        if let Some(hex) = text.strip_prefix("0f").or_else(|| text.strip_prefix("0F")) {
            if width != Width::W32 || hex.len() != 8 {
                return Err(bad());
            }
            return u32::from_str_radix(hex, 16)
                .map(u64::from)
                .map_err(|_| bad());
        }
        if let Some(hex) = text.strip_prefix("0d").or_else(|| text.strip_prefix("0D")) {
            if width != Width::W64 || hex.len() != 16 {
                return Err(bad());
            }
            return u64::from_str_radix(hex, 16).map_err(|_| bad());
        }
        if kind == Kind::Float {
            let value: f64 = text.parse().map_err(|_| bad())?;
            return Ok(match width {
                Width::W32 => u64::from((value as f32).to_bits()),
                Width::W64 => value.to_bits(),
                Width::Pred => return Err(bad()),
            });
        }
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let digits = digits.strip_suffix('U').unwrap_or(digits);
        // PTX integer literals: 0x hex, 0b binary, 0 followed by digits octal, else
        // decimal.
        let magnitude = if let Some(hex) = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            u64::from_str_radix(hex, 16).map_err(|_| bad())?
        } else if let Some(binary) = digits
            .strip_prefix("0b")
            .or_else(|| digits.strip_prefix("0B"))
        {
            u64::from_str_radix(binary, 2).map_err(|_| bad())?
        } else if digits.len() > 1 && digits.starts_with('0') {
            u64::from_str_radix(&digits[1..], 8).map_err(|_| bad())?
        } else {
            digits.parse::<u64>().map_err(|_| bad())?
        };
        let fits = match (width, negative) {
            (Width::W32, false) => magnitude <= u64::from(u32::MAX),
            (Width::W32, true) => magnitude <= 1 << 31,
            (Width::W64, true) => magnitude <= 1 << 63,
            _ => true,
        };
        if !fits {
            return Err(self.error(format!(
                "immediate `{text}` does not fit its {} type",
                width.name()
            )));
        }
        let value = if negative {
            magnitude.wrapping_neg()
        } else {
            magnitude
        };
        Ok(match width {
            Width::W32 => value & 0xffff_ffff,
            Width::W64 => value,
            Width::Pred => u64::from(value != 0),
        })
    }

    fn destination(&self, text: &str, ty: &str) -> Result<Reg, LoadError> {
        let (_, width) =
            kind_of(ty).ok_or_else(|| self.error(format!("type `.{ty}` is not implemented")))?;
        if !text.starts_with('%') {
            return Err(self.error(format!("destination `{text}` is not a register")));
        }
        self.register(text, width)
    }

    /// `[%rd+off]` for global memory: the base register and the offset.
    fn global_address(&self, text: &str) -> Result<(Reg, i32), LoadError> {
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| self.error(format!("expected an address, found `{text}`")))?
            .trim();
        let (base, offset) =
            split_offset(inner).ok_or_else(|| self.error(format!("bad address `{text}`")))?;
        if !base.starts_with('%') {
            return Err(self.error(format!(
                "address `{text}` names a variable; only register addresses are implemented"
            )));
        }
        let offset = i32::try_from(offset)
            .map_err(|_| self.error(format!("offset in `{text}` is too large")))?;
        Ok((self.register(base, Width::W64)?, offset))
    }

    fn param_address(&self, text: &str, size: u32) -> Result<u32, LoadError> {
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| self.error(format!("expected a parameter address, found `{text}`")))?
            .trim();
        let (name, offset) =
            split_offset(inner).ok_or_else(|| self.error(format!("bad address `{text}`")))?;
        let slot = self
            .params
            .get(name)
            .ok_or_else(|| self.error(format!("`{name}` is not a parameter of this kernel")))?;
        let end = offset + i64::from(size);
        if (i64::from(slot.offset) + offset) % i64::from(size) != 0 {
            return Err(self.error(format!("`{text}` is not aligned to its {size} bytes")));
        }
        if offset < 0 || end > i64::from(slot.size) {
            return Err(self.error(format!(
                "`{text}` reads {size} bytes outside parameter `{name}` ({} bytes)",
                slot.size
            )));
        }
        Ok(slot.offset + offset as u32)
    }
}

/// `base+off`, `base+-off`, `base-off` or `base`.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some((base, off)) = text.split_once('+') {
        return Some((base.trim(), off.trim().parse().ok()?));
    }
    if let Some((base, off)) = text.split_once('-') {
        return Some((base.trim(), -off.trim().parse::<i64>().ok()?));
    }
    Some((text, 0))
}

fn float_cmp(name: &str) -> Option<FloatCmp> {
    Some(match name {
        "eq" => FloatCmp::Eq,
        "ne" => FloatCmp::Ne,
        "lt" => FloatCmp::Lt,
        "le" => FloatCmp::Le,
        "gt" => FloatCmp::Gt,
        "ge" => FloatCmp::Ge,
        "equ" => FloatCmp::Equ,
        "neu" => FloatCmp::Neu,
        "ltu" => FloatCmp::Ltu,
        "leu" => FloatCmp::Leu,
        "gtu" => FloatCmp::Gtu,
        "geu" => FloatCmp::Geu,
        "num" => FloatCmp::Num,
        "nan" => FloatCmp::Nan,
        _ => return None,
    })
}

fn int_cmp(name: &str, signed: bool) -> Option<IntCmp> {
    Some(match (name, signed) {
        ("eq", _) => IntCmp::Eq,
        ("ne", _) => IntCmp::Ne,
        ("lt", true) => IntCmp::Lt,
        ("le", true) => IntCmp::Le,
        ("gt", true) => IntCmp::Gt,
        ("ge", true) => IntCmp::Ge,
        ("lt" | "lo", false) => IntCmp::Lo,
        ("le" | "ls", false) => IntCmp::Ls,
        ("gt" | "hi", false) => IntCmp::Hi,
        ("ge" | "hs", false) => IntCmp::Hs,
        _ => return None,
    })
}

fn special_register(name: &str) -> Option<u8> {
    let (base, axis) = name.strip_prefix('%')?.split_once('.')?;
    let axis = match axis {
        "x" => 0,
        "y" => 1,
        "z" => 2,
        _ => return None,
    };
    let base = match base {
        "tid" => special::TID,
        "ntid" => special::NTID,
        "ctaid" => special::CTAID,
        "nctaid" => special::NCTAID,
        _ => return None,
    };
    Some(base + axis)
}

/// Splits operands at top-level commas.
fn operands(text: &str) -> Vec<&str> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    text.split(',').map(str::trim).collect()
}

impl<'a> Decoder<'a> {
    fn expect_operands(&self, ops: &[&str], n: usize, opcode: &str) -> Result<(), LoadError> {
        if ops.len() != n {
            return Err(self.error(format!(
                "`{opcode}` takes {n} operands, found {}",
                ops.len()
            )));
        }
        if let Some(vector) = ops.iter().find(|o| o.starts_with('{')) {
            return Err(self.error(format!("vector operand `{vector}` is not implemented")));
        }
        Ok(())
    }

    fn unsupported(&self, opcode: &str, what: &str) -> LoadError {
        self.error(format!("`{opcode}`: {what} is not implemented"))
    }

    /// Decodes one instruction (guard already removed) into an op.
    fn op(
        &mut self,
        opcode: &str,
        operand_text: &str,
        labels: &HashMap<String, u32>,
    ) -> Result<Op, LoadError> {
        let parts: Vec<&str> = opcode.split('.').collect();
        let base = parts[0];
        let mods = &parts[1..];
        let ops = operands(operand_text);
        let ty = mods.last().copied().unwrap_or("");
        let has = |m: &str| mods.contains(&m);
        // Modifiers each opcode accepts besides its type(s); any other is refused.
        let only = |allowed: &[&str], types: usize| -> Result<(), LoadError> {
            for m in &mods[..mods.len().saturating_sub(types)] {
                if !allowed.contains(m) {
                    return Err(self.unsupported(opcode, &format!("modifier `.{m}`")));
                }
            }
            Ok(())
        };
        match base {
            "add" | "sub" | "mul" | "div" | "min" | "max" | "fma" | "mad" | "rcp" | "sqrt"
            | "abs" | "neg" => self.arithmetic(base, opcode, mods, ty, &ops),
            "and" | "or" | "xor" | "not" => {
                only(&[], 1)?;
                let unary = base == "not";
                self.expect_operands(&ops, if unary { 2 } else { 3 }, opcode)?;
                let (kind, width) =
                    kind_of(ty).ok_or_else(|| self.unsupported(opcode, "this type"))?;
                if !matches!(kind, Kind::Bits | Kind::Pred) {
                    return Err(self.unsupported(opcode, &format!("type `.{ty}`")));
                }
                let d = self.destination(ops[0], ty)?;
                let a = self.source(ops[1], ty)?;
                if unary {
                    return Ok(match width {
                        Width::Pred => Op::NotPred { d, a },
                        Width::W32 => Op::Not32 { d, a },
                        Width::W64 => Op::Not64 { d, a },
                    });
                }
                let b = self.source(ops[2], ty)?;
                Ok(match base {
                    "and" => Op::And { d, a, b },
                    "or" => Op::Or { d, a, b },
                    _ => Op::Xor { d, a, b },
                })
            }
            "shl" | "shr" => {
                only(&[], 1)?;
                self.expect_operands(&ops, 3, opcode)?;
                let (kind, width) =
                    kind_of(ty).ok_or_else(|| self.unsupported(opcode, "this type"))?;
                let d = self.destination(ops[0], ty)?;
                let a = self.source(ops[1], ty)?;
                let b = self.source(ops[2], "u32")?;
                Ok(match (base, kind, width) {
                    ("shl", Kind::Bits | Kind::Signed | Kind::Unsigned, Width::W32) => {
                        Op::Shl32 { d, a, b }
                    }
                    ("shl", Kind::Bits | Kind::Signed | Kind::Unsigned, Width::W64) => {
                        Op::Shl64 { d, a, b }
                    }
                    ("shr", Kind::Bits | Kind::Unsigned, Width::W32) => Op::ShrU32 { d, a, b },
                    ("shr", Kind::Signed, Width::W32) => Op::ShrS32 { d, a, b },
                    ("shr", Kind::Bits | Kind::Unsigned, Width::W64) => Op::ShrU64 { d, a, b },
                    ("shr", Kind::Signed, Width::W64) => Op::ShrS64 { d, a, b },
                    _ => return Err(self.unsupported(opcode, &format!("type `.{ty}`"))),
                })
            }
            "setp" => {
                if mods.len() != 2 && !(mods.len() == 3 && mods[1] == "ftz") {
                    return Err(self.unsupported(
                        opcode,
                        "this form (boolean combination or missing compare)",
                    ));
                }
                self.expect_operands(&ops, 3, opcode)?;
                if ops[0].contains('|') {
                    return Err(self.unsupported(opcode, "a second destination `|`"));
                }
                let ftz = mods.len() == 3;
                let (kind, width) =
                    kind_of(ty).ok_or_else(|| self.unsupported(opcode, "this type"))?;
                let d = self.register(ops[0], Width::Pred)?;
                let a = self.source(ops[1], ty)?;
                let b = self.source(ops[2], ty)?;
                match (kind, width) {
                    (Kind::Float, Width::W32) => {
                        let cmp = float_cmp(mods[0]).ok_or_else(|| {
                            self.unsupported(opcode, &format!("compare `.{}`", mods[0]))
                        })?;
                        Ok(Op::SetpF32 { cmp, ftz, d, a, b })
                    }
                    (Kind::Signed | Kind::Unsigned | Kind::Bits, _)
                        if !ftz && width != Width::Pred =>
                    {
                        let signed = kind == Kind::Signed;
                        let cmp = int_cmp(mods[0], signed)
                            .filter(|c| kind != Kind::Bits || matches!(c, IntCmp::Eq | IntCmp::Ne))
                            .ok_or_else(|| {
                                self.unsupported(
                                    opcode,
                                    &format!("compare `.{}` on `.{ty}`", mods[0]),
                                )
                            })?;
                        Ok(if width == Width::W32 {
                            Op::SetpI32 { cmp, d, a, b }
                        } else {
                            Op::SetpI64 { cmp, d, a, b }
                        })
                    }
                    _ => Err(self.unsupported(opcode, &format!("type `.{ty}`"))),
                }
            }
            "selp" => {
                only(&[], 1)?;
                self.expect_operands(&ops, 4, opcode)?;
                kind_of(ty)
                    .filter(|(k, _)| *k != Kind::Pred)
                    .ok_or_else(|| self.unsupported(opcode, &format!("type `.{ty}`")))?;
                if ty == "f64" {
                    return Err(self.unsupported(opcode, "type `.f64`"));
                }
                let d = self.destination(ops[0], ty)?;
                let a = self.source(ops[1], ty)?;
                let b = self.source(ops[2], ty)?;
                let p = self.register(ops[3], Width::Pred)?;
                Ok(Op::Selp { d, a, b, p })
            }
            "mov" => {
                only(&[], 1)?;
                self.expect_operands(&ops, 2, opcode)?;
                let d = self.destination(ops[0], ty)?;
                if let Some(which) = special_register(ops[1]) {
                    if width_of(ty) != Some(Width::W32) {
                        return Err(self
                            .unsupported(opcode, "a special register into a non-32-bit register"));
                    }
                    return Ok(Op::Special { d, which });
                }
                if ops[1].starts_with('%') && !self.regs.contains_key(ops[1]) {
                    return Err(
                        self.error(format!("special register `{}` is not implemented", ops[1]))
                    );
                }
                if !ops[1].starts_with('%')
                    && ops[1]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                {
                    return Err(self.unsupported(
                        opcode,
                        &format!("the address of a variable (`{}`)", ops[1]),
                    ));
                }
                let a = self.source(ops[1], ty)?;
                Ok(Op::Mov { d, a })
            }
            "cvta" => {
                // Global and generic addresses are the same in this driver.
                let rest: Vec<&str> = mods.iter().copied().filter(|m| *m != "to").collect();
                if rest != ["global", "u64"] {
                    return Err(self.unsupported(opcode, "a state space other than `.global`"));
                }
                self.expect_operands(&ops, 2, opcode)?;
                let d = self.destination(ops[0], "u64")?;
                let a = self.source(ops[1], "u64")?;
                Ok(Op::Mov { d, a })
            }
            "cvt" => self.convert(opcode, mods, &ops),
            "ld" => {
                self.expect_operands(&ops, 2, opcode)?;
                let space = mods.first().copied().unwrap_or("");
                let size = type_size(ty)
                    .filter(|_| ty != "pred")
                    .ok_or_else(|| self.unsupported(opcode, &format!("type `.{ty}`")))?;
                if space == "param" {
                    only(&["param"], 1)?;
                    if size != 4 && size != 8 {
                        return Err(
                            self.unsupported(opcode, &format!("a {size}-byte parameter load"))
                        );
                    }
                    let d = self.destination(ops[0], ty)?;
                    let offset = self.param_address(ops[1], size)?;
                    return Ok(Op::LdParam {
                        d,
                        offset,
                        size: size as u8,
                    });
                }
                only(
                    &[
                        "global", "nc", "ca", "cg", "cs", "lu", "cv", "relaxed", "gpu", "weak",
                    ],
                    1,
                )?;
                for m in mods.iter().take(mods.len() - 1) {
                    if matches!(*m, "shared" | "local" | "const" | "param") {
                        return Err(self.unsupported(opcode, &format!("state space `.{m}`")));
                    }
                }
                let nc = has("nc");
                // PTX lets a 4-byte integer load fill a 64-bit register (extended).
                let wide = size == 4
                    && !ty.starts_with('f')
                    && self.regs.get(ops[0]).is_some_and(|&(_, w)| w == Width::W64);
                let d = self.destination(ops[0], if wide { "b64" } else { ty })?;
                let (a, offset) = self.global_address(ops[1])?;
                match size {
                    4 => Ok(Op::LdGlobal32 {
                        d,
                        a,
                        offset,
                        nc,
                        sign_extend: wide && ty.starts_with('s'),
                    }),
                    8 => Ok(Op::LdGlobal64 { d, a, offset, nc }),
                    _ => Err(self.unsupported(opcode, &format!("a {size}-byte load"))),
                }
            }
            "st" => {
                self.expect_operands(&ops, 2, opcode)?;
                only(
                    &["global", "wb", "cg", "cs", "wt", "relaxed", "gpu", "weak"],
                    1,
                )?;
                let size = type_size(ty)
                    .filter(|_| ty != "pred")
                    .ok_or_else(|| self.unsupported(opcode, &format!("type `.{ty}`")))?;
                let (a, offset) = self.global_address(ops[0])?;
                let v = self.source(ops[1], ty)?;
                match size {
                    4 => Ok(Op::StGlobal32 { a, offset, v }),
                    8 => Ok(Op::StGlobal64 { a, offset, v }),
                    _ => Err(self.unsupported(opcode, &format!("a {size}-byte store"))),
                }
            }
            "red" | "atom" => {
                let atom = base == "atom";
                only(&["global", "add", "relaxed", "gpu", "sys"], 1)?;
                if !has("add") {
                    return Err(self.unsupported(opcode, "an atomic operation other than `.add`"));
                }
                self.expect_operands(&ops, if atom { 3 } else { 2 }, opcode)?;
                let (first, rest) = if atom { (1, Some(ops[0])) } else { (0, None) };
                let (a, offset) = self.global_address(ops[first])?;
                let v = self.source(ops[first + 1], ty)?;
                let d = match rest {
                    Some(text) => Some(self.destination(text, ty)?),
                    None => None,
                };
                match ty {
                    "f32" => Ok(Op::AtomAddF32 { d, a, offset, v }),
                    "u32" | "s32" => Ok(Op::AtomAddU32 { d, a, offset, v }),
                    _ => Err(self.unsupported(opcode, &format!("type `.{ty}`"))),
                }
            }
            "bra" => {
                only(&["uni"], 0)?;
                self.expect_operands(&ops, 1, opcode)?;
                let target = *labels
                    .get(ops[0])
                    .ok_or_else(|| self.error(format!("branch to unknown label `{}`", ops[0])))?;
                Ok(Op::Bra { target })
            }
            "ret" | "exit" => {
                only(&["uni"], 0)?;
                self.expect_operands(&ops, 0, opcode)?;
                Ok(Op::Exit)
            }
            "trap" => {
                self.expect_operands(&ops, 0, opcode)?;
                Ok(Op::Trap)
            }
            _ => Err(self.error(format!("opcode `{opcode}` is not implemented"))),
        }
    }

    fn arithmetic(
        &mut self,
        base: &str,
        opcode: &str,
        mods: &[&str],
        ty: &str,
        ops: &[&str],
    ) -> Result<Op, LoadError> {
        let (kind, width) =
            kind_of(ty).ok_or_else(|| self.unsupported(opcode, &format!("type `.{ty}`")))?;
        let modifiers = &mods[..mods.len().saturating_sub(1)];
        let unary = matches!(base, "rcp" | "sqrt" | "abs" | "neg");
        let ternary = matches!(base, "fma" | "mad");
        self.expect_operands(
            ops,
            if unary {
                2
            } else if ternary {
                4
            } else {
                3
            },
            opcode,
        )?;
        if kind == Kind::Float {
            if width != Width::W32 {
                return Err(self.unsupported(opcode, &format!("type `.{ty}`")));
            }
            let mut ftz = false;
            let mut rn = false;
            for m in modifiers {
                match *m {
                    "ftz" => ftz = true,
                    "rn" => rn = true,
                    _ => return Err(self.unsupported(opcode, &format!("modifier `.{m}`"))),
                }
            }
            let needs_rn = matches!(base, "div" | "rcp" | "sqrt" | "fma");
            if needs_rn && !rn {
                return Err(
                    self.unsupported(opcode, "an approximate or unrounded form (only `.rn` is)")
                );
            }
            if matches!(base, "add" | "sub" | "mul") && !rn {
                // Without a rounding modifier, ptxas may fuse a mul and an add into one
                // fma: the GPU's result would then differ from an unfused one.
                return Err(self.unsupported(
                    opcode,
                    "f32 arithmetic without `.rn` (ptxas may contract it into an fma)",
                ));
            }
            if rn && matches!(base, "min" | "max" | "abs" | "neg") {
                return Err(self.unsupported(opcode, "modifier `.rn`"));
            }
            if base == "mad" {
                return Err(self.unsupported(opcode, "`mad` on f32 (write `fma.rn`)"));
            }
            let d = self.destination(ops[0], ty)?;
            let a = self.source(ops[1], ty)?;
            if unary {
                if ftz {
                    let op = match base {
                        "rcp" => FtzOp::Rcp,
                        "sqrt" => FtzOp::Sqrt,
                        "abs" => FtzOp::Abs,
                        _ => FtzOp::Neg,
                    };
                    return Ok(Op::Ftz { op, d, a, b: a });
                }
                return Ok(match base {
                    "rcp" => Op::FRcp { d, a },
                    "sqrt" => Op::FSqrt { d, a },
                    "abs" => Op::FAbs { d, a },
                    _ => Op::FNeg { d, a },
                });
            }
            let b = self.source(ops[2], ty)?;
            if ternary {
                if ftz {
                    return Err(self.unsupported(opcode, "modifier `.ftz`"));
                }
                let c = self.source(ops[3], ty)?;
                return Ok(Op::FFma { d, a, b, c });
            }
            if ftz {
                let op = match base {
                    "add" => FtzOp::Add,
                    "sub" => FtzOp::Sub,
                    "mul" => FtzOp::Mul,
                    "div" => FtzOp::Div,
                    "min" => FtzOp::Min,
                    _ => FtzOp::Max,
                };
                return Ok(Op::Ftz { op, d, a, b });
            }
            return Ok(match base {
                "add" => Op::FAdd { d, a, b },
                "sub" => Op::FSub { d, a, b },
                "mul" => Op::FMul { d, a, b },
                "div" => Op::FDiv { d, a, b },
                "min" => Op::FMin { d, a, b },
                _ => Op::FMax { d, a, b },
            });
        }
        if !matches!(kind, Kind::Signed | Kind::Unsigned) {
            return Err(self.unsupported(opcode, &format!("type `.{ty}`")));
        }
        let signed = kind == Kind::Signed;
        let mode = match modifiers {
            [] => "",
            ["lo"] => "lo",
            ["hi"] => "hi",
            ["wide"] => "wide",
            _ => {
                return Err(
                    self.unsupported(opcode, &format!("modifiers `{}`", modifiers.join(".")))
                )
            }
        };
        let product = matches!(base, "mul" | "mad");
        if product == mode.is_empty() {
            return Err(self.unsupported(opcode, "this form"));
        }
        let wide = mode == "wide";
        if wide && width != Width::W32 {
            return Err(self.unsupported(opcode, "`.wide` of 64-bit operands"));
        }
        let dest_ty = if wide {
            if signed {
                "s64"
            } else {
                "u64"
            }
        } else {
            ty
        };
        let d = self.destination(ops[0], dest_ty)?;
        let a = self.source(ops[1], ty)?;
        if unary {
            return match (base, width, signed) {
                ("neg", Width::W32, true) => Ok(Op::Neg32 { d, a }),
                ("neg", Width::W64, true) => Ok(Op::Neg64 { d, a }),
                ("abs", Width::W32, true) => Ok(Op::AbsS32 { d, a }),
                _ => Err(self.unsupported(opcode, &format!("type `.{ty}`"))),
            };
        }
        let b = self.source(ops[2], ty)?;
        let w64 = width == Width::W64;
        Ok(match base {
            "add" if w64 => Op::Add64 { d, a, b },
            "add" => Op::Add32 { d, a, b },
            "sub" if w64 => Op::Sub64 { d, a, b },
            "sub" => Op::Sub32 { d, a, b },
            "min" | "max" => match (base, w64, signed) {
                ("min", false, true) => Op::MinS32 { d, a, b },
                ("max", false, true) => Op::MaxS32 { d, a, b },
                ("min", false, false) => Op::MinU32 { d, a, b },
                ("max", false, false) => Op::MaxU32 { d, a, b },
                ("min", true, true) => Op::MinS64 { d, a, b },
                ("max", true, true) => Op::MaxS64 { d, a, b },
                ("min", true, false) => Op::MinU64 { d, a, b },
                _ => Op::MaxU64 { d, a, b },
            },
            "mul" => match (mode, w64, signed) {
                ("lo", false, _) => Op::MulLo32 { d, a, b },
                ("lo", true, _) => Op::MulLo64 { d, a, b },
                ("hi", false, true) => Op::MulHiS32 { d, a, b },
                ("hi", false, false) => Op::MulHiU32 { d, a, b },
                ("wide", _, true) => Op::MulWideS32 { d, a, b },
                ("wide", _, false) => Op::MulWideU32 { d, a, b },
                _ => return Err(self.unsupported(opcode, "this form")),
            },
            "mad" => {
                let c = self.source(ops[3], dest_ty)?;
                match (mode, w64, signed) {
                    ("lo", false, _) => Op::MadLo32 { d, a, b, c },
                    ("lo", true, _) => Op::MadLo64 { d, a, b, c },
                    ("wide", _, true) => Op::MadWideS32 { d, a, b, c },
                    ("wide", _, false) => Op::MadWideU32 { d, a, b, c },
                    _ => return Err(self.unsupported(opcode, "this form")),
                }
            }
            _ => return Err(self.unsupported(opcode, &format!("type `.{ty}`"))),
        })
    }

    fn convert(&mut self, opcode: &str, mods: &[&str], ops: &[&str]) -> Result<Op, LoadError> {
        self.expect_operands(ops, 2, opcode)?;
        if mods.len() < 2 {
            return Err(self.unsupported(opcode, "this form"));
        }
        let (dst, src) = (mods[mods.len() - 2], mods[mods.len() - 1]);
        let mut round = None;
        let mut ftz = false;
        for m in &mods[..mods.len() - 2] {
            match *m {
                "rn" => round = Some(("rn", None)),
                "rz" => round = Some(("rz", None)),
                "rm" => round = Some(("rm", None)),
                "rp" => round = Some(("rp", None)),
                "rni" => round = Some(("rni", Some(Round::Nearest))),
                "rzi" => round = Some(("rzi", Some(Round::Zero))),
                "rmi" => round = Some(("rmi", Some(Round::Down))),
                "rpi" => round = Some(("rpi", Some(Round::Up))),
                "ftz" => ftz = true,
                _ => return Err(self.unsupported(opcode, &format!("modifier `.{m}`"))),
            }
        }
        let (dk, dw) =
            kind_of(dst).ok_or_else(|| self.unsupported(opcode, &format!("type `.{dst}`")))?;
        let (sk, sw) =
            kind_of(src).ok_or_else(|| self.unsupported(opcode, &format!("type `.{src}`")))?;
        if dk == Kind::Pred
            || sk == Kind::Pred
            || (dk == Kind::Float && dw != Width::W32)
            || (sk == Kind::Float && sw != Width::W32)
        {
            return Err(self.unsupported(opcode, "this pair of types"));
        }
        let d = self.destination(ops[0], dst)?;
        let a = self.source(ops[1], src)?;
        let int = |k: Kind| matches!(k, Kind::Signed | Kind::Unsigned | Kind::Bits);
        match (dk, sk) {
            (Kind::Float, Kind::Float) => match round {
                Some((_, Some(round))) => Ok(Op::CvtRoundF32 { round, ftz, d, a }),
                _ => Err(self.unsupported(opcode, "f32 to f32 without an integer rounding")),
            },
            (Kind::Float, k) if int(k) => {
                if ftz || !matches!(round, Some(("rn", None))) {
                    return Err(
                        self.unsupported(opcode, "an integer to f32 rounding other than `.rn`")
                    );
                }
                Ok(match (k == Kind::Signed, sw) {
                    (false, Width::W32) => Op::CvtF32U32 { d, a },
                    (true, Width::W32) => Op::CvtF32S32 { d, a },
                    (false, _) => Op::CvtF32U64 { d, a },
                    (true, _) => Op::CvtF32S64 { d, a },
                })
            }
            (k, Kind::Float) if int(k) => {
                let Some((_, Some(round))) = round else {
                    return Err(self.unsupported(
                        opcode,
                        "an f32 to integer conversion without `.rni/.rzi/.rmi/.rpi`",
                    ));
                };
                if ftz {
                    return Err(
                        self.unsupported(opcode, "modifier `.ftz` on an f32 to integer conversion")
                    );
                }
                Ok(match (k == Kind::Signed, dw) {
                    (true, Width::W32) => Op::CvtS32F32 { round, d, a },
                    (false, Width::W32) => Op::CvtU32F32 { round, d, a },
                    (true, _) => Op::CvtS64F32 { round, d, a },
                    (false, _) => Op::CvtU64F32 { round, d, a },
                })
            }
            _ => {
                if round.is_some() || ftz {
                    return Err(
                        self.unsupported(opcode, "a rounding modifier on an integer conversion")
                    );
                }
                Ok(match (dw, sw) {
                    (Width::W64, Width::W32) if sk == Kind::Signed => Op::SignExtend32 { d, a },
                    (Width::W64, Width::W32) => Op::ZeroExtend32 { d, a },
                    (Width::W32, Width::W64) => Op::Truncate64 { d, a },
                    _ => Op::Mov { d, a },
                })
            }
        }
    }
}

/// Decodes one parsed kernel.
///
/// # Errors
/// The first unimplemented or malformed construct, with its line.
pub fn decode_kernel(kernel: &KernelText) -> Result<Kernel, LoadError> {
    let mut decoder = Decoder {
        kernel,
        regs: HashMap::new(),
        constants: HashMap::new(),
        constant_values: Vec::new(),
        next_constant_base: 0,
        params: HashMap::new(),
        line: kernel.line,
    };
    let mut next: usize = 0;
    for decl in &kernel.regs {
        decoder.line = decl.line;
        let width = width_of(&decl.ty).ok_or_else(|| {
            decoder.error(format!(
                "registers of type `.{}` are not implemented",
                decl.ty
            ))
        })?;
        let names: Vec<String> = match decl.count {
            Some(n) => (0..n).map(|i| format!("{}{i}", decl.prefix)).collect(),
            None => vec![decl.prefix.clone()],
        };
        for name in names {
            let reg = Reg::try_from(next)
                .ok()
                .filter(|r| *r != UNGUARDED)
                .ok_or_else(|| decoder.error("too many registers"))?;
            if decoder.regs.insert(name.clone(), (reg, width)).is_some() {
                return Err(decoder.error(format!("register `{name}` is declared twice")));
            }
            next += 1;
        }
    }
    decoder.next_constant_base = next;
    let mut offset = 0u32;
    let mut params = Vec::new();
    for param in &kernel.params {
        let align = param.align.max(1);
        offset = offset.div_ceil(align) * align;
        let slot = ParamSlot {
            name: param.name.clone(),
            offset,
            size: param.size,
        };
        offset += param.size;
        decoder.params.insert(param.name.clone(), slot.clone());
        params.push(slot);
    }
    // Labels name the index of the next instruction.
    let mut labels = HashMap::new();
    let mut count = 0u32;
    for (statement, line) in &kernel.body {
        match statement {
            Statement::Label(name) => {
                if labels.insert(name.clone(), count).is_some() {
                    decoder.line = *line;
                    return Err(decoder.error(format!("label `{name}` is defined twice")));
                }
            }
            Statement::Instruction(_) => count += 1,
        }
    }
    let mut code = Vec::new();
    let mut lines = Vec::new();
    for (statement, line) in &kernel.body {
        let Statement::Instruction(text) = statement else {
            continue;
        };
        decoder.line = *line;
        let (guard, guard_negated, rest) = match text.strip_prefix('@') {
            Some(rest) => {
                let (pred, rest) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| decoder.error("a guard without an instruction"))?;
                let (negated, pred) = match pred.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, pred),
                };
                (decoder.register(pred, Width::Pred)?, negated, rest.trim())
            }
            None => (UNGUARDED, false, text.as_str()),
        };
        let (opcode, operand_text) = match rest.split_once(char::is_whitespace) {
            Some((opcode, operands)) => (opcode, operands.trim()),
            None => (rest, ""),
        };
        let op = decoder.op(opcode, operand_text, &labels)?;
        code.push(Inst {
            op,
            guard,
            guard_negated,
        });
        lines.push(*line);
    }
    // A thread that runs off the end exits, as after `ret`.
    code.push(Inst {
        op: Op::Exit,
        guard: UNGUARDED,
        guard_negated: false,
    });
    lines.push(lines.last().copied().unwrap_or(kernel.line));
    let mut template = vec![0u64; next];
    template.extend_from_slice(&decoder.constant_values);
    Ok(Kernel {
        name: kernel.name.clone(),
        params,
        param_bytes: offset,
        code,
        lines,
        template,
        writable: next,
    })
}
