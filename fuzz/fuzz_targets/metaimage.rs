//! MetaImage headers and data from arbitrary bytes; a `.mhd`'s data file is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xray_projector::Error;

fuzz_target!(|bytes: &[u8]| {
    let no_data_file = |name: &str| -> Result<Vec<u8>, Error> {
        Err(Error::InvalidParameter {
            name: "data file",
            reason: format!("{name}: no files while fuzzing"),
        })
    };
    let path = std::path::Path::new("fuzz.mha");
    let _ = xray_projector::io::parse_metaimage(path, bytes, 64 << 20, &no_data_file);
});
