//! The exported C functions, called as a C program would, against the CUDA driver API
//! reference: return codes, contexts, memory accounting, launch validation, sticky
//! faults and their reset, the JIT's error log, events.
//!
//! One test function: the driver is one per process and configured once (two devices
//! of 64 MiB here), so the steps run in order.

use std::ffi::{c_void, CStr, CString};
use std::ptr::{null, null_mut};

use cuda_emu::abi::*;
use cuda_emu::result::*;

const KERNEL: &str = ".version 7.0\n.target sm_70\n.address_size 64\n\
    .visible .entry k(\n.param .u32 k_param_0,\n.param .u64 .ptr .align 1 k_param_1,\n\
    .param .align 16 .b8 k_param_2[20]\n)\n{\n.reg .b32 %r<8>;\n.reg .b64 %rd<4>;\n\
    ld.param.b32 %r1, [k_param_0];\nld.param.b64 %rd1, [k_param_1];\n\
    ld.param.b32 %r2, [k_param_2+16];\nadd.s32 %r3, %r1, %r2;\n\
    st.global.b32 [%rd1], %r3;\nret;\n}\n";

fn load(ptx: &str) -> (CuResult, *mut c_void, String) {
    let text = CString::new(ptx).unwrap();
    let mut module = null_mut();
    let mut log = vec![0u8; 256];
    let mut options = [5u32, 6];
    let mut values = [log.as_mut_ptr().cast::<c_void>(), 256usize as *mut c_void];
    let code = cuModuleLoadDataEx(
        &mut module,
        text.as_ptr().cast(),
        2,
        options.as_mut_ptr(),
        values.as_mut_ptr(),
    );
    let written = values[1] as usize;
    let message = String::from_utf8_lossy(&log[..written.saturating_sub(1)]).into_owned();
    (code, module, message)
}

