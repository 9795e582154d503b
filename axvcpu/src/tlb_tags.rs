//! The TLB tags backends hand out — VMIDs (AArch64, RISC-V), ASIDs (AMD SVM), VPIDs (Intel
//! VMX) — and a limit on how many, so a test can make VMs share them.
//!
//! Every bare-metal backend flushes its tag's cached translations when a vCPU is bound to a
//! CPU, so two VMs sharing a tag never see each other's memory. The hardware's tag space is
//! usually far larger than a test's VM count, so that promise would go untested;
//! [`limit_tlb_tags`] shrinks the space every backend uses to `n` tags (the
//! `two-vms` conformance scenario runs with 2). Each backend says how it maps its VMs or
//! vCPUs onto the tags: AArch64 and RISC-V take `vm_id % limit` (so VMs whose ids differ by
//! one never share, which both architectures require of VMs running at the same time); SVM
//! and VMX give each new vCPU the next tag round-robin.

use core::sync::atomic::{AtomicUsize, Ordering};

static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Makes backends hand out at most `n` tags (at least 1) to the vCPUs created from now on.
/// A testing aid: a hypervisor has no reason to call it, as fewer tags only cost flushes.
pub fn limit_tlb_tags(n: usize) {
    LIMIT.store(n.max(1), Ordering::Relaxed);
}

/// How many tags backends may hand out (`usize::MAX` unless [`limit_tlb_tags`] said less):
/// a backend uses the smaller of this and its hardware's count.
pub fn tlb_tag_limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_at_least_one_tag() {
        assert_eq!(tlb_tag_limit(), usize::MAX);
        limit_tlb_tags(0);
        assert_eq!(tlb_tag_limit(), 1);
        limit_tlb_tags(2);
        assert_eq!(tlb_tag_limit(), 2);
        limit_tlb_tags(usize::MAX);
    }
}
