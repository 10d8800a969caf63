//! The C ABI: the `cu*` functions of `libcuda.so.1`, each turning its C arguments
//! into a call of [`crate::driver`]. This is the only module with `unsafe`: reading
//! and writing through the pointers the caller passes, as the CUDA driver API
//! reference defines them. No panic crosses this boundary (each body runs under
//! `catch_unwind`, and a panic becomes `CUDA_ERROR_UNKNOWN`).
//!
//! Functions that the project does not call but that `cust` references (so that a
//! binary linked with `BIND_NOW` loads) return `CUDA_ERROR_NOT_SUPPORTED`.

#![allow(
    non_snake_case,
    clippy::not_unsafe_ptr_arg_deref,
    clippy::missing_safety_doc
)]

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::driver::{self, driver, DEVICE_NAME, DRIVER_VERSION};
use crate::result::*;

type CUcontext = *mut c_void;
type CUmodule = *mut c_void;
type CUfunction = *mut c_void;
type CUstream = *mut c_void;
type CUevent = *mut c_void;
type CUdeviceptr = u64;

fn call(body: impl FnOnce() -> DriverResult<()>) -> CuResult {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CUDA_SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => CUDA_ERROR_UNKNOWN,
    }
}

/// Writes `value` through `out`, which must be null (an error) or valid for writes.
fn put<T>(out: *mut T, value: T) -> DriverResult<()> {
    if out.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: the caller passes a pointer valid for a write of T (driver API contract).
    unsafe { out.write(value) };
    Ok(())
}

fn handle(h: *mut c_void) -> u64 {
    h as usize as u64
}

fn as_handle(h: u64) -> *mut c_void {
    h as usize as *mut c_void
}

extern "C" {
    fn atexit(callback: extern "C" fn()) -> i32;
}

extern "C" fn report_at_exit() {
    let _ = catch_unwind(|| {
        if let Ok(d) = driver() {
            d.report_at_exit();
        }
    });
}

/// `cuInit`: Initialises the driver (flags must be 0) and reads the `XRAY_EMU_*` settings once.
#[no_mangle]
pub extern "C" fn cuInit(flags: u32) -> CuResult {
    call(|| {
        driver::init(flags)?;
        static REGISTERED: std::sync::Once = std::sync::Once::new();
        // SAFETY: `atexit` takes a plain function with no arguments, which this is.
        REGISTERED.call_once(|| unsafe {
            atexit(report_at_exit);
        });
        Ok(())
    })
}

/// `cuDriverGetVersion`: The CUDA driver API version this implements: 11040 (CUDA 11.4).
#[no_mangle]
pub extern "C" fn cuDriverGetVersion(version: *mut i32) -> CuResult {
    call(|| put(version, DRIVER_VERSION))
}

/// `cuDeviceGetCount`: The number of software devices (`XRAY_EMU_DEVICES`).
#[no_mangle]
pub extern "C" fn cuDeviceGetCount(count: *mut i32) -> CuResult {
    call(|| put(count, driver()?.device_count()))
}

/// `cuDeviceGet`: The device of an ordinal.
#[no_mangle]
pub extern "C" fn cuDeviceGet(device: *mut i32, ordinal: i32) -> CuResult {
    call(|| {
        let d = driver()?.device(ordinal)?;
        put(device, d as i32)
    })
}

/// `cuDeviceGetName`: The device's name, NUL-terminated and truncated to `len` bytes.
#[no_mangle]
pub extern "C" fn cuDeviceGetName(name: *mut c_char, len: i32, device: i32) -> CuResult {
    call(|| {
        driver()?.device(device)?;
        if name.is_null() || len <= 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let bytes = DEVICE_NAME.as_bytes();
        let n = bytes.len().min(len as usize - 1);
        // SAFETY: `name` points to `len` writable bytes (driver API contract).
        let out = unsafe { std::slice::from_raw_parts_mut(name.cast::<u8>(), n + 1) };
        out[..n].copy_from_slice(&bytes[..n]);
        out[n] = 0;
        Ok(())
    })
}

/// `cuDeviceGetAttribute`: One of the device's attributes (a Hopper-class device's values).
#[no_mangle]
pub extern "C" fn cuDeviceGetAttribute(value: *mut i32, attribute: i32, device: i32) -> CuResult {
    call(|| {
        driver()?.device(device)?;
        put(
            value,
            driver::attribute(attribute).ok_or(CUDA_ERROR_INVALID_VALUE)?,
        )
    })
}

