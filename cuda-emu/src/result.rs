//! `CUresult` codes this driver returns, all from CUDA 11.4's `cudaError_enum` (the
//! list `cust_raw` 0.11.3 maps into a Rust enum: any other value would be undefined
//! behaviour there), with their names and the driver's descriptions.

/// A CUDA driver result code.
pub type CuResult = u32;

/// Defines the codes as constants and their name/description tables.
macro_rules! codes {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        $(
            #[doc = $text]
            pub const $name: CuResult = $value;
        )*
        /// The code's name (`CUDA_ERROR_INVALID_VALUE`), or `None` if not a code here.
        pub fn name(code: CuResult) -> Option<&'static str> {
            match code { $($value => Some(concat!(stringify!($name), "\0")),)* _ => None }
        }
        /// The code's description, or `None` if not a code here.
        pub fn description(code: CuResult) -> Option<&'static str> {
            match code { $($value => Some(concat!($text, "\0")),)* _ => None }
        }
    };
}

codes! {
    CUDA_SUCCESS = 0, "no error";
    CUDA_ERROR_INVALID_VALUE = 1, "invalid argument";
    CUDA_ERROR_OUT_OF_MEMORY = 2, "out of memory";
    CUDA_ERROR_NOT_INITIALIZED = 3, "initialization error";
    CUDA_ERROR_DEINITIALIZED = 4, "driver shutting down";
    CUDA_ERROR_NO_DEVICE = 100, "no CUDA-capable device is detected";
    CUDA_ERROR_INVALID_DEVICE = 101, "invalid device ordinal";
    CUDA_ERROR_INVALID_IMAGE = 200, "device kernel image is invalid";
    CUDA_ERROR_INVALID_CONTEXT = 201, "invalid device context";
    CUDA_ERROR_INVALID_PTX = 218, "a PTX JIT compilation failed";
    CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222, "the provided PTX was compiled with an unsupported toolchain.";
    CUDA_ERROR_INVALID_HANDLE = 400, "invalid resource handle";
    CUDA_ERROR_NOT_FOUND = 500, "named symbol not found";
    CUDA_ERROR_NOT_READY = 600, "device not ready";
    CUDA_ERROR_ILLEGAL_ADDRESS = 700, "an illegal memory access was encountered";
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701, "too many resources requested for launch";
    CUDA_ERROR_LAUNCH_TIMEOUT = 702, "the launch timed out and was terminated";
    CUDA_ERROR_CONTEXT_IS_DESTROYED = 709, "context is destroyed";
    CUDA_ERROR_MISALIGNED_ADDRESS = 716, "misaligned address";
    CUDA_ERROR_LAUNCH_FAILED = 719, "unspecified launch failure";
    CUDA_ERROR_NOT_PERMITTED = 800, "operation not permitted";
    CUDA_ERROR_NOT_SUPPORTED = 801, "operation not supported";
    CUDA_ERROR_UNKNOWN = 999, "unknown error";
}

/// The result of a driver call: `Ok` or one of the codes above.
pub type DriverResult<T> = Result<T, CuResult>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_cuda_11_4s_list() {
        // CUDA 11.4's cudaError_enum values (cust_raw 0.11.3, src/cuda.rs).
        const CUDA_11_4: &[u32] = &[
            0, 1, 2, 3, 4, 5, 6, 7, 8, 34, 100, 101, 102, 200, 201, 202, 205, 206, 207, 208, 209,
            210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223, 224, 300, 301,
            302, 303, 304, 400, 401, 500, 600, 700, 701, 702, 703, 704, 705, 708, 709, 710, 711,
            712, 713, 714, 715, 716, 717, 718, 719, 720, 800, 801, 802, 803, 804, 805, 806, 807,
            808, 809, 900, 901, 902, 903, 904, 905, 906, 907, 908, 909, 910, 911, 999,
        ];
        for code in 0..1000 {
            if name(code).is_some() {
                assert!(CUDA_11_4.contains(&code), "{code} is not a CUDA 11.4 code");
                assert!(description(code).is_some_and(|d| d.ends_with('\0')));
            }
        }
    }
}
