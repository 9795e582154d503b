//! Exit statistics of an OS-guest hypervisor: one counter per exit kind, summed by every
//! vCPU's loop, printed as `Kind n, Kind n` in the closing line.

use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

use axvcpu::AxVCpuExitReason;

/// The exit kinds counted, by [`AxVCpuExitReason::name`]; the last counts any other.
pub const KINDS: [&str; 18] = [
    "IoRead",
    "IoWrite",
    "MmioRead",
    "MmioWrite",
    "SysRegRead",
    "SysRegWrite",
    "Hypercall",
    "Halt",
    "CpuUp",
    "CpuDown",
    "SystemDown",
    "SendIPI",
    "RemoteFence",
    "Kicked",
    "ExternalInterrupt",
    "NestedPageFault",
    "Idle",
    "other",
];

/// Exits counted by kind, shared by the vCPUs.
#[derive(Debug)]
pub struct ExitCounts([AtomicU64; KINDS.len()]);

impl Default for ExitCounts {
    fn default() -> Self {
        Self::new()
    }
}

impl ExitCounts {
    /// All zero.
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; KINDS.len()])
    }

    /// Counts `exit`.
    pub fn count(&self, exit: &AxVCpuExitReason) {
        let kind = KINDS
            .iter()
            .position(|k| *k == exit.name())
            .unwrap_or(KINDS.len() - 1);
        if let Some(c) = self.0.get(kind) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `Kind n, Kind n` for the kinds seen.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (k, n) in KINDS.iter().zip(&self.0) {
            let n = n.load(Ordering::Relaxed);
            if n != 0 {
                if !s.is_empty() {
                    s += ",";
                }
                s += &alloc::format!(" {k} {n}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_back_by_kind() {
        let c = ExitCounts::new();
        c.count(&AxVCpuExitReason::Halt);
        c.count(&AxVCpuExitReason::Halt);
        c.count(&AxVCpuExitReason::PreemptionTimer);
        c.count(&AxVCpuExitReason::RemoteFence {
            target_cpu: 1,
            target_cpu_aux: 0,
            send_to_all: false,
        });
        assert_eq!(c.summary(), " Halt 2, RemoteFence 1, other 1");
    }
}
