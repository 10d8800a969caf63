//! PTX text to a list of kernels, each with its parameters, register declarations and
//! statements (labels and instructions, with their line numbers).
//!
//! This reads the subset that rustc's NVPTX backend emits for `kernels/`: the module
//! directives `.version`, `.target`, `.address_size`; `.visible .entry` kernels with
//! `.param` scalars and byte arrays; `.reg` declarations; labels; one instruction per
//! statement. Anything else at module scope (`.func`, `.global`/`.shared`/`.const`
//! variables, `.extern`) or in a kernel (`.local`, `.shared`, `.pragma`...) is refused
//! with its line, never skipped.

use super::LoadError;

/// A kernel parameter as declared.
#[derive(Clone, Debug)]
pub struct ParamDecl {
    /// Its name (`name_param_0`).
    pub name: String,
    /// Size in bytes.
    pub size: u32,
    /// Alignment in bytes.
    pub align: u32,
}

/// A `.reg` declaration: `count` registers `prefix0..prefix{count-1}`, or one register
/// named `prefix` when `count` is `None`.
#[derive(Clone, Debug)]
pub struct RegDecl {
    /// `pred`, `b32`, `f32`, `b64`, ...
    pub ty: String,
    /// The name, or the prefix of a parameterised declaration (`%r`).
    pub prefix: String,
    /// `Some(n)` for `%r<n>`.
    pub count: Option<u32>,
    /// Where it was declared.
    pub line: u32,
}

/// A statement in a kernel body.
#[derive(Clone, Debug)]
pub enum Statement {
    /// `name:`
    Label(String),
    /// An instruction's text without the `;`.
    Instruction(String),
}

/// A kernel as written.
#[derive(Clone, Debug)]
pub struct KernelText {
    /// The entry's name.
    pub name: String,
    /// Where `.entry` is.
    pub line: u32,
    /// Its parameters, in order.
    pub params: Vec<ParamDecl>,
    /// Its register declarations.
    pub regs: Vec<RegDecl>,
    /// Labels and instructions with their lines.
    pub body: Vec<(Statement, u32)>,
}

/// The module's kernels and the target it names.
#[derive(Clone, Debug)]
pub struct ModuleText {
    /// The `.target` (for example `sm_70`).
    pub target: String,
    /// The kernels, in order.
    pub kernels: Vec<KernelText>,
}

/// A piece of the text between `;`, `{`, `}` and label colons, with its first line.
#[derive(Debug)]
enum Piece {
    Text(String, u32),
    Open(u32),
    Close(u32),
}

/// Removes `//` and `/* */` comments, keeping newlines so that lines stay right.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            let mut last = ' ';
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                }
                if last == '*' && c == '/' {
                    break;
                }
                last = c;
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.' | '%'))
        && !text.starts_with('.')
}

/// Splits the text into statements, braces and labels.
fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start_line = 1;
    let mut line = 1;
    let mut depth_paren = 0;
    let flush = |current: &mut String, start_line: u32, out: &mut Vec<Piece>| {
        let trimmed = current.trim();
        if !trimmed.is_empty() {
            out.push(Piece::Text(trimmed.to_string(), start_line));
        }
        current.clear();
    };
    for c in text.chars() {
        if current.trim().is_empty() {
            start_line = line;
        }
        match c {
            '\n' => {
                line += 1;
                // Module directives end at the line's end, without a `;`.
                let t = current.trim_start();
                if t.starts_with(".version")
                    || t.starts_with(".target")
                    || t.starts_with(".address_size")
                {
                    flush(&mut current, start_line, &mut out);
                } else {
                    current.push(' ');
                }
            }
            '(' => {
                depth_paren += 1;
                current.push(c);
            }
            ')' => {
                depth_paren -= 1;
                current.push(c);
            }
            ';' if depth_paren == 0 => flush(&mut current, start_line, &mut out),
            '{' if depth_paren == 0 => {
                flush(&mut current, start_line, &mut out);
                out.push(Piece::Open(line));
            }
            '}' if depth_paren == 0 => {
                flush(&mut current, start_line, &mut out);
                out.push(Piece::Close(line));
            }
            ':' if depth_paren == 0 && is_identifier(current.trim()) => {
                current.push(':');
                flush(&mut current, start_line, &mut out);
            }
            _ => current.push(c),
        }
    }
    flush(&mut current, start_line, &mut out);
    out
}

fn refuse(line: u32, message: impl Into<String>) -> LoadError {
    LoadError {
        line,
        message: message.into(),
    }
}

/// Bytes of a PTX fundamental type (`.u64` -> 8).
pub fn type_size(ty: &str) -> Option<u32> {
    Some(match ty {
        "pred" => 1,
        "b8" | "u8" | "s8" => 1,
        "b16" | "u16" | "s16" | "f16" => 2,
        "b32" | "u32" | "s32" | "f32" => 4,
        "b64" | "u64" | "s64" | "f64" => 8,
        _ => return None,
    })
}

