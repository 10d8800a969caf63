//! The driver's state and the semantics of each call, in safe Rust; `abi` only turns
//! C arguments into these calls.
//!
//! Devices are Hopper-class (compute capability 9.0, H100's grid, block and memory
//! limits, memory size from the configuration). Only primary contexts exist: retained
//! and released per device, current per host thread. A kernel fault makes its context
//! sticky-faulted, as on a GPU: every later call in it returns that error until the
//! primary context is reset or released by all its holders. Execution is synchronous
//! (a launch has finished when `cuLaunchKernel` returns), but a fault is reported the
//! way an asynchronous one is: the launch itself succeeds and the next call fails.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::config::Config;
use crate::launch::{describe_fault, execute, LaunchSpec};
use crate::memory::{AddressSpace, Checks, MemoryError};
use crate::profile;
use crate::ptx::exec::FaultKind;
use crate::ptx::{self, Kernel};
use crate::result::*;

/// The device's name, as `cuDeviceGetName` gives it.
pub const DEVICE_NAME: &str = "xray-emu software GPU (Hopper-class, sm_90)";

/// The driver version this implements the API of (`cuDriverGetVersion`).
pub const DRIVER_VERSION: i32 = 11040;

/// Limits of a Hopper-class device (H100 SXM).
pub mod limits {
    /// Threads per block.
    pub const THREADS_PER_BLOCK: u32 = 1024;
    /// Block dimensions.
    pub const BLOCK: [u32; 3] = [1024, 1024, 64];
    /// Grid dimensions.
    pub const GRID: [u32; 3] = [2_147_483_647, 65_535, 65_535];
    /// Static shared memory per block.
    pub const SHARED_PER_BLOCK: u32 = 48 << 10;
}

/// A device attribute's value, or `None` for attributes this driver does not know.
pub fn attribute(attribute: i32) -> Option<i32> {
    Some(match attribute {
        1 => limits::THREADS_PER_BLOCK as i32,
        2 => limits::BLOCK[0] as i32,
        3 => limits::BLOCK[1] as i32,
        4 => limits::BLOCK[2] as i32,
        5 => limits::GRID[0] as i32,
        6 => limits::GRID[1] as i32,
        7 => limits::GRID[2] as i32,
        8 => limits::SHARED_PER_BLOCK as i32,
        9 => 65_536,         // total constant memory
        10 => 32,            // warp size
        11 => 2_147_483_647, // max pitch
        12 => 65_536,        // registers per block
        13 => 1_980_000,     // clock rate, kHz
        14 => 512,           // texture alignment
        15 => 1,             // GPU overlap
        16 => 132,           // multiprocessors
        17 => 0,             // kernel exec timeout
        18 => 0,             // integrated
        19 => 1,             // can map host memory
        20 => 0,             // compute mode: default
        31 => 1,             // concurrent kernels
        32 => 1,             // ECC
        33..=35 => 0,        // PCI bus, device, TCC
        36 => 2_619_000,     // memory clock, kHz
        37 => 5120,          // bus width
        38 => 50 << 20,      // L2 bytes
        39 => 2048,          // threads per multiprocessor
        40 => 3,             // async engines
        41 => 1,             // unified addressing
        50 => 0,             // PCI domain
        75 => 9,             // compute capability major
        76 => 0,             // compute capability minor
        78 => 1,             // stream priorities
        79 | 80 => 1,        // L1 caches
        81 => 228 << 10,     // shared memory per multiprocessor
        82 => 65_536,        // registers per multiprocessor
        83 => 1,             // managed memory
        84 => 0,             // multi-GPU board
        95 => 1,             // cooperative launch
        97 => 227 << 10,     // shared per block, opt-in
        106 => 32,           // blocks per multiprocessor
        _ => return None,
    })
}

/// A primary context.
pub struct Context {
    /// Its handle.
    pub handle: u64,
    /// Its device.
    pub device: u32,
    /// Its memory.
    pub memory: Mutex<AddressSpace>,
    /// The sticky error, once a kernel has faulted (0 while healthy).
    sticky: AtomicU32,
}

impl Context {
    /// `Err` with the sticky error if the context has faulted.
    pub fn healthy(&self) -> DriverResult<()> {
        match self.sticky.load(Ordering::Relaxed) {
            CUDA_SUCCESS => Ok(()),
            code => Err(code),
        }
    }