/// `cuDeviceComputeCapability`: Compute capability 9.0 (deprecated API).
#[no_mangle]
pub extern "C" fn cuDeviceComputeCapability(
    major: *mut i32,
    minor: *mut i32,
    device: i32,
) -> CuResult {
    call(|| {
        driver()?.device(device)?;
        put(major, 9)?;
        put(minor, 0)
    })
}

/// `cuDeviceTotalMem_v2`: The device's memory in bytes (`XRAY_EMU_MEMORY`).
#[no_mangle]
pub extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, device: i32) -> CuResult {
    call(|| {
        let d = driver()?;
        d.device(device)?;
        put(bytes, d.config().memory as usize)
    })
}

/// `cuDevicePrimaryCtxRetain`: Retains the device's primary context, creating it if needed.
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRetain(context: *mut CUcontext, device: i32) -> CuResult {
    call(|| {
        let d = driver()?;
        let h = d.retain_primary(d.device(device)?)?;
        put(context, as_handle(h))
    })
}

/// `cuDevicePrimaryCtxRelease_v2`: Releases the primary context; the last release destroys it (with a leak report).
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(device: i32) -> CuResult {
    call(|| {
        let d = driver()?;
        d.release_primary(d.device(device)?)
    })
}

/// `cuDevicePrimaryCtxReset_v2`: Destroys the primary context and everything in it now.
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxReset_v2(device: i32) -> CuResult {
    call(|| {
        let d = driver()?;
        d.reset_primary(d.device(device)?)
    })
}

/// `cuDevicePrimaryCtxGetState`: The primary context's flags and whether it is active.
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxGetState(
    device: i32,
    flags: *mut u32,
    active: *mut i32,
) -> CuResult {
    call(|| {
        let d = driver()?;
        let (f, a) = d.primary_state(d.device(device)?);
        put(flags, f)?;
        put(active, i32::from(a))
    })
}

/// `cuDevicePrimaryCtxSetFlags_v2`: Accepts and ignores the flags (no scheduling to configure).
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxSetFlags_v2(device: i32, _flags: u32) -> CuResult {
    call(|| driver()?.device(device).map(|_| ()))
}

/// `cuCtxSetCurrent`: Binds a context to the calling thread (NULL unbinds).
#[no_mangle]
pub extern "C" fn cuCtxSetCurrent(context: CUcontext) -> CuResult {
    call(|| driver()?.set_current(handle(context)))
}

/// `cuCtxGetCurrent`: The calling thread's current context (NULL if none).
#[no_mangle]
pub extern "C" fn cuCtxGetCurrent(context: *mut CUcontext) -> CuResult {
    call(|| put(context, as_handle(driver()?.current_handle())))
}

/// `cuCtxPushCurrent_v2`: Pushes a context on the calling thread's stack.
#[no_mangle]
pub extern "C" fn cuCtxPushCurrent_v2(context: CUcontext) -> CuResult {
    call(|| driver()?.push_current(handle(context)))
}

/// `cuCtxPopCurrent_v2`: Pops the calling thread's current context.
#[no_mangle]
pub extern "C" fn cuCtxPopCurrent_v2(context: *mut CUcontext) -> CuResult {
    call(|| {
        let h = driver()?.pop_current()?;
        if !context.is_null() {
            put(context, as_handle(h))?;
        }
        Ok(())
    })
}

/// `cuCtxGetDevice`: The current context's device.
#[no_mangle]
pub extern "C" fn cuCtxGetDevice(device: *mut i32) -> CuResult {
    call(|| put(device, driver()?.current()?.device as i32))
}

/// `cuCtxSynchronize`: Waits for the current context's work: returns its sticky error, if any.
#[no_mangle]
pub extern "C" fn cuCtxSynchronize() -> CuResult {
    call(|| driver()?.synchronize(0))
}

/// `cuCtxGetApiVersion`: The context's API version (3020, as for primary contexts).
#[no_mangle]
pub extern "C" fn cuCtxGetApiVersion(_context: CUcontext, version: *mut u32) -> CuResult {
    call(|| {
        driver()?;
        put(version, 3020)
    })
}

/// Reads a JIT option value's pointer-sized integer.
fn option_value(values: *mut *mut c_void, i: usize) -> *mut c_void {
    // SAFETY: `values` has one entry per option (driver API contract).
    unsafe { *values.add(i) }
}

