//! How many CPUs this container may use, from its cgroup's CPU quota.
//!
//! `available_parallelism` reports the node's CPUs on many container
//! runtimes; the quota (Kubernetes' CPU limit) is what the pod really gets,
//! and sizing the pools past it only adds contention.

use std::num::NonZeroUsize;

/// CPUs the process may use: the cgroup quota rounded up, at most the CPUs
/// it can run on, at least 1.
pub fn available_cpus() -> NonZeroUsize {
    let cpus = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    let quota = std::fs::read_to_string("/sys/fs/cgroup/cpu.max")
        .ok()
        .and_then(|s| parse_cpu_max(&s))
        .or_else(|| {
            let quota = std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").ok()?;
            let period = std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_period_us").ok()?;
            quota_cpus(quota.trim().parse().ok()?, period.trim().parse().ok()?)
        });
    quota.map_or(cpus, |q| q.min(cpus))
}

/// `cpu.max` of cgroup v2: `"<quota> <period>"` or `"max <period>"`.
fn parse_cpu_max(s: &str) -> Option<NonZeroUsize> {
    let mut fields = s.split_whitespace();
    let quota = fields.next()?.parse::<i64>().ok()?;
    let period = fields.next()?.parse::<i64>().ok()?;
    quota_cpus(quota, period)
}

fn quota_cpus(quota: i64, period: i64) -> Option<NonZeroUsize> {
    if quota <= 0 || period <= 0 {
        return None;
    }
    NonZeroUsize::new((quota as u64).div_ceil(period as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_rounds_up() {
        let n = |s| parse_cpu_max(s).map(NonZeroUsize::get);
        assert_eq!(n("max 100000"), None);
        assert_eq!(n("200000 100000"), Some(2));
        assert_eq!(n("50000 100000"), Some(1));
        assert_eq!(n("150000 100000"), Some(2));
        assert_eq!(quota_cpus(-1, 100_000), None);
    }
}
