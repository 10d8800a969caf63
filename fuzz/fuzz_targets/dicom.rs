//! One DICOM file (parse and pixel decoding) from arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut budget = 64 << 20;
    let _ = xray_projector::io::parse_dicom_slice(std::path::Path::new("fuzz.dcm"), bytes, &mut budget);
});