/// `cuModuleLoadDataEx`: Loads a module from PTX text; a rejected module's reasons go to the JIT error log option.
#[no_mangle]
pub extern "C" fn cuModuleLoadDataEx(
    module: *mut CUmodule,
    image: *const c_void,
    count: u32,
    options: *mut u32,
    values: *mut *mut c_void,
) -> CuResult {
    call(|| {
        let d = driver()?;
        if image.is_null()
            || module.is_null()
            || (count > 0 && (options.is_null() || values.is_null()))
        {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        // SAFETY: an image is a NUL-terminated PTX string, or a cubin/fatbin, whose
        // first bytes are a magic number (driver API contract).
        let text = unsafe { CStr::from_ptr(image.cast::<c_char>()) };
        let start = text.to_bytes();
        if start.starts_with(b"\x7fELF") || start.starts_with(&[0x50, 0xed, 0x55, 0xba]) {
            eprintln!("xray-emu: the image is a cubin or fatbin; this driver runs PTX text only");
            return Err(CUDA_ERROR_INVALID_IMAGE);
        }
        let text = text.to_str().map_err(|_| CUDA_ERROR_INVALID_IMAGE)?;
        let options: Vec<u32> = (0..count as usize)
            // SAFETY: `options` has `count` entries.
            .map(|i| unsafe { *options.add(i) })
            .collect();
        match d.load_module(text) {
            Ok(h) => {
                // No error: the logs, if asked for, are empty (size 0 written back).
                for (buffer, size) in [(3, 4), (5, 6)] {
                    if let (Some(b), Some(s)) = (
                        options.iter().position(|o| *o == buffer),
                        options.iter().position(|o| *o == size),
                    ) {
                        let out = option_value(values, b).cast::<u8>();
                        if !out.is_null() && option_value(values, s) as usize as u32 > 0 {
                            // SAFETY: the buffer holds at least one byte (its size > 0).
                            unsafe { *out = 0 };
                        }
                        // SAFETY: the values array is writable; the driver reports the size.
                        unsafe { *values.add(s) = std::ptr::null_mut() };
                    }
                }
                put(module, as_handle(h))
            }
            Err((code, message)) => {
                // The error log, as the real JIT fills it (CU_JIT_ERROR_LOG_BUFFER = 5,
                // its size in bytes = 6, an unsigned int passed by value and updated to
                // the bytes written).
                let buffer = options.iter().position(|o| *o == 5);
                let size = options.iter().position(|o| *o == 6);
                if let (Some(b), Some(s)) = (buffer, size) {
                    let out = option_value(values, b).cast::<u8>();
                    let capacity = option_value(values, s) as usize as u32 as usize;
                    if !out.is_null() && capacity > 0 {
                        let n = message.len().min(capacity - 1);
                        // SAFETY: the buffer holds `capacity` bytes (option 6's value).
                        let slice = unsafe { std::slice::from_raw_parts_mut(out, n + 1) };
                        slice[..n].copy_from_slice(&message.as_bytes()[..n]);
                        slice[n] = 0;
                        // SAFETY: the values array is writable; the driver reports the size.
                        unsafe { *values.add(s) = (n + 1) as *mut c_void };
                    }
                }
                if !message.is_empty() {
                    eprintln!("{message}");
                }
                Err(code)
            }
        }
    })
}

/// `cuModuleLoadData`: Loads a module from PTX text, without JIT options.
#[no_mangle]
pub extern "C" fn cuModuleLoadData(module: *mut CUmodule, image: *const c_void) -> CuResult {
    cuModuleLoadDataEx(module, image, 0, std::ptr::null_mut(), std::ptr::null_mut())
}

/// `cuModuleGetFunction`: A kernel of a module, by name.
#[no_mangle]
pub extern "C" fn cuModuleGetFunction(
    function: *mut CUfunction,
    module: CUmodule,
    name: *const c_char,
) -> CuResult {
    call(|| {
        if name.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        // SAFETY: `name` is a NUL-terminated string (driver API contract).
        let name = unsafe { CStr::from_ptr(name) }
            .to_str()
            .map_err(|_| CUDA_ERROR_NOT_FOUND)?;
        let f = driver()?.get_function(handle(module), name)?;
        put(function, as_handle(f))
    })
}

/// `cuModuleUnload`: Unloads a module and its functions.
#[no_mangle]
pub extern "C" fn cuModuleUnload(module: CUmodule) -> CuResult {
    call(|| driver()?.unload_module(handle(module)))
}

/// `cuStreamCreate`: Creates a stream (execution is synchronous: streams only order nothing).
#[no_mangle]
pub extern "C" fn cuStreamCreate(stream: *mut CUstream, _flags: u32) -> CuResult {
    call(|| put(stream, as_handle(driver()?.create_stream()?)))
}

/// `cuStreamCreateWithPriority`: Creates a stream; the priority is accepted and ignored.
#[no_mangle]
pub extern "C" fn cuStreamCreateWithPriority(
    stream: *mut CUstream,
    _flags: u32,
    _priority: i32,
) -> CuResult {
    call(|| put(stream, as_handle(driver()?.create_stream()?)))
}

/// `cuStreamSynchronize`: Waits for a stream's work: returns the context's sticky error, if any.
#[no_mangle]
pub extern "C" fn cuStreamSynchronize(stream: CUstream) -> CuResult {
    call(|| driver()?.synchronize(handle(stream)))
}

/// `cuStreamQuery`: A stream's status: always complete, or the sticky error.
#[no_mangle]
pub extern "C" fn cuStreamQuery(stream: CUstream) -> CuResult {
    call(|| driver()?.synchronize(handle(stream)))
}

/// `cuStreamWaitEvent`: Makes a stream wait for an event (already complete here).
#[no_mangle]
pub extern "C" fn cuStreamWaitEvent(stream: CUstream, event: CUevent, _flags: u32) -> CuResult {
    call(|| {
        let d = driver()?;
        d.event_done(handle(event))?;
        d.synchronize(handle(stream))
    })
}

/// `cuStreamDestroy_v2`: Destroys a stream.
#[no_mangle]
pub extern "C" fn cuStreamDestroy_v2(stream: CUstream) -> CuResult {
    call(|| driver()?.destroy_stream(handle(stream)))
}

/// `cuEventCreate`: Creates an event (`CU_EVENT_DISABLE_TIMING` honoured).
#[no_mangle]
pub extern "C" fn cuEventCreate(event: *mut CUevent, flags: u32) -> CuResult {
    call(|| put(event, as_handle(driver()?.create_event(flags)?)))
}

/// `cuEventRecord`: Records an event now (all earlier work has run).
#[no_mangle]
pub extern "C" fn cuEventRecord(event: CUevent, stream: CUstream) -> CuResult {
    call(|| driver()?.record_event(handle(event), handle(stream)))
}

/// `cuEventSynchronize`: Waits for an event (already complete here).
#[no_mangle]
pub extern "C" fn cuEventSynchronize(event: CUevent) -> CuResult {
    call(|| driver()?.event_done(handle(event)))
}

/// `cuEventQuery`: An event's status: always complete, or the sticky error.
#[no_mangle]
pub extern "C" fn cuEventQuery(event: CUevent) -> CuResult {
    call(|| driver()?.event_done(handle(event)))
}

/// `cuEventElapsedTime`: Milliseconds between two recorded events.
#[no_mangle]
pub extern "C" fn cuEventElapsedTime(ms: *mut f32, start: CUevent, end: CUevent) -> CuResult {
    call(|| put(ms, driver()?.elapsed(handle(start), handle(end))?))
}

/// `cuEventDestroy_v2`: Destroys an event.
#[no_mangle]
pub extern "C" fn cuEventDestroy_v2(event: CUevent) -> CuResult {
    call(|| driver()?.destroy_event(handle(event)))
}

/// `cuMemGetInfo_v2`: Free and total bytes of the current context's device.
#[no_mangle]
pub extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CuResult {
    call(|| {
        let (f, t) = driver()?.memory_info()?;
        put(free, f as usize)?;
        put(total, t as usize)
    })
}

/// `cuMemAlloc_v2`: Allocates device memory (512-byte granules; addresses are never reused).
#[no_mangle]
pub extern "C" fn cuMemAlloc_v2(address: *mut CUdeviceptr, bytes: usize) -> CuResult {
    call(|| put(address, driver()?.allocate(bytes as u64)?))
}

/// `cuMemFree_v2`: Frees an allocation by its base address.
#[no_mangle]
pub extern "C" fn cuMemFree_v2(address: CUdeviceptr) -> CuResult {
    call(|| driver()?.free(address))
}

/// `cuMemsetD8_v2`: Sets bytes of device memory.
#[no_mangle]
pub extern "C" fn cuMemsetD8_v2(address: CUdeviceptr, value: u8, count: usize) -> CuResult {
    call(|| driver()?.memset8(address, value, count as u64))
}

/// `cuMemsetD8Async`: As `cuMemsetD8_v2` (synchronous).
#[no_mangle]
pub extern "C" fn cuMemsetD8Async(
    address: CUdeviceptr,
    value: u8,
    count: usize,
    _stream: CUstream,
) -> CuResult {
    cuMemsetD8_v2(address, value, count)
}

/// `cuMemsetD32_v2`: Sets 4-byte words of device memory.
#[no_mangle]
pub extern "C" fn cuMemsetD32_v2(address: CUdeviceptr, value: u32, count: usize) -> CuResult {
    call(|| driver()?.memset32(address, value, count as u64))
}

/// `cuMemsetD32Async`: As `cuMemsetD32_v2` (synchronous).
#[no_mangle]
pub extern "C" fn cuMemsetD32Async(
    address: CUdeviceptr,
    value: u32,
    count: usize,
    _stream: CUstream,
) -> CuResult {
    cuMemsetD32_v2(address, value, count)
}

/// `cuMemcpyHtoD_v2`: Copies host memory to one device allocation.
#[no_mangle]
pub extern "C" fn cuMemcpyHtoD_v2(
    destination: CUdeviceptr,
    source: *const c_void,
    bytes: usize,
) -> CuResult {
    call(|| {
        if source.is_null() && bytes > 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let data: &[u8] = if bytes == 0 {
            &[]
        } else {
            // SAFETY: `source` points to `bytes` readable bytes (driver API contract).
            unsafe { std::slice::from_raw_parts(source.cast::<u8>(), bytes) }
        };
        driver()?.copy_to_device(destination, data)
    })
}

/// `cuMemcpyHtoDAsync_v2`: As `cuMemcpyHtoD_v2` (synchronous).
#[no_mangle]
pub extern "C" fn cuMemcpyHtoDAsync_v2(
    destination: CUdeviceptr,
    source: *const c_void,
    bytes: usize,
    _stream: CUstream,
) -> CuResult {
    cuMemcpyHtoD_v2(destination, source, bytes)
}

/// `cuMemcpyDtoH_v2`: Copies from one device allocation to host memory.
#[no_mangle]
pub extern "C" fn cuMemcpyDtoH_v2(
    destination: *mut c_void,
    source: CUdeviceptr,
    bytes: usize,
) -> CuResult {
    call(|| {
        if destination.is_null() && bytes > 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let out: &mut [u8] = if bytes == 0 {
            &mut []
        } else {
            // SAFETY: `destination` points to `bytes` writable bytes (driver API contract).
            unsafe { std::slice::from_raw_parts_mut(destination.cast::<u8>(), bytes) }
        };
        driver()?.copy_to_host(out, source)
    })
}

/// `cuMemcpyDtoHAsync_v2`: As `cuMemcpyDtoH_v2` (synchronous).
#[no_mangle]
pub extern "C" fn cuMemcpyDtoHAsync_v2(
    destination: *mut c_void,
    source: CUdeviceptr,
    bytes: usize,
    _stream: CUstream,
) -> CuResult {
    cuMemcpyDtoH_v2(destination, source, bytes)
}

/// `cuMemcpyDtoD_v2`: Copies between device allocations.
#[no_mangle]
pub extern "C" fn cuMemcpyDtoD_v2(
    destination: CUdeviceptr,
    source: CUdeviceptr,
    bytes: usize,
) -> CuResult {
    call(|| driver()?.copy_on_device(destination, source, bytes as u64))
}

/// `cuMemcpyDtoDAsync_v2`: As `cuMemcpyDtoD_v2` (synchronous).
#[no_mangle]
pub extern "C" fn cuMemcpyDtoDAsync_v2(
    destination: CUdeviceptr,
    source: CUdeviceptr,
    bytes: usize,
    _stream: CUstream,
) -> CuResult {
    cuMemcpyDtoD_v2(destination, source, bytes)
}

/// `cuLaunchKernel`: Runs a kernel's grid to completion; a fault makes the context sticky-faulted (the launch itself succeeds, as an asynchronous launch would).
#[no_mangle]
pub extern "C" fn cuLaunchKernel(
    function: CUfunction,
    grid_x: u32,
    grid_y: u32,
    grid_z: u32,
    block_x: u32,
    block_y: u32,
    block_z: u32,
    shared_bytes: u32,
    stream: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CuResult {
    call(|| {
        let d = driver()?;
        if !extra.is_null() {
            eprintln!("xray-emu: cuLaunchKernel's `extra` argument is not implemented");
            return Err(CUDA_ERROR_NOT_SUPPORTED);
        }
        let kernel = d.function_params(handle(function))?;
        if !kernel.params.is_empty() && params.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let mut buffer = vec![0u8; kernel.param_bytes as usize];
        for (i, slot) in kernel.params.iter().enumerate() {
            // SAFETY: `params` has one pointer per kernel parameter, each to a value of
            // the parameter's size (driver API contract).
            let value = unsafe { *params.add(i) };
            if value.is_null() {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            // SAFETY: as above.
            let bytes =
                unsafe { std::slice::from_raw_parts(value.cast::<u8>(), slot.size as usize) };
            let start = slot.offset as usize;
            buffer[start..start + bytes.len()].copy_from_slice(bytes);
        }
        d.launch(
            handle(function),
            [grid_x, grid_y, grid_z],
            [block_x, block_y, block_z],
            shared_bytes,
            handle(stream),
            &buffer,
        )
    })
}

/// `cuGetErrorString`: A result code's description (NULL and an error for unknown codes).
#[no_mangle]
pub extern "C" fn cuGetErrorString(code: u32, text: *mut *const c_char) -> CuResult {
    call(|| match description(code) {
        Some(d) => put(text, d.as_ptr().cast::<c_char>()),
        None => {
            put(text, std::ptr::null())?;
            Err(CUDA_ERROR_INVALID_VALUE)
        }
    })
}

/// `cuGetErrorName`: A result code's name (NULL and an error for unknown codes).
#[no_mangle]
pub extern "C" fn cuGetErrorName(code: u32, text: *mut *const c_char) -> CuResult {
    call(|| match name(code) {
        Some(n) => put(text, n.as_ptr().cast::<c_char>()),
        None => {
            put(text, std::ptr::null())?;
            Err(CUDA_ERROR_INVALID_VALUE)
        }
    })
}

/// Functions `cust` 0.3.2 can call that this driver does not implement.
macro_rules! not_supported {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: not implemented; returns `CUDA_ERROR_NOT_SUPPORTED`.")]
            #[no_mangle]
            pub extern "C" fn $name() -> CuResult {
                CUDA_ERROR_NOT_SUPPORTED
            }
        )*
    };
}

not_supported!(
    cuArray3DCreate_v2,
    cuArray3DGetDescriptor_v2,
    cuArrayDestroy,
    cuCtxCreate_v2,
    cuCtxDestroy_v2,
    cuCtxGetCacheConfig,
    cuCtxGetFlags,
    cuCtxGetLimit,
    cuCtxGetSharedMemConfig,
    cuCtxGetStreamPriorityRange,
    cuCtxSetCacheConfig,
    cuCtxSetLimit,
    cuCtxSetSharedMemConfig,
    cuDestroyExternalMemory,
    cuExternalMemoryGetMappedBuffer,
    cuFuncGetAttribute,
    cuFuncSetCacheConfig,
    cuFuncSetSharedMemConfig,
    cuGraphAddKernelNode,
    cuGraphCreate,
    cuGraphDestroy,
    cuGraphGetEdges,
    cuGraphGetNodes,
    cuGraphKernelNodeGetParams,
    cuGraphNodeGetType,
    cuImportExternalMemory,
    cuLaunchHostFunc,
    cuLinkAddData_v2,
    cuLinkComplete,
    cuLinkCreate_v2,
    cuLinkDestroy,
    cuMemAdvise,
    cuMemAllocAsync,
    cuMemAllocHost_v2,
    cuMemAllocManaged,
    cuMemFreeAsync,
    cuMemFreeHost,
    cuMemPrefetchAsync,
    cuMemcpy2D_v2,
    cuMemcpyAtoH_v2,
    cuMemcpyHtoA_v2,
    cuMemsetD16Async,
    cuMemsetD16_v2,
    cuModuleGetGlobal_v2,
    cuModuleLoad,
    cuOccupancyAvailableDynamicSMemPerBlock,
    cuOccupancyMaxActiveBlocksPerMultiprocessor,
    cuOccupancyMaxPotentialBlockSize,
    cuStreamGetFlags,
    cuStreamGetPriority,
    cuTexObjectCreate,
    cuTexObjectGetResourceDesc,
);
