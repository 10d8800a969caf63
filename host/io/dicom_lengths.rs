//! A walk over a DICOM file's element headers that checks every declared value length
//! against the bytes that remain, before `dicom-object` parses the file.
//!
//! `dicom-object` reserves each element's declared length (up to 4 GiB) before reading
//! its value; the reservation is fallible, but it lets a file of a few hundred bytes
//! ask for gigabytes (found by fuzzing). This walk refuses such files first. It reads
//! the headers only: explicit and implicit VR little endian, sequences and items
//! descended into, encapsulated pixel data fragments stepped over. Other transfer
//! syntaxes (big endian, deflated) are refused, as the reader does not decode them.

/// Tag of the file meta group's Transfer Syntax UID.
const TRANSFER_SYNTAX: (u16, u16) = (0x0002, 0x0010);
/// Tag of Pixel Data.
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
/// Item, item delimitation and sequence delimitation tags (group FFFE).
const ITEM: u16 = 0xE000;
const SEQUENCE_END: u16 = 0xE0DD;
/// The length that means "undefined" (a sequence or item closed by a delimiter).
const UNDEFINED: u32 = u32::MAX;

/// Checks that no element of `bytes` (a whole DICOM file with its preamble) declares
/// more bytes than follow it. `Err` says which element and where.
pub(crate) fn check_lengths(bytes: &[u8]) -> Result<(), String> {
    let mut walk = Walk {
        bytes,
        at: 132,
        explicit: true,
        encapsulated: false,
    };
    let mut transfer_syntax = None;
    // The file meta group is always explicit VR little endian.
    while walk.peek_group() == Some(0x0002) {
        let header = walk.header()?;
        if (header.group, header.element) == TRANSFER_SYNTAX {
            let value = walk.value(&header)?;
            transfer_syntax = Some(
                String::from_utf8_lossy(value)
                    .trim_end_matches(['\0', ' '])
                    .to_string(),
            );
        } else {
            walk.value(&header)?;
        }
    }
    walk.explicit = match transfer_syntax.as_deref() {
        Some("1.2.840.10008.1.2") => false,
        Some("1.2.840.10008.1.2.2") => return Err("explicit VR big endian is not supported".into()),
        Some("1.2.840.10008.1.2.1.99") => {
            return Err("deflated transfer syntax is not supported".into())
        }
        Some(_) => true,
        None => return Err("no Transfer Syntax UID in the file meta group".into()),
    };
    while walk.at < bytes.len() {
        let header = walk.header()?;
        let descend = header.group == 0xFFFE && header.element == ITEM && !walk.encapsulated
            || header.is_sequence
            || header.length == UNDEFINED;
        if header.group == 0xFFFE && header.element == SEQUENCE_END {
            walk.encapsulated = false;
        }
        if (header.group, header.element) == PIXEL_DATA && header.length == UNDEFINED {
            walk.encapsulated = true;
        }
        if descend {
            // The content follows as elements; a defined length must still fit.
            walk.fits(&header)?;
        } else {
            walk.value(&header)?;
        }
    }
    Ok(())
}

struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    explicit: bool,
    /// Inside Pixel Data of undefined length, whose items are compressed fragments.
    encapsulated: bool,
}

struct Header {
    group: u16,
    element: u16,
    length: u32,
    is_sequence: bool,
    /// Where the value starts.
    at: usize,
}