/// One `.param` declaration of an entry's parameter list.
fn parse_param(text: &str, line: u32) -> Result<ParamDecl, LoadError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.first() != Some(&".param") {
        return Err(refuse(line, format!("expected `.param`, found `{text}`")));
    }
    let mut align = None;
    let mut ty = None;
    let mut name = None;
    let mut i = 1;
    let mut pointer = false;
    while i < words.len() {
        let w = words[i];
        if w == ".align" && pointer {
            // `.ptr .align N`: the alignment of what the pointer points to.
            i += 2;
            continue;
        }
        if w == ".align" {
            let value = words
                .get(i + 1)
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| refuse(line, format!("bad `.align` in `{text}`")))?;
            align = Some(value);
            i += 2;
            continue;
        }
        if w == ".ptr" || w == ".global" || w == ".const" || w == ".local" || w == ".shared" {
            // `.ptr .global .align N`: an attribute of a pointer-valued parameter.
            pointer |= w == ".ptr";
            i += 1;
            continue;
        }
        if let Some(t) = w.strip_prefix('.') {
            ty = Some(t.to_string());
        } else {
            name = Some(w.to_string());
        }
        i += 1;
    }
    let ty = ty.ok_or_else(|| refuse(line, format!("parameter without a type: `{text}`")))?;
    let name = name.ok_or_else(|| refuse(line, format!("parameter without a name: `{text}`")))?;
    let element = type_size(&ty)
        .filter(|_| ty != "pred")
        .ok_or_else(|| refuse(line, format!("parameter type `.{ty}` is not implemented")))?;
    let (name, size) = match name.split_once('[') {
        Some((base, rest)) => {
            let count = rest
                .strip_suffix(']')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| refuse(line, format!("bad array parameter `{name}`")))?;
            (base.to_string(), element * count)
        }
        None => (name, element),
    };
    Ok(ParamDecl {
        name,
        size,
        align: align.unwrap_or(element),
    })
}

/// The header `.visible .entry name(params)`.
fn parse_entry_header(text: &str, line: u32) -> Result<(String, Vec<ParamDecl>), LoadError> {
    let after = text
        .split_once(".entry")
        .map(|(_, rest)| rest.trim())
        .ok_or_else(|| refuse(line, format!("expected `.entry` in `{text}`")))?;
    let (name, rest) = match after.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest)),
        None => (after.split_whitespace().next().unwrap_or(""), None),
    };
    if !is_identifier(name) {
        return Err(refuse(line, format!("bad kernel name `{name}`")));
    }
    let mut params = Vec::new();
    if let Some(rest) = rest {
        let (list, tail) = rest
            .rsplit_once(')')
            .ok_or_else(|| refuse(line, "unclosed parameter list"))?;
        if !tail.trim().is_empty() {
            return Err(refuse(
                line,
                format!("kernel directive `{}` is not implemented", tail.trim()),
            ));
        }
        for param in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            params.push(parse_param(param, line)?);
        }
    }
    Ok((name.to_string(), params))
}

fn parse_reg(text: &str, line: u32) -> Result<Vec<RegDecl>, LoadError> {
    // `.reg .b32 %r<211>` or `.reg .f32 %f1, %f2`
    let rest = text.trim_start_matches(".reg").trim();
    let (ty, names) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(|| refuse(line, format!("bad register declaration `{text}`")))?;
    let ty = ty
        .strip_prefix('.')
        .filter(|t| type_size(t).is_some())
        .ok_or_else(|| refuse(line, format!("register type `{ty}` is not implemented")))?;
    let mut out = Vec::new();
    for name in names.split(',').map(str::trim) {
        let (prefix, count) = match name.split_once('<') {
            Some((prefix, n)) => {
                let n = n
                    .strip_suffix('>')
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .ok_or_else(|| refuse(line, format!("bad register count in `{name}`")))?;
                (prefix.trim().to_string(), Some(n))
            }
            None => (name.to_string(), None),
        };
        if !prefix.starts_with('%') {
            return Err(refuse(line, format!("bad register name `{prefix}`")));
        }
        out.push(RegDecl {
            ty: ty.to_string(),
            prefix,
            count,
            line,
        });
    }
    Ok(out)
}

