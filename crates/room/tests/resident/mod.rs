//! Shared by the memory tests, each its own test binary so that the process's peak
//! resident memory is that test's alone.

/// The process's peak resident memory so far (`VmHWM`, Linux), in bytes.
pub fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}
