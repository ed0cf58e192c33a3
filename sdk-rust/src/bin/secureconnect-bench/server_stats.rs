//! The server's CPU time and memory, read from `/proc/PID` (Linux).

use std::{fs, io};

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`): fixed at 100 by the Linux ABI
/// on every architecture this runs on.
const USER_HZ: f64 = 100.0;

/// Reads one process's counters.
#[derive(Debug, Clone, Copy)]
pub struct ServerStats {
    pid: u32,
}

impl ServerStats {
    pub fn new(pid: u32) -> io::Result<Self> {
        let stats = Self { pid };
        stats.cpu_seconds()?;
        Ok(stats)
    }

    /// User plus system CPU seconds the process has used so far (all its threads).
    pub fn cpu_seconds(&self) -> io::Result<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // The command name (field 2) may hold spaces and parentheses: count from the
        // last ')'. After it come field 3 (state) onwards; utime and stime are 14 and 15.
        let after_name = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| io::Error::other("unreadable /proc stat"))?;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |index: usize| -> io::Result<f64> {
            fields
                .get(index)
                .and_then(|field| field.parse::<u64>().ok())
                .map(|ticks| ticks as f64 / USER_HZ)
                .ok_or_else(|| io::Error::other("unreadable /proc stat"))
        };
        Ok(ticks(14 - 3)? + ticks(15 - 3)?)
    }

    /// Resident memory, in bytes.
    pub fn rss_bytes(&self) -> io::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .ok_or_else(|| io::Error::other("no VmRSS in /proc status"))
    }
}
