//! What this container may use, from its cgroup: CPUs (the quota) and
//! memory (the limit).
//!
//! `available_parallelism` reports the node's CPUs on many container
//! runtimes; the quota (Kubernetes' CPU limit) is what the pod really gets,
//! and sizing the pools past it only adds contention. The memory limit is
//! what the kernel OOM-kills the pod at, so the bytes requests may hold are
//! budgeted from it.

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

/// The memory limit of this process's cgroup in bytes, if it has one:
/// cgroup v2's `memory.max` or v1's `memory.limit_in_bytes`, found through
/// `/proc/self/cgroup`.
pub fn memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    memory_limit_from(&own, |path| std::fs::read_to_string(path).ok())
}

/// [`memory_limit`] over `/proc/self/cgroup`'s text and a file reader.
fn memory_limit_from(own: &str, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    for line in own.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        let candidates = if id == "0" && controllers.is_empty() {
            // v2: the process's own cgroup, or the namespace's root, which is
            // what a container sees at /sys/fs/cgroup.
            [format!("/sys/fs/cgroup{path}/memory.max"), "/sys/fs/cgroup/memory.max".to_owned()]
        } else if controllers.split(',').any(|c| c == "memory") {
            [
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"),
                "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_owned(),
            ]
        } else {
            continue;
        };
        for candidate in &candidates {
            if let Some(text) = read(candidate) {
                // "max" (v2) or a huge page-rounded number (v1): no limit.
                return text.trim().parse::<u64>().ok().filter(|&bytes| bytes < 1 << 62);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_of_both_cgroup_versions() {
        let files = |entries: &'static [(&'static str, &'static str)]| {
            move |path: &str| entries.iter().find(|(p, _)| *p == path).map(|(_, v)| v.to_string())
        };
        let v2 = "0::/kubepods/pod1/ctr\n";
        assert_eq!(
            memory_limit_from(
                v2,
                files(&[("/sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "134217728\n")])
            ),
            Some(134_217_728)
        );
        assert_eq!(
            memory_limit_from("0::/\n", files(&[("/sys/fs/cgroup/memory.max", "67108864")])),
            Some(67_108_864)
        );
        assert_eq!(memory_limit_from(v2, files(&[("/sys/fs/cgroup/memory.max", "max")])), None);
        let v1 = "12:cpu,cpuacct:/x\n4:memory:/docker/abc\n";
        assert_eq!(
            memory_limit_from(
                v1,
                files(&[("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "268435456")])
            ),
            Some(268_435_456)
        );
        assert_eq!(
            memory_limit_from(
                v1,
                files(&[("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712")])
            ),
            None
        );
        assert_eq!(memory_limit_from(v1, files(&[])), None);
    }

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