/// Parses a whole module.
///
/// # Errors
/// The first construct outside the implemented subset, or malformed text, with its
/// line.
pub fn parse_module(text: &str) -> Result<ModuleText, LoadError> {
    let text = strip_comments(text);
    let mut target = None;
    let mut address_size = None;
    let mut kernels = Vec::new();
    let mut pieces = pieces(&text).into_iter().peekable();
    while let Some(piece) = pieces.next() {
        let (text, line) = match piece {
            Piece::Text(text, line) => (text, line),
            Piece::Open(line) | Piece::Close(line) => {
                return Err(refuse(line, "a brace outside a kernel body"));
            }
        };
        let first = text.split_whitespace().next().unwrap_or("");
        match first {
            ".version" => {
                let version = text.split_whitespace().nth(1).unwrap_or("");
                let parsed = version
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                    .ok_or_else(|| refuse(line, format!("bad `.version {version}`")))?;
                if parsed < (6, 0) || parsed > super::NEWEST_PTX {
                    let (major, minor) = super::NEWEST_PTX;
                    return Err(refuse(
                        line,
                        format!(
                            "{} {version} is not implemented (6.0 to {major}.{minor} are)",
                            super::UNSUPPORTED_VERSION
                        ),
                    ));
                }
            }
            ".target" => {
                let t = text
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .trim_end_matches(',');
                let arch = t
                    .strip_prefix("sm_")
                    .and_then(|n| n.trim_end_matches('a').parse::<u32>().ok())
                    .ok_or_else(|| refuse(line, format!("target `{t}` is not implemented")))?;
                if arch > 90 {
                    return Err(refuse(
                        line,
                        format!("target {t} is newer than this device (sm_90)"),
                    ));
                }
                if text.split_whitespace().count() > 2 {
                    return Err(refuse(
                        line,
                        format!("target options in `{text}` are not implemented"),
                    ));
                }
                target = Some(t.to_string());
            }
            ".address_size" => {
                address_size = text.split_whitespace().nth(1).map(str::to_string);
                if address_size.as_deref() != Some("64") {
                    return Err(refuse(line, "only `.address_size 64` is implemented"));
                }
            }
            ".visible" | ".entry" | ".weak" if text.contains(".entry") => {
                let (name, params) = parse_entry_header(&text, line)?;
                match pieces.next() {
                    Some(Piece::Open(_)) => {}
                    _ => {
                        return Err(refuse(
                            line,
                            format!("kernel `{name}` is a declaration without a body"),
                        ))
                    }
                }
                let mut regs = Vec::new();
                let mut body = Vec::new();
                loop {
                    match pieces.next() {
                        Some(Piece::Close(_)) => break,
                        Some(Piece::Open(l)) => {
                            return Err(refuse(l, "nested `{` blocks are not implemented"))
                        }
                        Some(Piece::Text(stmt, l)) => {
                            if stmt.starts_with(".reg") {
                                regs.extend(parse_reg(&stmt, l)?);
                            } else if let Some(label) = stmt.strip_suffix(':') {
                                body.push((Statement::Label(label.trim().to_string()), l));
                            } else if stmt.starts_with('.') {
                                let word = stmt.split_whitespace().next().unwrap_or("");
                                return Err(refuse(
                                    l,
                                    format!(
                                        "directive `{word}` in kernel `{name}` is not implemented"
                                    ),
                                ));
                            } else {
                                body.push((Statement::Instruction(stmt), l));
                            }
                        }
                        None => return Err(refuse(line, format!("kernel `{name}` is not closed"))),
                    }
                }
                kernels.push(KernelText {
                    name,
                    line,
                    params,
                    regs,
                    body,
                });
            }
            _ => {
                return Err(refuse(
                    line,
                    format!("module-scope `{first}` is not implemented (only .entry kernels are)"),
                ));
            }
        }
    }
    let target = target.ok_or_else(|| refuse(1, "the module has no `.target`"))?;
    if address_size.is_none() {
        return Err(refuse(1, "the module has no `.address_size 64`"));
    }
    Ok(ModuleText { target, kernels })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = ".version 7.0\n.target sm_70\n.address_size 64\n\
        // comment\n.visible .entry k(\n\t.param .u64 .ptr .align 1 k_param_0,\n\
        \t.param .u32 k_param_1,\n\t.param .align 4 .b8 k_param_2[12]\n)\n{\n\
        \t.reg .pred %p<3>;\n\t.reg .b32 %r<4>;\n\n\tmov.u32 %r1, %tid.x;\n\
        $L__BB0_1:\n\tret;\n}\n";

    #[test]
    fn a_small_module_parses_with_lines() {
        let m = parse_module(SMALL).unwrap();
        assert_eq!(m.target, "sm_70");
        let k = &m.kernels[0];
        assert_eq!(k.name, "k");
        assert_eq!(k.line, 5);
        assert_eq!(k.params.len(), 3);
        assert_eq!((k.params[0].size, k.params[0].align), (8, 8));
        assert_eq!((k.params[2].size, k.params[2].align), (12, 4));
        assert_eq!(k.regs.len(), 2);
        assert!(
            matches!(&k.body[0], (Statement::Instruction(t), 14) if t == "mov.u32 %r1, %tid.x")
        );
        assert!(matches!(&k.body[1], (Statement::Label(l), 15) if l == "$L__BB0_1"));
    }

    #[test]
    fn unimplemented_module_constructs_are_refused_with_their_line() {
        let with_func = SMALL.replace("// comment", ".func f()\n{\n}");
        let error = parse_module(&with_func).unwrap_err();
        assert_eq!(error.line, 4);
        assert!(error.message.contains(".func"), "{}", error.message);
        let shared = SMALL.replace("\t.reg .b32 %r<4>;", "\t.shared .b32 s[4];");
        let error = parse_module(&shared).unwrap_err();
        assert!(error.message.contains(".shared"), "{}", error.message);
        assert!(parse_module(&SMALL.replace("sm_70", "sm_100")).is_err());
    }
}
