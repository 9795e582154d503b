//! The controls computed from Bochs's capability values, and from CPUs lacking something.

use super::*;

fn caps_from(table: &[(u32, u64)]) -> VmxCaps {
    VmxCaps::read(|m| {
        table
            .iter()
            .find(|&&(n, _)| n == m)
            .map(|&(_, v)| v)
            .unwrap_or_else(|| panic!("MSR {m:#x} read"))
    })
}

#[test]
fn bochs_controls() {
    let caps = caps_from(&BOCHS_CAPS);
    assert_eq!(caps.revision(), 0x2b);
    // TRUE_* were read: CR3 exiting is not forced.
    assert_eq!(caps.proc as u32, 0x0400_6172);
    let c = Controls::compute(&caps).expect("Bochs has all the backend needs");
    // Default-1 bits 1, 2, 4 plus external-interrupt (0) and NMI (3) exiting and the
    // preemption timer (6).
    assert_eq!(c.pin, 0x5f);
    // Default-1 bits plus HLT, MWAIT, CR8 load/store, I/O, MSR bitmaps, MONITOR, secondary.
    assert_eq!(
        c.proc,
        0x0400_6172 | 0x80 | 0x400 | 0x18_0000 | 0x0100_0000 | 0xb000_0000
    );
    assert_eq!(c.proc & (proc::CR3_LOAD | proc::CR3_STORE), 0);
    // EPT, RDTSCP, VPID, WBINVD, unrestricted guest, INVPCID.
    assert_eq!(c.proc2, 0x10ea);
    assert_eq!(c.exit, 0x0003_6dfb | 0x30_8200);
    assert_eq!(c.entry, 0x11fb | 0x8200);
    assert!(c.ept_accessed_dirty && c.invept_single && c.invvpid_single);
    // NE is kept set; PE the guest may clear freely, PG too, but its changes exit.
    assert_eq!((c.cr0_mask, c.cr0_set), (0x8000_0020 | !0xffff_ffff, 0x20));
    assert_eq!(c.cr4_set, CR4_VMXE);
    assert_eq!(c.cr4_mask & CR4_VMXE, CR4_VMXE);
}

#[test]
fn without_true_controls_forced_cr3_exiting_is_refused() {
    let plain: std::vec::Vec<_> = BOCHS_CAPS
        .iter()
        .map(|&(m, v)| {
            (
                m,
                if m == msr::BASIC {
                    v & !BASIC_TRUE_CTLS
                } else {
                    v
                },
            )
        })
        .collect();
    let caps = caps_from(&plain);
    assert_eq!(caps.proc as u32, 0x0401_e172, "the plain MSR");
    let err = Controls::compute(&caps).expect_err("CR3 exiting forced");
    assert_eq!(
        err.value(),
        Some(u64::from(proc::CR3_LOAD | proc::CR3_STORE))
    );
}

#[test]
fn a_missing_feature_is_named_by_its_bits() {
    let bochs = caps_from(&BOCHS_CAPS);
    let missing = |f: &dyn Fn(&mut VmxCaps)| {
        let mut c = bochs;
        f(&mut c);
        Controls::compute(&c).expect_err("refused").value()
    };
    let ept = u64::from(proc2::EPT);
    assert_eq!(
        missing(&|c: &mut VmxCaps| c.proc2 &= !(ept << 32)),
        Some(ept)
    );
    assert_eq!(
        missing(&|c: &mut VmxCaps| c.ept_vpid &= !ept_cap::PAGE_1G),
        Some(ept_cap::PAGE_1G)
    );
    assert_eq!(
        missing(&|c: &mut VmxCaps| c.pin = 0x16_0000_0016),
        Some(0x9)
    );
    let ack = u64::from(exit_ctl::ACK_INTERRUPT);
    assert_eq!(
        missing(&|c: &mut VmxCaps| c.exit &= !(ack << 32)),
        Some(ack)
    );
    // No secondary controls at all: nothing is read for them.
    let no2 = u64::from(proc::SECONDARY) << 32;
    let plain: std::vec::Vec<_> = BOCHS_CAPS
        .iter()
        .map(|&(m, v)| {
            (
                m,
                if m == msr::TRUE_PROCBASED {
                    v & !no2
                } else {
                    v
                },
            )
        })
        .filter(|&(m, _)| m != msr::PROCBASED2 && m != msr::EPT_VPID_CAP)
        .collect();
    let caps = caps_from(&plain);
    assert_eq!((caps.proc2, caps.ept_vpid), (0, 0));
    assert!(Controls::compute(&caps).is_err());
}

#[test]
fn optional_controls_follow_the_cpu() {
    let mut caps = caps_from(&BOCHS_CAPS);
    caps.proc2 &= !(u64::from(proc2::RDTSCP | proc2::INVPCID) << 32);
    caps.ept_vpid &= !(ept_cap::ACCESSED_DIRTY | ept_cap::INVEPT_SINGLE);
    let c = Controls::compute(&caps).expect("still enough");
    assert_eq!(c.proc2 & (proc2::RDTSCP | proc2::INVPCID), 0);
    assert!(!c.ept_accessed_dirty && !c.invept_single);
    assert!(c.unrestricted_guest);
    // Without unrestricted guest: long-mode guests only, PE and PG kept set.
    caps.proc2 &= !(u64::from(proc2::UNRESTRICTED_GUEST) << 32);
    let c = Controls::compute(&caps).expect("long-mode guests need no unrestricted guest");
    assert!(!c.unrestricted_guest);
    assert_eq!(c.proc2 & proc2::UNRESTRICTED_GUEST, 0);
    assert_eq!(
        (c.cr0_mask & 0x8000_0021, c.cr0_set),
        (0x8000_0021, 0x8000_0021)
    );
}
