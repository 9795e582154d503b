//! One 64-bit task-state segment per CPU, its descriptor in the boot GDT, loaded into TR.
//!
//! The testbed never changes privilege level and uses no interrupt stack table, so the
//! TSS stays zero and has no I/O bitmap. It exists because VMX needs it: a VM exit loads the
//! host's TR from the VMCS, whose host-state checks refuse selector 0 (VM-instruction error
//! 8, "invalid host TR selector"). SVM does not look at TR.

use crate::boot::MAX_CPUS;

/// The 64-bit TSS (104 bytes).
#[repr(C, packed(4))]
struct Tss {
    _reserved0: u32,
    _rsp: [u64; 3],
    _reserved1: u64,
    _ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    /// Offset of the I/O bitmap: the TSS limit and past it, so there is none.
    iomap_base: u16,
}

const TSS_SIZE: usize = core::mem::size_of::<Tss>();
const _: () = assert!(TSS_SIZE == 104);

#[repr(C, align(16))]
struct Tsses([Tss; MAX_CPUS]);

static mut TSS: Tsses = Tsses(
    [const {
        Tss {
            _reserved0: 0,
            _rsp: [0; 3],
            _reserved1: 0,
            _ist: [0; 7],
            _reserved2: 0,
            _reserved3: 0,
            iomap_base: TSS_SIZE as u16,
        }
    }; MAX_CPUS],
);

/// GDT index of CPU `cpu`'s TSS descriptor (16 bytes: two slots), after the null, code and
/// data descriptors of the boot GDT.
pub const fn tss_slot(cpu: usize) -> usize {
    3 + 2 * cpu
}

/// Slots of the boot GDT: null, code, data, then one TSS descriptor per CPU.
pub const GDT_SLOTS: usize = tss_slot(MAX_CPUS);

/// The 16-byte descriptor of an available 64-bit TSS (type 9, present) at `base`.
pub const fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (TSS_SIZE - 1) as u64;
    let low = (limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | 0x89 << 40
        | (limit >> 16 & 0xf) << 48
        | (base >> 24 & 0xff) << 56;
    [low, base >> 32]
}

/// Writes CPU `cpu`'s TSS descriptor into the boot GDT and loads TR with it. Each CPU
/// once, on itself (`ltr` marks its descriptor busy).
pub fn load(cpu: usize) {
    extern "C" {
        static mut testbed_gdt: [u64; GDT_SLOTS];
    }
    if cpu >= MAX_CPUS {
        return;
    }
    // SAFETY: only `cpu` touches its TSS, and only here.
    let base = unsafe { core::ptr::addr_of!(TSS.0[cpu]) } as u64;
    let slot = tss_slot(cpu);
    let [low, high] = tss_descriptor(base);
    // SAFETY: the boot GDT has `GDT_SLOTS` slots (its limit covers them); these two are
    // this CPU's alone and not yet loaded into any TR.
    unsafe {
        let gdt = core::ptr::addr_of_mut!(testbed_gdt).cast::<u64>();
        gdt.add(slot).write_volatile(low);
        gdt.add(slot + 1).write_volatile(high);
    }
    let selector = (slot * 8) as u16;
    // SAFETY: the selector names the available 64-bit TSS descriptor just written.
    unsafe { core::arch::asm!("ltr {0:x}", in(reg) selector, options(nostack)) };
}
