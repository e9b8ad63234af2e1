//! The process metrics that every Prometheus client exports under their standard names
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`),
//! read from `/proc/self` at scrape time, and `crosskey_build_info{version}`.
//!
//! Off Linux, or where `/proc` cannot be read, the process families are left out rather
//! than reported as zero.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Linux reports CPU times in `/proc/<pid>/stat` in USER_HZ ticks, which the kernel ABI
/// fixes at 100 per second on every architecture it exposes to user space.
const USER_HZ: f64 = 100.0;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// One reading of the process, as `/proc/self` reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub resident_bytes: Option<i64>,
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<i64>,
}

impl ProcessSample {
    /// Reads this process.
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as i64);
        Self {
            resident_bytes: status.as_deref().and_then(resident_bytes),
            cpu_seconds: stat.as_deref().and_then(cpu_seconds),
            open_fds,
        }
    }
}

/// `VmRSS` of `/proc/<pid>/status`, which the kernel prints in KiB.
fn resident_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// utime + stime of `/proc/<pid>/stat` (fields 14 and 15), in seconds. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // after_name starts at field 3 (state): utime is its 12th entry, stime its 13th.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Encodes [`ProcessSample::read`] on every scrape, and the build info.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sample = ProcessSample::read();
        if let Some(bytes) = sample.resident_bytes {
            let metric = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?;
            ConstGauge::new(bytes).encode(metric)?;
        }
        if let Some(seconds) = sample.cpu_seconds {
            let metric = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            ConstCounter::new(seconds).encode(metric)?;
        }
        if let Some(fds) = sample.open_fds {
            let metric = encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(fds).encode(metric)?;
        }
        let mut build = encoder.encode_descriptor(
            "crosskey_build_info",
            "Always 1; the version label names the running build",
            None,
            MetricType::Gauge,
        )?;
        let labels = BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        ConstGauge::new(1i64).encode(build.encode_family(&labels)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_vmrss_in_kib() {
        let status = "Name:\tcrosskey\nVmPeak:\t  90000 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";
        assert_eq!(resident_bytes(status), Some(20 * 1024 * 1024));
        assert_eq!(resident_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_time_counts_fields_after_a_command_name_with_spaces() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn this_process_is_readable_on_linux() {
        let sample = ProcessSample::read();
        assert!(sample.resident_bytes.is_some_and(|b| b > 1024 * 1024));
        assert!(sample.cpu_seconds.is_some());
        assert!(sample.open_fds.is_some_and(|n| n >= 3));
    }
}
