//! Latency histograms (microseconds in, milliseconds out) and the generator's own CPU time.

use hdrhistogram::Histogram;

/// Highest latency a histogram holds; a later delivery is clamped to it (and the grace
/// period ends a run long before).
pub const LATENCY_US_MAX: u64 = 120_000_000;
/// Significant digits of the run-wide histogram: 0.1 % resolution.
const RUN_SIGNIFICANT_DIGITS: u8 = 3;
/// Per-second histograms only feed a chart: 1 % resolution, a tenth of the memory.
const SECOND_SIGNIFICANT_DIGITS: u8 = 2;

pub fn run_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, RUN_SIGNIFICANT_DIGITS).expect("valid bounds")
}

pub fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SECOND_SIGNIFICANT_DIGITS).expect("valid bounds")
}

/// Records `latency_us`, clamped into the histogram's range (a same-microsecond
/// delivery is recorded as 1 µs).
pub fn record(histogram: &mut Histogram<u64>, latency_us: u64) {
    histogram.saturating_record(latency_us.clamp(1, LATENCY_US_MAX));
}

/// The latency at `quantile` (0..=1) in milliseconds, 0 when nothing was recorded.
pub fn quantile_ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}

pub fn max_ms(histogram: &Histogram<u64>) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.max() as f64 / 1_000.0
}

pub fn mean_ms(histogram: &Histogram<u64>) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.mean() / 1_000.0
}

/// Linux counts process CPU time in ticks of `USER_HZ`, 100 on every architecture we run
/// on (reading `sysconf` would need `libc`).
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// This process's user + system CPU time so far, from `/proc/self/stat`; `None` off Linux.
pub fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_proc_stat_cpu_s(&stat)
}

/// Fields 14 (utime) and 15 (stime) of `/proc/<pid>/stat`, counted after the command
/// name, which is in parentheses and may itself hold spaces and parentheses.
fn parse_proc_stat_cpu_s(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // The first field after the name is field 3 (state), so field 14 is the 12th.
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let user_ticks: u64 = fields.next()?.parse().ok()?;
    let system_ticks: u64 = fields.next()?.parse().ok()?;
    Some((user_ticks + system_ticks) as f64 / CLOCK_TICKS_PER_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds_within_the_histogram_resolution() {
        let mut histogram = run_histogram();
        for ms in 1..=1_000u64 {
            record(&mut histogram, ms * 1_000);
        }
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-9;
        assert!(
            close(quantile_ms(&histogram, 0.5), 500.0),
            "{}",
            quantile_ms(&histogram, 0.5)
        );
        assert!(close(quantile_ms(&histogram, 0.95), 950.0));
        assert!(close(quantile_ms(&histogram, 0.99), 990.0));
        assert!(close(max_ms(&histogram), 1_000.0));
        assert!(close(mean_ms(&histogram), 500.5));
    }

    #[test]
    fn an_empty_histogram_reports_zeros_not_nan() {
        let histogram = second_histogram();
        assert_eq!(quantile_ms(&histogram, 0.99), 0.0);
        assert_eq!(max_ms(&histogram), 0.0);
        assert_eq!(mean_ms(&histogram), 0.0);
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut histogram = run_histogram();
        record(&mut histogram, 0);
        record(&mut histogram, u64::MAX);
        assert_eq!(histogram.len(), 2);
        assert!(max_ms(&histogram) >= LATENCY_US_MAX as f64 / 1_000.0 * 0.999);
    }

    #[test]
    fn proc_stat_cpu_time_is_read_after_the_command_name() {
        let stat = "4242 (load (x) y) R 1 2 3 4 5 6 7 8 9 10 250 130 0 0 20 0 1 0";
        assert_eq!(parse_proc_stat_cpu_s(stat), Some(3.8));
        assert_eq!(parse_proc_stat_cpu_s("garbage"), None);
        if cfg!(target_os = "linux") {
            assert!(process_cpu_s().is_some());
        }
    }
}