impl Walk<'_> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.bytes.get(at..at + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn peek_group(&self) -> Option<u16> {
        self.u16_at(self.at)
    }

    fn header(&mut self) -> Result<Header, String> {
        let start = self.at;
        let truncated = || format!("truncated element header at byte {start}");
        let group = self.u16_at(start).ok_or_else(truncated)?;
        let element = self.u16_at(start + 2).ok_or_else(truncated)?;
        // Items and delimiters have no VR in any encoding.
        let (length, is_sequence, at) = if group == 0xFFFE || !self.explicit {
            (
                self.u32_at(start + 4).ok_or_else(truncated)?,
                false,
                start + 8,
            )
        } else {
            let vr = self.bytes.get(start + 4..start + 6).ok_or_else(truncated)?;
            let long = matches!(
                vr,
                b"OB"
                    | b"OD"
                    | b"OF"
                    | b"OL"
                    | b"OV"
                    | b"OW"
                    | b"SQ"
                    | b"SV"
                    | b"UC"
                    | b"UN"
                    | b"UR"
                    | b"UT"
                    | b"UV"
            );
            if long {
                (
                    self.u32_at(start + 8).ok_or_else(truncated)?,
                    vr == b"SQ",
                    start + 12,
                )
            } else {
                (
                    u32::from(self.u16_at(start + 6).ok_or_else(truncated)?),
                    false,
                    start + 8,
                )
            }
        };
        self.at = at;
        Ok(Header {
            group,
            element,
            length,
            is_sequence,
            at,
        })
    }

    /// Fails unless the header's defined length fits in what remains.
    fn fits(&self, header: &Header) -> Result<(), String> {
        let remaining = self.bytes.len() - header.at;
        if header.length != UNDEFINED && header.length as usize > remaining {
            return Err(format!(
                "element ({:04X},{:04X}) at byte {} declares {} bytes, but only {remaining} follow",
                header.group, header.element, header.at, header.length
            ));
        }
        Ok(())
    }

    /// Steps over the header's value (which must have a defined length that fits).
    fn value(&mut self, header: &Header) -> Result<&[u8], String> {
        if header.length == UNDEFINED {
            return Err(format!(
                "element ({:04X},{:04X}) at byte {} has an undefined length where a value \
                 is expected",
                header.group, header.element, header.at
            ));
        }
        self.fits(header)?;
        self.at = header.at + header.length as usize;
        Ok(&self.bytes[header.at..self.at])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Preamble, "DICM", a meta group naming `syntax`, then `body`.
    fn file(syntax: &str, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b.extend(b"DICM");
        let mut uid = syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        b.extend([0x02, 0x00, 0x10, 0x00]);
        b.extend(b"UI");
        b.extend((uid.len() as u16).to_le_bytes());
        b.extend(uid);
        b.extend(body);
        b
    }

    fn explicit(tag: (u16, u16), vr: &[u8; 2], length: u32) -> Vec<u8> {
        let mut b = tag.0.to_le_bytes().to_vec();
        b.extend(tag.1.to_le_bytes());
        b.extend(vr);
        b.extend([0, 0]);
        b.extend(length.to_le_bytes());
        b
    }

    #[test]
    fn lengths_past_the_end_are_refused_at_any_depth() {
        let syntax = "1.2.840.10008.1.2.1";
        let mut ok = explicit((0x0008, 0x1140), b"SQ", UNDEFINED);
        ok.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]); // item
        ok.extend(explicit((0x0008, 0x0000), b"OB", 2));
        ok.extend([1, 2]);
        ok.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]); // item end
        ok.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]); // sequence end
        assert_eq!(check_lengths(&file(syntax, &ok)), Ok(()));
        let mut nested = ok.clone();
        let at = nested.len() - 16 - 2 - 4;
        nested[at..at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
        let err = check_lengths(&file(syntax, &nested)).unwrap_err();
        assert!(
            err.contains("(0008,0000)") && err.contains("declares 1000000"),
            "{err}"
        );
        let err = check_lengths(&file(syntax, &ok[..ok.len() - 3])).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn encapsulated_fragments_are_stepped_over() {
        let mut body = explicit(PIXEL_DATA, b"OB", UNDEFINED);
        body.extend([0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]); // empty offset table
        body.extend([0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0]); // a fragment of 4 bytes
        body.extend([0xFF, 0xFF, 0xFF, 0xFF]); // that would read as a huge header
        body.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert_eq!(check_lengths(&file("1.2.840.10008.1.2.5", &body)), Ok(()));
        let err = check_lengths(&file("1.2.840.10008.1.2.1.99", &body)).unwrap_err();
        assert!(err.contains("deflated"), "{err}");
    }
}