#[test]
fn the_driver_api_behaves_as_the_reference_says() {
    std::env::set_var("XRAY_EMU_DEVICES", "2");
    std::env::set_var("XRAY_EMU_MEMORY", "64M");
    let profile =
        std::env::temp_dir().join(format!("xray-emu-profile-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&profile);
    std::env::set_var("XRAY_EMU_PROFILE", &profile);
    let mut count = 0;
    assert_eq!(cuDeviceGetCount(&mut count), CUDA_ERROR_NOT_INITIALIZED);
    assert_eq!(cuInit(1), CUDA_ERROR_INVALID_VALUE, "flags must be 0");
    assert_eq!(cuInit(0), CUDA_SUCCESS);
    assert_eq!(cuDeviceGetCount(&mut count), CUDA_SUCCESS);
    assert_eq!(count, 2);
    let mut device = -1;
    assert_eq!(cuDeviceGet(&mut device, 2), CUDA_ERROR_INVALID_DEVICE);
    assert_eq!(cuDeviceGet(&mut device, 1), CUDA_SUCCESS);
    let (mut major, mut minor) = (0, 0);
    assert_eq!(cuDeviceGetAttribute(&mut major, 75, 0), CUDA_SUCCESS);
    assert_eq!(cuDeviceGetAttribute(&mut minor, 76, 0), CUDA_SUCCESS);
    assert_eq!((major, minor), (9, 0));
    let mut grid_y = 0;
    assert_eq!(cuDeviceGetAttribute(&mut grid_y, 6, 0), CUDA_SUCCESS);
    assert_eq!(grid_y, 65_535);
    let mut name = [0i8; 8];
    assert_eq!(cuDeviceGetName(name.as_mut_ptr(), 8, 0), CUDA_SUCCESS);
    assert_eq!(
        unsafe { CStr::from_ptr(name.as_ptr()) }.to_bytes().len(),
        7,
        "truncated"
    );

    // No current context: memory calls fail with INVALID_CONTEXT.
    let mut address = 0u64;
    assert_eq!(cuMemAlloc_v2(&mut address, 16), CUDA_ERROR_INVALID_CONTEXT);
    let mut context = null_mut();
    assert_eq!(cuDevicePrimaryCtxRetain(&mut context, 0), CUDA_SUCCESS);
    assert_eq!(cuCtxSetCurrent(context), CUDA_SUCCESS);
    let (mut free, mut total) = (0usize, 0usize);
    assert_eq!(cuMemGetInfo_v2(&mut free, &mut total), CUDA_SUCCESS);
    assert_eq!((free, total), (64 << 20, 64 << 20));
    assert_eq!(cuMemAlloc_v2(&mut address, 1), CUDA_SUCCESS);
    assert_eq!(cuMemGetInfo_v2(&mut free, &mut total), CUDA_SUCCESS);
    assert_eq!(free, total - 512, "allocations take 512-byte granules");
    assert_eq!(cuMemAlloc_v2(&mut address, 0), CUDA_ERROR_INVALID_VALUE);
    let mut big = 0u64;
    assert_eq!(cuMemAlloc_v2(&mut big, 65 << 20), CUDA_ERROR_OUT_OF_MEMORY);
    assert_eq!(
        cuMemFree_v2(address + 4),
        CUDA_ERROR_INVALID_VALUE,
        "not a base"
    );
    assert_eq!(cuMemFree_v2(address), CUDA_SUCCESS);
    assert_eq!(
        cuMemFree_v2(address),
        CUDA_ERROR_INVALID_VALUE,
        "double free"
    );

    // Copies must stay inside one allocation.
    let mut buffer = 0u64;
    assert_eq!(cuMemAlloc_v2(&mut buffer, 8), CUDA_SUCCESS);
    let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(
        cuMemcpyHtoD_v2(buffer, data.as_ptr().cast(), 8),
        CUDA_SUCCESS
    );
    assert_eq!(
        cuMemcpyHtoD_v2(buffer + 4, data.as_ptr().cast(), 8),
        CUDA_ERROR_INVALID_VALUE
    );
    let mut back = [0u8; 8];
    assert_eq!(
        cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), buffer, 8),
        CUDA_SUCCESS
    );
    assert_eq!(back, data);

    // A rejected module fills the error log and reports its size.
    let (code, _, log) = load(&KERNEL.replace("add.s32", "frobnicate.s32"));
    assert_eq!(code, CUDA_ERROR_INVALID_PTX);
    assert!(
        log.contains("ptx line 15") && log.contains("frobnicate"),
        "{log}"
    );
    let (code, _, _) = load(&KERNEL.replace(".version 7.0", ".version 8.5"));
    assert_eq!(code, CUDA_ERROR_UNSUPPORTED_PTX_VERSION);

    // Parameters are laid out with their declared alignment: 0, 8, 16; 36 bytes.
    let (code, module, log) = load(KERNEL);
    assert_eq!(code, CUDA_SUCCESS);
    assert!(
        log.is_empty(),
        "a successful load leaves an empty log: {log}"
    );
    let mut function = null_mut();
    let k = CString::new("k").unwrap();
    let missing = CString::new("nope").unwrap();
    assert_eq!(
        cuModuleGetFunction(&mut function, module, missing.as_ptr()),
        CUDA_ERROR_NOT_FOUND
    );
    assert_eq!(
        cuModuleGetFunction(&mut function, module, k.as_ptr()),
        CUDA_SUCCESS
    );
    let mut first = 40u32;
    let mut pointer = buffer;
    let mut record = [0u32; 5];
    record[4] = 2;
    let mut params = [
        (&mut first as *mut u32).cast::<c_void>(),
        (&mut pointer as *mut u64).cast(),
        record.as_mut_ptr().cast(),
    ];
    let launch = |grid: [u32; 3], block: [u32; 3], params: *mut *mut c_void| {
        cuLaunchKernel(
            function,
            grid[0],
            grid[1],
            grid[2],
            block[0],
            block[1],
            block[2],
            0,
            null_mut(),
            params,
            null_mut(),
        )
    };
    assert_eq!(
        launch([1, 1, 1], [1025, 1, 1], params.as_mut_ptr()),
        CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(
        launch([1, 65_536, 1], [1, 1, 1], params.as_mut_ptr()),
        CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(
        launch([1, 1, 1], [1, 1, 1], null_mut()),
        CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(
        launch([1, 1, 1], [1, 1, 1], params.as_mut_ptr()),
        CUDA_SUCCESS
    );
    assert_eq!(cuCtxSynchronize(), CUDA_SUCCESS);
    let mut result = [0u8; 4];
    assert_eq!(
        cuMemcpyDtoH_v2(result.as_mut_ptr().cast(), buffer, 4),
        CUDA_SUCCESS
    );
    assert_eq!(u32::from_le_bytes(result), 42);

    // The cost report: one JSON line for the launch, with its exact counts.
    let report = std::fs::read_to_string(&profile).unwrap();
    let launches: Vec<serde_json::Value> = report
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(launches.len(), 1, "{report}");
    let record = &launches[0];
    assert_eq!(record["kernel"], "k");
    assert_eq!(record["threads"], 1);
    // Three ld.param, add, st, ret.
    assert_eq!(record["instructions"]["total"], 6);
    assert_eq!(record["instructions"]["by_class"]["load_param"], 3);
    assert_eq!(record["global_store"]["requests"], 1);
    assert_eq!(record["global_store"]["sectors"], 1);
    assert_eq!(record["global_store"]["bytes"], 4);
    assert_eq!(record["pid"], std::process::id());
    let _ = std::fs::remove_file(&profile);

    // The leak report names what is still allocated: `buffer`, 8 bytes.
    let live = cuda_emu::driver::driver()
        .unwrap()
        .live_allocations_report();
    assert!(live[0].contains("1 allocation(s) (8 bytes)"), "{live:?}");
    assert!(live[1].contains(&format!("{buffer:#x}")), "{live:?}");

    // Events: elapsed time needs both recorded.
    let (mut start, mut stop) = (null_mut(), null_mut());
    assert_eq!(cuEventCreate(&mut start, 0), CUDA_SUCCESS);
    assert_eq!(cuEventCreate(&mut stop, 0), CUDA_SUCCESS);
    let mut ms = 0f32;
    assert_eq!(cuEventRecord(start, null_mut()), CUDA_SUCCESS);
    assert_eq!(
        cuEventElapsedTime(&mut ms, start, stop),
        CUDA_ERROR_INVALID_HANDLE
    );
    assert_eq!(cuEventRecord(stop, null_mut()), CUDA_SUCCESS);
    assert_eq!(cuEventElapsedTime(&mut ms, start, stop), CUDA_SUCCESS);
    assert!(ms >= 0.0);
    assert_eq!(cuEventDestroy_v2(start), CUDA_SUCCESS);
    assert_eq!(cuEventDestroy_v2(stop), CUDA_SUCCESS);

    // A faulting launch succeeds as a launch (faults are asynchronous on a GPU); the
    // context is then faulted, and every call in it returns the fault.
    // SAFETY: params[1] points to `pointer`, alive and not otherwise borrowed.
    unsafe { *params[1].cast::<u64>() = 0x10 };
    assert_eq!(
        launch([1, 1, 1], [1, 1, 1], params.as_mut_ptr()),
        CUDA_SUCCESS
    );
    assert_eq!(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_eq!(cuMemAlloc_v2(&mut address, 4), CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_eq!(
        cuMemGetInfo_v2(&mut free, &mut total),
        CUDA_ERROR_ILLEGAL_ADDRESS
    );
    // The other device is unaffected.
    let mut other = null_mut();
    assert_eq!(cuDevicePrimaryCtxRetain(&mut other, 1), CUDA_SUCCESS);
    assert_ne!(other, context);
    assert_eq!(cuCtxSetCurrent(other), CUDA_SUCCESS);
    assert_eq!(cuMemAlloc_v2(&mut address, 4), CUDA_SUCCESS);
    assert_eq!(cuMemFree_v2(address), CUDA_SUCCESS);
    // A reset gives a fresh context behind the same handle; the retain still counts.
    assert_eq!(cuDevicePrimaryCtxReset_v2(0), CUDA_SUCCESS);
    let mut again = null_mut();
    assert_eq!(cuDevicePrimaryCtxRetain(&mut again, 0), CUDA_SUCCESS);
    assert_eq!(again, context, "the primary context keeps its handle");
    assert_eq!(cuCtxSetCurrent(again), CUDA_SUCCESS);
    assert_eq!(cuMemAlloc_v2(&mut address, 4), CUDA_SUCCESS);
    assert_ne!(address, buffer, "addresses are never reused");
    assert_eq!(
        cuMemcpyDtoH_v2(result.as_mut_ptr().cast(), buffer, 4),
        CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(cuMemFree_v2(address), CUDA_SUCCESS);
    assert_eq!(
        cuModuleUnload(module),
        CUDA_ERROR_INVALID_HANDLE,
        "gone with the reset"
    );
    // Two retains, then three releases: the third is an error.
    assert_eq!(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);
    assert_eq!(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);
    assert_eq!(cuDevicePrimaryCtxRelease_v2(0), CUDA_ERROR_INVALID_CONTEXT);
    assert_eq!(cuDevicePrimaryCtxRelease_v2(1), CUDA_SUCCESS);

    // Error strings: known codes have one, others get NULL and an error.
    let mut text = null();
    assert_eq!(cuGetErrorString(700, &mut text), CUDA_SUCCESS);
    assert_eq!(
        unsafe { CStr::from_ptr(text) }.to_str().unwrap(),
        "an illegal memory access was encountered"
    );
    assert_eq!(cuGetErrorString(12345, &mut text), CUDA_ERROR_INVALID_VALUE);
    assert!(text.is_null());
    // Functions the project never calls are refused, not faked.
    assert_eq!(cuCtxCreate_v2(), CUDA_ERROR_NOT_SUPPORTED);
    assert_eq!(cuGraphCreate(), CUDA_ERROR_NOT_SUPPORTED);
}
