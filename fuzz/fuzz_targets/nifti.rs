//! NIfTI-1/2 (plain or gzip) from arbitrary bytes: an error or a volume, never a panic
//! or an allocation past the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = xray_projector::io::parse_nifti(std::path::Path::new("fuzz.nii"), bytes, 64 << 20);
});
