//! Starting a vCPU in 64-bit long mode: the GDT and identity page tables the hypervisor puts
//! in guest RAM (shared with the SVM backend: `axvcpu_x86::boot`), and the KVM
//! segment and control registers that go with them.

use kvm_bindings::{kvm_segment, kvm_sregs};

pub use axvcpu_x86::boot::{
    long_mode_tables_size, write_long_mode_tables, LongModeBoot, CODE_SELECTOR, DATA_SELECTOR,
};

/// Puts `sregs` in 64-bit long mode with paging through `boot`.
pub fn long_mode_sregs(sregs: &mut kvm_sregs, boot: &LongModeBoot) {
    let code = kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: CODE_SELECTOR,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    let data = kvm_segment {
        selector: DATA_SELECTOR,
        type_: 0x3,
        db: 1,
        l: 0,
        ..code
    };
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.gdt.base = boot.gdt_base;
    sregs.gdt.limit = boot.gdt_limit;
    sregs.cr3 = boot.cr3;
    // PAE, OSFXSR, OSXMMEXCPT.
    sregs.cr4 = (1 << 5) | (1 << 9) | (1 << 10);
    // PE, MP, ET, NE, WP, PG.
    sregs.cr0 = 0x8001_0033;
    // LME, LMA.
    sregs.efer = 0x500;
}
