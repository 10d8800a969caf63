//! Checks that keep hostile DICOM input away from two weak spots of `dicom-rs` (both
//! found by fuzzing `xray-projector`'s reader):
//!
//! - [`check_lengths`], before parsing: `dicom-object` reserves each element's declared
//!   length (up to 4 GiB) before reading its value, so a file of a few hundred bytes
//!   could ask for gigabytes. A walk over the element headers refuses any length past
//!   the end of the file. It reads explicit and implicit VR little endian, descends
//!   into sequences and items, and steps over encapsulated pixel data fragments; other
//!   transfer syntaxes (big endian, deflated) are refused, as the reader does not
//!   decode them.
//! - [`check_rle`], before decoding: the RLE Lossless decoder of
//!   `dicom-transfer-syntax-registry` indexes its segment table and its decoded
//!   segments without bounds checks, and panics on a short or inconsistent fragment.
//!   Each fragment's header and each segment's PackBits stream are checked first.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;

/// Tag of the file meta group's Transfer Syntax UID.
const TRANSFER_SYNTAX: (u16, u16) = (0x0002, 0x0010);
/// Tag of Pixel Data.
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
/// Item, item delimitation and sequence delimitation tags (group FFFE).
const ITEM: u16 = 0xE000;
const ITEM_END: u16 = 0xE00D;
const SEQUENCE_END: u16 = 0xE0DD;
/// The length that means "undefined" (a sequence or item closed by a delimiter).
const UNDEFINED: u32 = u32::MAX;