    fn memory(&self) -> MutexGuard<'_, AddressSpace> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct DeviceState {
    primary: Option<Arc<Context>>,
    retains: u32,
    /// Where the next context's allocations start (addresses are never reused).
    next_address: u64,
}

struct Function {
    context: u64,
    kernel: Arc<Kernel>,
}

struct Event {
    context: u64,
    timing: bool,
    recorded: Option<Instant>,
}

struct State {
    devices: Vec<DeviceState>,
    contexts: HashMap<u64, Arc<Context>>,
    modules: HashMap<u64, (u64, Vec<u64>)>,
    functions: HashMap<u64, Function>,
    streams: HashMap<u64, u64>,
    events: HashMap<u64, Event>,
    next_handle: u64,
}

/// The driver: configuration and state.
pub struct Driver {
    config: Config,
    state: Mutex<State>,
    launches: AtomicU32,
    epoch: Instant,
}

thread_local! {
    static CONTEXT_STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();

/// `cuInit`: reads the configuration once.
pub fn init(flags: u32) -> DriverResult<()> {
    if flags != 0 {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let driver = DRIVER.get_or_init(|| {
        let config = Config::from_env()?;
        let devices = (0..config.devices)
            .map(|ordinal| DeviceState {
                primary: None,
                retains: 0,
                next_address: crate::memory::device_base(ordinal),
            })
            .collect();
        Ok(Driver {
            config,
            state: Mutex::new(State {
                devices,
                contexts: HashMap::new(),
                modules: HashMap::new(),
                functions: HashMap::new(),
                streams: HashMap::new(),
                events: HashMap::new(),
                next_handle: 0x1000,
            }),
            launches: AtomicU32::new(0),
            epoch: Instant::now(),
        })
    });
    match driver {
        Ok(_) => Ok(()),
        Err(message) => {
            eprintln!("xray-emu: {message}");
            Err(CUDA_ERROR_INVALID_VALUE)
        }
    }
}

/// The driver, once `cuInit` has succeeded.
pub fn driver() -> DriverResult<&'static Driver> {
    match DRIVER.get() {
        Some(Ok(driver)) => Ok(driver),
        _ => Err(CUDA_ERROR_NOT_INITIALIZED),
    }
}

fn current_handle() -> u64 {
    CONTEXT_STACK.with(|s| s.borrow().last().copied().unwrap_or(0))
}

impl Driver {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of devices.
    pub fn device_count(&self) -> i32 {
        self.config.devices as i32
    }

    /// Checks a device ordinal.
    pub fn device(&self, ordinal: i32) -> DriverResult<u32> {
        u32::try_from(ordinal)
            .ok()
            .filter(|o| *o < self.config.devices)
            .ok_or(CUDA_ERROR_INVALID_DEVICE)
    }

    fn handle(state: &mut State) -> u64 {
        state.next_handle += 1;
        state.next_handle
    }

    /// `cuDevicePrimaryCtxRetain`. A device's primary context keeps one handle for the
    /// life of the process, as with the real driver: after a reset, the next retain
    /// makes a fresh context behind the same handle.
    pub fn retain_primary(&self, device: u32) -> DriverResult<u64> {
        let mut state = self.state();
        let handle = primary_handle(device);
        let total = self.config.memory;
        let shadow = self.config.full_checks;
        let slot = &mut state.devices[device as usize];
        if let Some(context) = &slot.primary {
            slot.retains += 1;
            return Ok(context.handle);
        }
        let context = Arc::new(Context {
            handle,
            device,
            memory: Mutex::new(AddressSpace::new(slot.next_address, total, shadow)),
            sticky: AtomicU32::new(CUDA_SUCCESS),
        });
        slot.primary = Some(Arc::clone(&context));
        // Holders of a context that was reset still count: their releases come later.
        slot.retains += 1;
        state.contexts.insert(handle, context);
        Ok(handle)
    }

    /// `cuDevicePrimaryCtxRelease`: the context is destroyed with its last holder.
    pub fn release_primary(&self, device: u32) -> DriverResult<()> {
        let mut state = self.state();
        let slot = &mut state.devices[device as usize];
        if slot.retains == 0 {
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        }
        slot.retains -= 1;
        if slot.retains == 0 {
            Self::destroy_primary(&mut state, device, true);
        }
        Ok(())
    }

    /// `cuDevicePrimaryCtxReset`: destroys the primary context and everything in it
    /// now (no leak report: discarding is what was asked); the next retain makes a
    /// fresh one. Existing retains still count, so their releases balance later.
    pub fn reset_primary(&self, device: u32) -> DriverResult<()> {
        let mut state = self.state();
        Self::destroy_primary(&mut state, device, false);
        Ok(())
    }

    /// `cuDevicePrimaryCtxGetState`: (flags, active).
    pub fn primary_state(&self, device: u32) -> (u32, bool) {
        let state = self.state();
        (0, state.devices[device as usize].primary.is_some())
    }

    fn destroy_primary(state: &mut State, device: u32, report_leaks: bool) {
        let Some(context) = state.devices[device as usize].primary.take() else {
            return;
        };
        let handle = context.handle;
        state.contexts.remove(&handle);
        state.devices[device as usize].next_address = context.memory().next_address();
        let modules = state
            .modules
            .iter()
            .filter(|(_, (c, _))| *c == handle)
            .count();
        state.modules.retain(|_, (c, _)| *c != handle);
        state.functions.retain(|_, f| f.context != handle);
        let streams = state.streams.iter().filter(|(_, c)| **c == handle).count();
        state.streams.retain(|_, c| *c != handle);
        let events = state
            .events
            .iter()
            .filter(|(_, e)| e.context == handle)
            .count();
        state.events.retain(|_, e| e.context != handle);
        let memory = context.memory();
        let (count, bytes) = memory.live_summary();
        if report_leaks && (count > 0 || modules > 0 || streams > 0 || events > 0) {
            eprintln!(
                "========= xray-emu leak report: the primary context of device {device} was released with {count} allocation(s) ({bytes} bytes), {modules} module(s), {streams} stream(s) and {events} event(s) still live"
            );
            for line in allocation_lines(&memory) {
                eprintln!("{line}");
            }
        }
    }

    /// Reports, at process exit, device memory still allocated in live contexts
    /// (a primary context held until exit, as a cached backend is, is never released,
    /// so its leaks would otherwise go unseen).
    pub fn report_at_exit(&self) {
        for line in self.live_allocations_report() {
            eprintln!("{line}");
        }
    }

    /// The leak report of the live contexts as it would print now: per device with
    /// live allocations, a summary line and up to ten allocations; empty if none.
    pub fn live_allocations_report(&self) -> Vec<String> {
        let state = self.state();
        let mut lines = Vec::new();
        for slot in &state.devices {
            let Some(context) = &slot.primary else {
                continue;
            };
            let memory = context.memory();
            let (count, bytes) = memory.live_summary();
            if count == 0 {
                continue;
            }
            let note = if context.healthy().is_err() {
                " (the context has faulted: its holders may abandon their buffers on purpose)"
            } else {
                ""
            };
            lines.push(format!(
                "========= xray-emu leak report: device {} has {count} allocation(s) ({bytes} bytes) still live{note}",
                context.device
            ));
            lines.extend(allocation_lines(&memory));
        }
        lines
    }

    /// The context current on this thread.
    pub fn current(&self) -> DriverResult<Arc<Context>> {
        let handle = current_handle();
        if handle == 0 {
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        }
        self.state()
            .contexts
            .get(&handle)
            .cloned()
            .ok_or(CUDA_ERROR_CONTEXT_IS_DESTROYED)
    }

    /// The current context, which must be healthy.
    pub fn current_healthy(&self) -> DriverResult<Arc<Context>> {
        let context = self.current()?;
        context.healthy()?;
        Ok(context)
    }

    /// `cuCtxSetCurrent` (0 unbinds).
    pub fn set_current(&self, handle: u64) -> DriverResult<()> {
        if handle != 0 && !self.state().contexts.contains_key(&handle) {
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        }
        CONTEXT_STACK.with(|s| {
            let mut stack = s.borrow_mut();
            stack.pop();
            if handle != 0 {
                stack.push(handle);
            }
        });
        Ok(())
    }

    /// `cuCtxPushCurrent`.
    pub fn push_current(&self, handle: u64) -> DriverResult<()> {
        if !self.state().contexts.contains_key(&handle) {
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        }
        CONTEXT_STACK.with(|s| s.borrow_mut().push(handle));
        Ok(())
    }

    /// `cuCtxPopCurrent`: returns the popped handle.
    pub fn pop_current(&self) -> DriverResult<u64> {
        CONTEXT_STACK
            .with(|s| s.borrow_mut().pop())
            .ok_or(CUDA_ERROR_INVALID_CONTEXT)
    }

    /// The handle current on this thread (0 if none).
    pub fn current_handle(&self) -> u64 {
        current_handle()
    }

    /// `cuModuleLoadDataEx`: returns the module or the JIT's error message.
    pub fn load_module(&self, text: &str) -> Result<u64, (CuResult, String)> {
        let context = self.current_healthy().map_err(|c| (c, String::new()))?;
        let module = ptx::load(text).map_err(|e| {
            let code = if e.is_unsupported_version() {
                CUDA_ERROR_UNSUPPORTED_PTX_VERSION
            } else {
                CUDA_ERROR_INVALID_PTX
            };
            (code, format!("xray-emu: {e}"))
        })?;
        let mut state = self.state();
        let handle = Self::handle(&mut state);
        let mut functions = Vec::new();
        for kernel in &module.kernels {
            let f = Self::handle(&mut state);
            state.functions.insert(
                f,
                Function {
                    context: context.handle,
                    kernel: Arc::clone(kernel),
                },
            );
            functions.push(f);
        }
        state.modules.insert(handle, (context.handle, functions));
        Ok(handle)
    }

    /// `cuModuleGetFunction`.
    pub fn get_function(&self, module: u64, name: &str) -> DriverResult<u64> {
        self.current_healthy()?;
        let state = self.state();
        let (_, functions) = state
            .modules
            .get(&module)
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        functions
            .iter()
            .copied()
            .find(|f| {
                state
                    .functions
                    .get(f)
                    .is_some_and(|f| f.kernel.name == name)
            })
            .ok_or(CUDA_ERROR_NOT_FOUND)
    }

    /// `cuModuleUnload`.
    pub fn unload_module(&self, module: u64) -> DriverResult<()> {
        let mut state = self.state();
        let (_, functions) = state
            .modules
            .remove(&module)
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        for f in functions {
            state.functions.remove(&f);
        }
        Ok(())
    }

    /// Parameter sizes of a function, for reading `kernelParams`.
    pub fn function_params(&self, function: u64) -> DriverResult<Arc<Kernel>> {
        let state = self.state();
        state
            .functions
            .get(&function)
            .map(|f| Arc::clone(&f.kernel))
            .ok_or(CUDA_ERROR_INVALID_HANDLE)
    }

    /// `cuStreamCreate*`.
    pub fn create_stream(&self) -> DriverResult<u64> {
        let context = self.current_healthy()?;
        let mut state = self.state();
        let handle = Self::handle(&mut state);
        state.streams.insert(handle, context.handle);
        Ok(handle)
    }

    fn check_stream(&self, stream: u64, context: &Context) -> DriverResult<()> {
        if stream == 0 || stream == 1 || stream == 2 {
            // NULL, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD
            return Ok(());
        }
        match self.state().streams.get(&stream) {
            Some(owner) if *owner == context.handle => Ok(()),
            _ => Err(CUDA_ERROR_INVALID_HANDLE),
        }
    }

    /// `cuStreamSynchronize` (and `cuCtxSynchronize`, with stream 0).
    pub fn synchronize(&self, stream: u64) -> DriverResult<()> {
        let context = self.current()?;
        self.check_stream(stream, &context)?;
        context.healthy()
    }

    /// `cuStreamDestroy`.
    pub fn destroy_stream(&self, stream: u64) -> DriverResult<()> {
        self.state()
            .streams
            .remove(&stream)
            .map(|_| ())
            .ok_or(CUDA_ERROR_INVALID_HANDLE)
    }

    /// `cuEventCreate`.
    pub fn create_event(&self, flags: u32) -> DriverResult<u64> {
        let context = self.current_healthy()?;
        let mut state = self.state();
        let handle = Self::handle(&mut state);
        state.events.insert(
            handle,
            Event {
                context: context.handle,
                timing: flags & 0x2 == 0,
                recorded: None,
            },
        );
        Ok(handle)
    }

    /// `cuEventRecord`: work before it is done (execution is synchronous), so the
    /// event completes now.
    pub fn record_event(&self, event: u64, stream: u64) -> DriverResult<()> {
        let context = self.current_healthy()?;
        self.check_stream(stream, &context)?;
        let mut state = self.state();
        let event = state
            .events
            .get_mut(&event)
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        event.recorded = Some(Instant::now());
        Ok(())
    }

    /// `cuEventSynchronize` / `cuEventQuery`.
    pub fn event_done(&self, event: u64) -> DriverResult<()> {
        let context = self.current()?;
        if !self.state().events.contains_key(&event) {
            return Err(CUDA_ERROR_INVALID_HANDLE);
        }
        context.healthy()
    }

    /// `cuEventElapsedTime` in milliseconds.
    pub fn elapsed(&self, start: u64, end: u64) -> DriverResult<f32> {
        self.current_healthy()?;
        let state = self.state();
        let (a, b) = match (state.events.get(&start), state.events.get(&end)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(CUDA_ERROR_INVALID_HANDLE),
        };
        if !a.timing || !b.timing {
            return Err(CUDA_ERROR_INVALID_HANDLE);
        }
        match (a.recorded, b.recorded) {
            (Some(t0), Some(t1)) => {
                let ms = if t1 >= t0 {
                    (t1 - t0).as_secs_f64() * 1e3
                } else {
                    -((t0 - t1).as_secs_f64() * 1e3)
                };
                Ok(ms as f32)
            }
            // An event never recorded (CUDA driver API reference).
            _ => Err(CUDA_ERROR_INVALID_HANDLE),
        }
    }

    /// `cuEventDestroy`.
    pub fn destroy_event(&self, event: u64) -> DriverResult<()> {
        self.state()
            .events
            .remove(&event)
            .map(|_| ())
            .ok_or(CUDA_ERROR_INVALID_HANDLE)
    }

    /// `cuMemGetInfo`: (free, total).
    pub fn memory_info(&self) -> DriverResult<(u64, u64)> {
        let context = self.current_healthy()?;
        let memory = context.memory();
        Ok((memory.free_bytes(), memory.total_bytes()))
    }

    /// `cuMemAlloc`.
    pub fn allocate(&self, bytes: u64) -> DriverResult<u64> {
        let context = self.current_healthy()?;
        let mut memory = context.memory();
        memory.allocate(bytes).map_err(memory_error)
    }

    /// `cuMemFree`.
    pub fn free(&self, address: u64) -> DriverResult<()> {
        let context = self.current_healthy()?;
        let mut memory = context.memory();
        memory.free(address).map_err(memory_error)
    }

    /// `cuMemcpyHtoD`.
    pub fn copy_to_device(&self, address: u64, data: &[u8]) -> DriverResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let context = self.current_healthy()?;
        let (allocation, offset) = context
            .memory()
            .find(address, data.len() as u64)
            .map_err(memory_error)?;
        allocation.write_bytes(offset, data);
        Ok(())
    }

    /// `cuMemcpyDtoH`.
    pub fn copy_to_host(&self, out: &mut [u8], address: u64) -> DriverResult<()> {
        if out.is_empty() {
            return Ok(());
        }
        let context = self.current_healthy()?;
        let (allocation, offset) = context
            .memory()
            .find(address, out.len() as u64)
            .map_err(memory_error)?;
        allocation.read_into(offset, out);
        Ok(())
    }

    /// `cuMemcpyDtoD`.
    pub fn copy_on_device(&self, destination: u64, source: u64, bytes: u64) -> DriverResult<()> {
        if bytes == 0 {
            return Ok(());
        }
        let context = self.current_healthy()?;
        let (from, from_offset, to, to_offset) = {
            let memory = context.memory();
            let (from, from_offset) = memory.find(source, bytes).map_err(memory_error)?;
            let (to, to_offset) = memory.find(destination, bytes).map_err(memory_error)?;
            (from, from_offset, to, to_offset)
        };
        let mut buffer = Vec::new();
        buffer
            .try_reserve_exact(bytes as usize)
            .map_err(|_| CUDA_ERROR_OUT_OF_MEMORY)?;
        buffer.resize(bytes as usize, 0);
        from.read_into(from_offset, &mut buffer);
        to.write_bytes(to_offset, &buffer);
        Ok(())
    }

    /// `cuMemsetD8`.
    pub fn memset8(&self, address: u64, value: u8, count: u64) -> DriverResult<()> {
        if count == 0 {
            return Ok(());
        }
        let context = self.current_healthy()?;
        let (allocation, offset) = context
            .memory()
            .find(address, count)
            .map_err(memory_error)?;
        allocation.fill_bytes(offset, count, value);
        Ok(())
    }

    /// `cuMemsetD32`.
    pub fn memset32(&self, address: u64, value: u32, count: u64) -> DriverResult<()> {
        if count == 0 {
            return Ok(());
        }
        if !address.is_multiple_of(4) {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let bytes = count.checked_mul(4).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let context = self.current_healthy()?;
        let (allocation, offset) = context
            .memory()
            .find(address, bytes)
            .map_err(memory_error)?;
        allocation.fill_words(offset, count, value);
        Ok(())
    }

    /// `cuLaunchKernel`, after `abi` has gathered the arguments into `params`.
    pub fn launch(
        &self,
        function: u64,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        stream: u64,
        params: &[u8],
    ) -> DriverResult<()> {
        let context = self.current_healthy()?;
        self.check_stream(stream, &context)?;
        let kernel = {
            let state = self.state();
            let f = state
                .functions
                .get(&function)
                .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            if f.context != context.handle {
                return Err(CUDA_ERROR_INVALID_HANDLE);
            }
            Arc::clone(&f.kernel)
        };
        let threads = block.iter().map(|&b| u64::from(b)).product::<u64>();
        let fits =
            |dims: [u32; 3], max: [u32; 3]| dims.iter().zip(max).all(|(d, m)| (1..=m).contains(d));
        if !fits(grid, limits::GRID)
            || !fits(block, limits::BLOCK)
            || threads > u64::from(limits::THREADS_PER_BLOCK)
            || shared_bytes > limits::SHARED_PER_BLOCK
        {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let (allocations, freed) = {
            let memory = context.memory();
            (memory.snapshot(), memory.freed().to_vec())
        };
        let launch = self.launches.fetch_add(1, Ordering::Relaxed) % 0xff_ffff + 1;
        let spec = LaunchSpec {
            kernel: &kernel,
            grid,
            block,
            params,
            allocations: &allocations,
            freed: &freed,
            launch,
            checks: Checks {
                init: self.config.full_checks,
                hazards: self.config.full_checks,
            },
            workers: self.config.threads,
            max_steps: self.config.max_steps,
            profile: self.config.profile.is_some(),
        };
        let started = Instant::now();
        let (stats, fault) = execute(&spec);
        let seconds = started.elapsed().as_secs_f64();
        if self.config.verbose {
            eprintln!(
                "xray-emu: {} grid {:?} block {:?}: {} instructions in {:.3} s ({:.0} M/s)",
                kernel.name,
                grid,
                block,
                stats.instructions,
                seconds,
                stats.instructions as f64 / seconds.max(1e-9) / 1e6
            );
        }
        if let Some(path) = &self.config.profile {
            profile::record(
                path,
                &kernel,
                grid,
                block,
                &stats,
                (started - self.epoch).as_secs_f64(),
            );
        }
        if let Some(fault) = fault {
            eprintln!("{}", describe_fault(&kernel, &fault));
            let code = match fault.fault.kind {
                FaultKind::IllegalAddress { .. } => CUDA_ERROR_ILLEGAL_ADDRESS,
                FaultKind::Misaligned { .. } => CUDA_ERROR_MISALIGNED_ADDRESS,
                FaultKind::Timeout { .. } => CUDA_ERROR_LAUNCH_TIMEOUT,
                FaultKind::Hazard { .. } | FaultKind::Trap | FaultKind::Internal { .. } => {
                    CUDA_ERROR_LAUNCH_FAILED
                }
            };
            context.sticky.store(code, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Up to ten live allocations of `memory`, one report line each.
fn allocation_lines(memory: &AddressSpace) -> Vec<String> {
    memory
        .live_list()
        .into_iter()
        .take(10)
        .map(|(base, size)| format!("=========     {size} bytes at {base:#x}"))
        .collect()
}

/// The handle of device `device`'s primary context (never a pointer: handles are
/// numbers, checked on every call).
fn primary_handle(device: u32) -> u64 {
    0x100 + u64::from(device)
}

fn memory_error(error: MemoryError) -> CuResult {
    match error {
        MemoryError::OutOfMemory => CUDA_ERROR_OUT_OF_MEMORY,
        MemoryError::InvalidValue => CUDA_ERROR_INVALID_VALUE,
    }
}
