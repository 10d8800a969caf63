//! The software device's settings, read once from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `XRAY_EMU_DEVICES` | 1 | number of devices (1 to 16) |
//! | `XRAY_EMU_MEMORY` | 16G, or a quarter of the host's memory if less | memory per device (bytes, or with a K/M/G/T suffix, binary) |
//! | `XRAY_EMU_THREADS` | the CPU count | worker threads that run blocks |
//! | `XRAY_EMU_CHECK` | full | `full` (bounds, initcheck, races, `.nc` hazards) or `memcheck` (bounds and alignment only) |
//! | `XRAY_EMU_MAX_STEPS` | 1000000000 | instructions one thread may run before the launch times out |
//! | `XRAY_EMU_PROFILE` | unset | a file for the cost report of every launch (JSON Lines, appended) |
//! | `XRAY_EMU_VERBOSE` | unset | `1`: one line per launch on stderr (instructions, interpreter speed) |

use std::path::PathBuf;

/// Settings of the software driver.
#[derive(Clone, Debug)]
pub struct Config {
    /// Devices.
    pub devices: u32,
    /// Bytes per device.
    pub memory: u64,
    /// Worker threads per launch.
    pub threads: usize,
    /// Initcheck and hazard checks on.
    pub full_checks: bool,
    /// Instruction limit per thread.
    pub max_steps: u64,
    /// Where to write the cost report.
    pub profile: Option<PathBuf>,
    /// Print a line per launch.
    pub verbose: bool,
}

/// Parses `16G`, `512M`, `4096`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 10),
        'm' | 'M' => (&text[..text.len() - 1], 20),
        'g' | 'G' => (&text[..text.len() - 1], 30),
        't' | 'T' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// 16 GiB, or a quarter of the host's memory if that is less: the checker keeps about
/// four bytes of state per byte allocated, all in host memory, and the host code sizes
/// its batches from the free memory reported.
fn default_memory() -> u64 {
    let host = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    match host {
        Some(bytes) => (16u64 << 30).min(bytes / 4),
        None => 16 << 30,
    }
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the environment.
    ///
    /// # Errors
    /// A message naming the variable with a bad value.
    pub fn from_env() -> Result<Config, String> {
        let devices = match variable("XRAY_EMU_DEVICES") {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=16).contains(n))
                .ok_or_else(|| format!("XRAY_EMU_DEVICES={v}: expected 1 to 16"))?,
            None => 1,
        };
        let memory = match variable("XRAY_EMU_MEMORY") {
            Some(v) => parse_size(&v).filter(|n| *n >= 1 << 20).ok_or_else(|| {
                format!("XRAY_EMU_MEMORY={v}: expected a size of at least 1M, like 512M or 16G")
            })?,
            None => default_memory(),
        };
        let threads = match variable("XRAY_EMU_THREADS") {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| format!("XRAY_EMU_THREADS={v}: expected 1 to 256"))?,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let full_checks = match variable("XRAY_EMU_CHECK").as_deref().map(str::trim) {
            None | Some("full") => true,
            Some("memcheck") => false,
            Some(other) => {
                return Err(format!(
                    "XRAY_EMU_CHECK={other}: expected `full` or `memcheck`"
                ))
            }
        };
        let max_steps = match variable("XRAY_EMU_MAX_STEPS") {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("XRAY_EMU_MAX_STEPS={v}: expected a positive integer"))?,
            None => 1_000_000_000,
        };
        Ok(Config {
            devices,
            memory,
            threads,
            full_checks,
            max_steps,
            profile: variable("XRAY_EMU_PROFILE").map(PathBuf::from),
            verbose: variable("XRAY_EMU_VERBOSE").is_some_and(|v| v.trim() == "1"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("16g"), Some(16 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }
}