/// Checks the element headers of `bytes` (a whole DICOM file with its preamble): no
/// length past what follows, known VRs, whole values of binary VRs, items only inside
/// sequences, a file meta group as long as its group length says. `Err` says which
/// element and where.
pub(crate) fn check_lengths(bytes: &[u8]) -> Result<(), String> {
    let mut walk = Walk {
        bytes,
        at: 132,
        explicit: true,
        encapsulated: false,
    };
    let mut transfer_syntax = None;
    let mut meta_end = None;
    // The file meta group is always explicit VR little endian.
    while walk.peek_group() == Some(0x0002) {
        let header = walk.header()?;
        if (header.group, header.element) == (0x0002, 0x0000) && header.length == 4 {
            meta_end = walk.u32_at(header.at).map(|n| header.at + 4 + n as usize);
            walk.value(&header)?;
        } else if (header.group, header.element) == TRANSFER_SYNTAX {
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
    // dicom-object may start the data set where the group length says: both must agree.
    if meta_end.is_some_and(|end| end != walk.at) {
        return Err(format!(
            "the file meta group ends at byte {}, not where its group length says ({:?})",
            walk.at, meta_end
        ));
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
    // Open sequences and items: where each ends (None: at its delimiter).
    let mut open: Vec<Option<usize>> = Vec::new();
    while walk.at < bytes.len() {
        while open
            .last()
            .is_some_and(|end| end.is_some_and(|e| e <= walk.at))
        {
            open.pop();
        }
        let header = walk.header()?;
        let tag = (header.group, header.element);
        // Command (0000) and file meta (0002) elements do not belong in a data set;
        // directory records (0004, a DICOMDIR) do.
        if header.group == 0x0000 || header.group == 0x0002 {
            return Err(format!(
                "element ({:04X},{:04X}) at byte {}: a command or file meta element in the \
                 data set",
                header.group, header.element, header.at
            ));
        }
        let end = (header.length != UNDEFINED).then(|| header.at + header.length as usize);
        if header.group == 0xFFFE {
            match header.element {
                ITEM if walk.encapsulated => {
                    walk.value(&header)?;
                }
                ITEM if !open.is_empty() => {
                    walk.fits(&header)?;
                    open.push(end);
                }
                // A delimiter closes the undefined-length item or sequence on top
                // (encapsulated pixel data is one, closed by its sequence delimiter).
                ITEM_END if !walk.encapsulated && open.last() == Some(&None) => {
                    open.pop();
                }
                SEQUENCE_END if open.last() == Some(&None) => {
                    walk.encapsulated = false;
                    open.pop();
                }
                _ => {
                    return Err(format!(
                        "item tag (FFFE,{:04X}) at byte {} where no sequence or item is open",
                        header.element, header.at
                    ))
                }
            }
        } else if tag == PIXEL_DATA && header.length == UNDEFINED {
            walk.encapsulated = true;
            open.push(None);
        } else if header.is_sequence || header.length == UNDEFINED {
            // The content follows as items; a defined length must still fit.
            walk.fits(&header)?;
            open.push(end);
        } else {
            walk.value(&header)?;
        }
    }
    Ok(())
}

/// Value representations whose explicit-VR header has a 2-byte length.
const SHORT_FORM: [[u8; 2]; 21] = [
    *b"AE", *b"AS", *b"AT", *b"CS", *b"DA", *b"DS", *b"DT", *b"FD", *b"FL", *b"IS", *b"LO", *b"LT",
    *b"PN", *b"SH", *b"SL", *b"SS", *b"ST", *b"TM", *b"UI", *b"UL", *b"US",
];

/// Value representations whose explicit-VR header has a 4-byte length.
const LONG_FORM: [[u8; 2]; 13] = [
    *b"OB", *b"OD", *b"OF", *b"OL", *b"OV", *b"OW", *b"SQ", *b"SV", *b"UC", *b"UN", *b"UR", *b"UT",
    *b"UV",
];

/// Bytes per value of a binary VR (1 for text and bytes).
fn value_size(vr: [u8; 2]) -> usize {
    match &vr {
        b"FD" | b"OD" | b"OV" | b"SV" | b"UV" => 8,
        b"AT" | b"FL" | b"OF" | b"OL" | b"SL" | b"UL" => 4,
        b"OW" | b"SS" | b"US" => 2,
        _ => 1,
    }
}

/// The VR the standard dictionary gives a tag, as an implicit-VR parser reads it.
fn implicit_vr(group: u16, element: u16) -> [u8; 2] {
    match StandardDataDictionary
        .by_tag(Tag(group, element))
        .map(|entry| entry.vr())
    {
        Some(VirtualVr::Exact(vr)) => {
            let name = vr.to_string().as_bytes();
            [name[0], name[1]]
        }
        // Pixel-sample VRs (US or SS): 2-byte values either way.
        Some(VirtualVr::Xs) => *b"US",
        _ => *b"UN",
    }
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
        let (vr, length, at) = if group == 0xFFFE {
            (
                *b"UN",
                self.u32_at(start + 4).ok_or_else(truncated)?,
                start + 8,
            )
        } else if !self.explicit {
            let vr = implicit_vr(group, element);
            (vr, self.u32_at(start + 4).ok_or_else(truncated)?, start + 8)
        } else {
            let vr: [u8; 2] = self
                .bytes
                .get(start + 4..start + 6)
                .ok_or_else(truncated)?
                .try_into()
                .expect("two bytes");
            if !SHORT_FORM.contains(&vr) && !LONG_FORM.contains(&vr) {
                return Err(format!(
                    "element ({group:04X},{element:04X}) at byte {start} has no valid VR \
                     ({:?})",
                    String::from_utf8_lossy(&vr)
                ));
            }
            if SHORT_FORM.contains(&vr) {
                let length = self.u16_at(start + 6).ok_or_else(truncated)?;
                (vr, u32::from(length), start + 8)
            } else {
                (
                    vr,
                    self.u32_at(start + 8).ok_or_else(truncated)?,
                    start + 12,
                )
            }
        };
        // dicom-parser reads whole values of a binary VR and leaves a remainder unread,
        // which would put this walk and the parser out of step.
        let size = value_size(vr);
        if length != UNDEFINED && !(length as usize).is_multiple_of(size) {
            return Err(format!(
                "element ({group:04X},{element:04X}) at byte {at} has {length} bytes, not a \
                 whole number of its {}-byte {} values",
                size,
                String::from_utf8_lossy(&vr)
            ));
        }
        self.at = at;
        Ok(Header {
            group,
            element,
            length,
            is_sequence: &vr == b"SQ",
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

/// Transfer syntax UID of RLE Lossless.
pub(crate) const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Checks that RLE Lossless `fragments` hold exactly one frame of `rows x cols`
/// pixels of one sample of `bytes_per_sample` bytes: one fragment, whose segment table
/// names one segment per byte of a sample, in order and inside the fragment, each of
/// which decodes (PackBits) to at least `rows * cols` bytes. `Err` says what is wrong.
pub(crate) fn check_rle(
    fragments: &[impl AsRef<[u8]>],
    rows: usize,
    cols: usize,
    bytes_per_sample: usize,
) -> Result<(), String> {
    let [fragment] = fragments else {
        return Err(format!("{} RLE fragments for one frame", fragments.len()));
    };
    let fragment = fragment.as_ref();
    let word = |k: usize| {
        fragment
            .get(4 * k..4 * k + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (Some(segments), true) = (word(0), fragment.len() >= 64) else {
        return Err(format!(
            "an RLE fragment of {} bytes has no segment table",
            fragment.len()
        ));
    };
    if segments != bytes_per_sample {
        return Err(format!(
            "{segments} RLE segments, but a {bytes_per_sample}-byte sample needs {bytes_per_sample}"
        ));
    }
    let mut bounds: Vec<usize> = (1..=segments).filter_map(word).collect();
    bounds.push(fragment.len());
    for (k, pair) in bounds.windows(2).enumerate() {
        let (start, end) = (pair[0], pair[1]);
        if !(64 <= start && start <= end && end <= fragment.len()) {
            return Err(format!(
                "RLE segment {k} spans bytes {start}..{end} of {}",
                fragment.len()
            ));
        }
        let decoded = packbits_len(&fragment[start..end], rows * cols);
        if decoded < rows * cols {
            return Err(format!(
                "RLE segment {k} decodes to {decoded} bytes, not Rows x Columns = {}",
                rows * cols
            ));
        }
    }
    Ok(())
}

/// Bytes a PackBits stream decodes to, counting only whole runs and stopping at `want`.
fn packbits_len(stream: &[u8], want: usize) -> usize {
    let (mut at, mut out) = (0usize, 0usize);
    while out < want {
        let Some(&header) = stream.get(at) else {
            break;
        };
        let header = header as i8;
        let (consumed, produced) = match header {
            0..=127 => (1 + header as usize + 1, header as usize + 1),
            -127..=-1 => (2, 1 + header.unsigned_abs() as usize),
            -128 => (1, 0),
        };
        if at + consumed > stream.len() {
            break;
        }
        at += consumed;
        out += produced;
    }
    out
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
    fn a_dicomdir_passes_and_command_elements_do_not() {
        let mut record = explicit((0x0004, 0x1130), b"CS", 0);
        record.truncate(6);
        record.extend([2, 0, b'I', b'D']);
        assert_eq!(check_lengths(&file("1.2.840.10008.1.2.1", &record)), Ok(()));
        let mut command = record.clone();
        command[0..4].copy_from_slice(&[0, 0, 0x00, 0x01]);
        let err = check_lengths(&file("1.2.840.10008.1.2.1", &command)).unwrap_err();
        assert!(err.contains("command or file meta"), "{err}");
    }

    #[test]
    fn a_partial_value_is_refused_in_either_encoding() {
        // (0028,0002) Samples per Pixel, US, with 3 bytes: the parser would read one
        // value and then misread the next header.
        let mut body = explicit((0x0028, 0x0002), b"US", 0);
        body.truncate(6);
        body.extend([3, 0, 1, 0, 0]);
        let err = check_lengths(&file("1.2.840.10008.1.2.1", &body)).unwrap_err();
        assert!(
            err.contains("(0028,0002)") && err.contains("2-byte US"),
            "{err}"
        );
        let mut implicit = vec![0x28, 0x00, 0x02, 0x00, 3, 0, 0, 0];
        implicit.extend([1, 0, 0]);
        let err = check_lengths(&file("1.2.840.10008.1.2", &implicit)).unwrap_err();
        assert!(err.contains("2-byte US"), "{err}");
        // Implicit VR: a dictionary sequence is descended into.
        let mut sequence = vec![0x08, 0x00, 0x40, 0x11, 16, 0, 0, 0]; // (0008,1140) SQ
        sequence.extend([0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]); // an item of 8 bytes
        sequence.extend([0x28, 0x00, 0x02, 0x00, 0xFF, 0, 0, 0]); // 255 bytes declared
        let err = check_lengths(&file("1.2.840.10008.1.2", &sequence)).unwrap_err();
        assert!(err.contains("(0028,0002)"), "{err}");
    }

    #[test]
    fn rle_fragments_are_checked_before_decoding() {
        // One 16-bit sample of 2 x 2 pixels: two segments of 4 bytes each.
        let mut fragment = vec![0u8; 64];
        fragment[0] = 2;
        fragment[4] = 64;
        fragment[8] = 66;
        fragment.extend([0xFD, 7]); // replicate 7 four times
        fragment.extend([3, 1, 2, 3, 4]); // four literals
        assert_eq!(check_rle(&[&fragment], 2, 2, 2), Ok(()));
        // A no-op, a run of four, then a literal run cut short (not counted).
        assert_eq!(packbits_len(&[0x80, 0xFD, 1, 1, 9], 100), 4);
        let err = check_rle(&[&fragment], 2, 3, 2).unwrap_err();
        assert!(err.contains("decodes to 4 bytes"), "{err}");
        let err = check_rle(&[&fragment], 2, 2, 1).unwrap_err();
        assert!(err.contains("2 RLE segments"), "{err}");
        let err = check_rle(&[&fragment[..70]], 2, 2, 2).unwrap_err();
        assert!(err.contains("segment 1 decodes to 0 bytes"), "{err}");
        let mut beyond = fragment.clone();
        beyond[8] = 200;
        let err = check_rle(&[&beyond], 2, 2, 2).unwrap_err();
        assert!(err.contains("segment 0 spans bytes 64..200"), "{err}");
        let err = check_rle(&[&fragment[..10]], 2, 2, 2).unwrap_err();
        assert!(err.contains("no segment table"), "{err}");
        let err = check_rle(&[&fragment, &fragment], 2, 2, 2).unwrap_err();
        assert!(err.contains("2 RLE fragments"), "{err}");
        let mut huge = fragment.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_rle(&[&huge], 2, 2, 2).is_err());
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
