//! The CUDA side (feature `cuda`): the embedded PTX and the driver probe that tells
//! whether a GPU could run it. The launch path lands with the CUDA backend issue; until
//! then [`crate::Backend::Cuda`] reports what it found and `Auto` uses the CPU.

use cust::device::DeviceAttribute;
use cust::prelude::*;

/// The kernels' PTX, built by `build.rs` from `kernels/` (or the committed copy).
pub(crate) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/xray_kernels.ptx"));

/// Initialises the driver, opens device 0 and loads the PTX module: the checks a launch
/// would need. Returns a description of the device, or why CUDA cannot be used.
pub(crate) fn probe() -> Result<String, String> {
    cust::init(cust::CudaFlags::empty()).map_err(|e| format!("CUDA driver: {e}"))?;
    let count = Device::num_devices().map_err(|e| format!("CUDA device count: {e}"))?;
    if count == 0 {
        return Err("no CUDA-capable device is detected".into());
    }
    let device = Device::get_device(0).map_err(|e| format!("CUDA device 0: {e}"))?;
    let name = device
        .name()
        .map_err(|e| format!("CUDA device 0 name: {e}"))?;
    let major = device
        .get_attribute(DeviceAttribute::ComputeCapabilityMajor)
        .map_err(|e| format!("CUDA device 0: {e}"))?;
    let minor = device
        .get_attribute(DeviceAttribute::ComputeCapabilityMinor)
        .map_err(|e| format!("CUDA device 0: {e}"))?;
    let _context = Context::new(device).map_err(|e| format!("CUDA context on {name}: {e}"))?;
    let module =
        Module::from_ptx(PTX, &[]).map_err(|e| format!("loading the PTX on {name}: {e}"))?;
    for entry in xray_kernels::names::ALL {
        module
            .get_function(entry)
            .map_err(|e| format!("kernel {entry} missing from the PTX: {e}"))?;
    }
    Ok(format!(
        "{name} (sm_{major}{minor}), {count} device(s), PTX loaded"
    ))
}
