//! Memory and CPU of a process, from `/proc` (Linux).

use std::sync::OnceLock;

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`, ...); `None` for this process.
pub fn status_kb(pid: Option<u32>, key: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak resident set size (`VmHWM`) in MB.
pub fn peak_rss_mb(pid: Option<u32>) -> f64 {
    status_kb(pid, "VmHWM").map_or(f64::NAN, kb_to_mb)
}

/// Current resident set size (`VmRSS`) in MB.
pub fn rss_mb(pid: Option<u32>) -> f64 {
    status_kb(pid, "VmRSS").map_or(f64::NAN, kb_to_mb)
}

fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// User plus system CPU time of this process (all threads), in seconds.
pub fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / clk_tck()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when unknown).
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory_and_cpu() {
        // Read the current size first: the peak is monotonic, so read after it, it can only be as large or larger
        // (other test threads may allocate in between).
        let now = rss_mb(None);
        let peak = peak_rss_mb(None);
        assert!(
            peak > 0.0 && now > 0.0 && peak >= now,
            "peak {peak} now {now}"
        );
        assert!(cpu_secs(None) >= 0.0);
    }
}
