//! Boot: the 32-bit entry (PVH from QEMU's `-kernel`, Multiboot2 from GRUB; both enter in
//! 32-bit protected mode with paging off and flat segments, and the entry uses nothing
//! either passes) to long mode, BSS, one stack per CPU, the host IDT (exceptions are fatal,
//! the kick, test and timer vectors send EOI), the second CPU through INIT-SIPI and a real-mode
//! trampoline, the backend chosen from CPUID ([`backend::detect`]), and the hand-over to the
//! shared boot flow of that backend ([`Cpus::start`](axvcpu_testbed::boot::Cpus::start): per-CPU enable, then the suite on
//! CPU 0, the mailbox on CPU 1).

use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu_svm::KICK_VECTOR;
use axvcpu_testbed::boot::fail;
use axvcpu_testbed::TestbedArch;

use crate::arch::X86;
use crate::backend::{self, Backend, Found, Svm, Vmx};
use crate::{hal, multiboot, tss};

// The host IDT sends EOI for one kick vector, whichever backend runs.
const _: () = assert!(axvcpu_svm::KICK_VECTOR == axvcpu_vmx::KICK_VECTOR);

/// The testbed as fatal reports name it: the console and the shutdown do not depend on
/// the backend.
type AnyX86 = X86<Svm>;

/// CPUs the testbed uses (CPU id = local APIC id).
pub const MAX_CPUS: usize = 2;
const STACK_SIZE: usize = 256 * 1024;
/// A vector the self-tests send to this CPU; its handler only sends EOI, like the kick's.
pub const TEST_VECTOR: u8 = 0xf3;
/// Where the AP trampoline is copied (SIPI vector 0x08).
const TRAMPOLINE: usize = 0x8000;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; MAX_CPUS]);

#[unsafe(link_section = ".bss.stack")]
#[unsafe(no_mangle)]
static mut TESTBED_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_CPUS]);

core::arch::global_asm!(
    r#"
    // Multiboot2 (GRUB, Bochs): magic, i386, length, checksum, the end tag. The ELF's
    // entry is the entry, its load segments are loaded. Not Multiboot1: QEMU's -kernel
    // refuses an x86-64 ELF with a Multiboot1 header, and ignores this one (PVH instead).
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xe85250d6
    .long 0
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header))
    .word 0
    .word 0
    .long 8
mb2_header_end:

    .section .note.pvh, "a"
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    // Multiboot2: eax the magic, ebx the boot information (PVH: ebx its start info, eax
    // undefined). Kept in ebp and ebx for `testbed_rust_start`.
    movl %eax, %ebp
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    // PAE; OSFXSR, so the backends' FXSAVE of a guest's state includes its XMM registers.
    orl $0x220, %eax
    movl %eax, %cr4
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    // CR0: PG, WP, NE (VMXON refuses a CR0 without it), PE.
    movl %cr0, %eax
    orl $0x80010021, %eax
    movl %eax, %cr0
    lgdt testbed_gdt_ptr
    ljmp $0x08, $bsp_entry64

    .code16
    .global testbed_ap_trampoline
testbed_ap_trampoline:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (ap_gdt_ptr - testbed_ap_trampoline)
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    // PAE; OSFXSR, so the backends' FXSAVE of a guest's state includes its XMM registers.
    orl $0x220, %eax
    movl %eax, %cr4
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl $0x80010021, %eax
    movl %eax, %cr0
    ljmpl $0x08, $ap_entry64
    .balign 8
ap_gdt_ptr:
    .word {gdt_limit}
    .long testbed_gdt
    .global testbed_ap_trampoline_end
testbed_ap_trampoline_end:

    .code64
bsp_entry64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $__bss_start, %rdi
    movq $__bss_end, %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    movl $1, %esi
    movl %ebp, %edx
    movl %ebx, %ecx
    jmp 2f

ap_entry64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    xorl %esi, %esi
    xorl %edx, %edx
    xorl %ecx, %ecx
2:
    movq $0xfee00020, %rax
    movl (%rax), %edi
    shrl $24, %edi
    cmpl ${max_cpus}, %edi
    jae 3f
    movq $TESTBED_STACKS, %rsp
    movq %rdi, %rax
    incq %rax
    shlq ${stack_shift}, %rax
    addq %rax, %rsp
    call testbed_rust_start
3:
    hlt
    jmp 3b

    // Host interrupt stubs, 16 bytes apart: push the vector, go to the common handler.
    .balign 16
    .global testbed_isr_stubs
testbed_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    pushq $vec
    jmp testbed_isr_common
    .set vec, vec + 1
    .endr

testbed_isr_common:
    cmpq ${kick}, (%rsp)
    je 4f
    cmpq ${test_vector}, (%rsp)
    je 4f
    cmpq ${timer_vector}, (%rsp)
    je 4f
    cmpq $0xff, (%rsp)
    je 5f
    movq (%rsp), %rdi
    leaq 8(%rsp), %rsi
    andq $-16, %rsp
    call testbed_host_fault
4:
    pushq %rax
    movq $0xfee000b0, %rax
    movl $0, (%rax)
    popq %rax
5:
    addq $8, %rsp
    iretq

    .section .data.boot, "aw"
    // Null, 64-bit code 0x08, data 0x10, then each CPU's TSS descriptor (tss.rs).
    .balign 8
    .global testbed_gdt
testbed_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .fill {gdt_slots} - 3, 8, 0
testbed_gdt_ptr:
    .word {gdt_limit}
    .quad testbed_gdt

    .balign 4096
boot_pml4:
    .quad boot_pdpt + 3
    .fill 511, 8, 0
boot_pdpt:
    .quad boot_pd + 3
    .quad boot_pd + 0x1003
    .quad boot_pd + 0x2003
    .quad boot_pd + 0x3003
    .fill 508, 8, 0
boot_pd:
    .set pde, 0
    .rept 2048
    .quad (pde << 21) | 0x83
    .set pde, pde + 1
    .endr
    .text
"#,
    max_cpus = const MAX_CPUS,
    stack_shift = const STACK_SIZE.trailing_zeros(),
    kick = const KICK_VECTOR,
    test_vector = const TEST_VECTOR,
    timer_vector = const hal::TIMER_VECTOR,
    gdt_slots = const tss::GDT_SLOTS,
    gdt_limit = const tss::GDT_SLOTS * 8 - 1,
    options(att_syntax)
);

/// One IDT entry (64-bit interrupt gate).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate([u64; 2]);

#[repr(C, align(4096))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate([0; 2]); 256]);

fn init_idt() {
    extern "C" {
        static testbed_isr_stubs: u8;
    }
    let base = core::ptr::addr_of!(testbed_isr_stubs) as u64;
    for v in 0..256u64 {
        let h = base + v * 16;
        let low = (h & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((h >> 16) & 0xffff) << 48;
        let high = h >> 32;
        // SAFETY: boot CPU only, before any other CPU loads the IDT.
        unsafe { (*core::ptr::addr_of_mut!(IDT)).0[v as usize] = Gate([low, high]) };
    }
}

fn load_idt() {
    #[repr(C, packed)]
    struct Ptr {
        limit: u16,
        base: u64,
    }
    let ptr = Ptr {
        limit: (256 * 16 - 1) as u16,
        base: core::ptr::addr_of!(IDT) as u64,
    };
    // SAFETY: the IDT is static, filled by `init_idt` before any CPU loads it.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack)) };
}

/// The boot CPU's one-time setup, before the other CPU starts: legacy PIC masked, TSC
/// calibrated, host IDT filled and loaded, local APIC enabled.
pub fn boot_init() {
    hal::mask_pic();
    hal::calibrate_tsc();
    init_idt();
    load_idt();
    hal::enable_local_apic();
}

/// Starts CPU `apic_id`: copies the trampoline below 1 MiB, then INIT and SIPI (twice,
/// 200 ms apart, while the CPU has not come up).
pub fn start_cpu(apic_id: usize) -> bool {
    let code = axvcpu_testbed::guest_code!(testbed_ap_trampoline, testbed_ap_trampoline_end);
    // SAFETY: 0x8000 is free low RAM (the firmware is done with it), identity-mapped.
    unsafe {
        core::ptr::copy_nonoverlapping(code.as_ptr(), TRAMPOLINE as *mut u8, code.len());
    }
    let id = apic_id as u32;
    hal::apic_icr(id, 0x4500);
    hal::delay_ms(10);
    for _ in 0..2 {
        hal::apic_icr(id, 0x4600 | (TRAMPOLINE >> 12) as u32);
        let t0 = hal::now_ns();
        while hal::now_ns() - t0 < 200_000_000 {
            if AP_ENTERED.load(Ordering::Acquire) {
                return true;
            }
            core::hint::spin_loop();
        }
    }
    false
}

/// The second CPU reached Rust.
static AP_ENTERED: AtomicBool = AtomicBool::new(false);

/// On the boot CPU with VMX: rewrites the guest programs' hypercalls to `vmcall` and says
/// what the VMX capability MSRs offer.
fn announce_vmx(boot: bool) {
    if boot {
        let n = backend::patch_hypercalls();
        axvcpu_testbed::say::<AnyX86>(format_args!(
            "{}: Intel VMX: {}; {n} hypercall sites of the guest programs now `vmcall`",
            AnyX86::NAME,
            backend::vmx_caps()
        ));
    }
}

#[unsafe(no_mangle)]
extern "C" fn testbed_rust_start(cpu: usize, boot: usize, magic: u32, info: u32) -> ! {
    tss::load(cpu);
    let found = if boot != 0 {
        hal::init_uart();
        if magic == multiboot::MAGIC {
            load_modules(info as usize);
        }
        backend::detect()
    } else {
        AP_ENTERED.store(true, Ordering::Release);
        // The boot CPU filled the IDT before it started this CPU.
        load_idt();
        hal::enable_local_apic();
        backend::found()
    };
    match found {
        #[cfg(feature = "linux")]
        Found::Svm => Svm::cpus().start_with(cpu, boot != 0, crate::linux::main::<Svm>),
        #[cfg(not(feature = "linux"))]
        Found::Svm => Svm::cpus().start(cpu, boot != 0),
        #[cfg(feature = "linux")]
        Found::Vmx => {
            announce_vmx(boot != 0);
            Vmx::cpus().start_with(cpu, boot != 0, crate::linux::main::<Vmx>)
        }
        #[cfg(not(feature = "linux"))]
        Found::Vmx => {
            announce_vmx(boot != 0);
            Vmx::cpus().start(cpu, boot != 0)
        }
        Found::Nothing => no_backend("neither AMD SVM nor Intel VMX in CPUID", boot != 0),
    }
}

/// A Multiboot2 boot (GRUB): the modules it loaded go to the addresses their command
/// lines name ([`multiboot`]), before the frame allocator takes the memory GRUB loaded them
/// into; with the `linux` feature, exactly the files the Linux host reads must be there. A
/// refusal is a `FATAL` line and the end of the run.
fn load_modules(info: usize) {
    // SAFETY: GRUB's boot information, identity-mapped; its first word is its length.
    let len = unsafe { (info as *const u32).read_unaligned() } as usize;
    // SAFETY: as above, `len` bytes (`plan` checks the tags stay inside).
    let bytes = unsafe { core::slice::from_raw_parts(info as *const u8, len.max(8)) };
    let planned = multiboot::plan(bytes, info, hal::RAM_END);
    #[cfg(feature = "linux")]
    let planned = planned.and_then(|mods| linux_modules(&mods).map(|()| mods));
    match planned {
        Ok(mods) => {
            for m in mods.iter() {
                axvcpu_testbed::say::<AnyX86>(format_args!(
                    "{}: GRUB module {}: {} KiB from {:#x} to {:#x} ({} KiB with its zeros)",
                    AnyX86::NAME,
                    m.name,
                    m.len.div_ceil(1024),
                    m.start,
                    m.dest,
                    m.size.div_ceil(1024)
                ));
            }
            // SAFETY: `plan` checked every place lies in RAM above the hypervisor's memory,
            // clear of the other modules' and the boot information, and ordered the copies.
            unsafe { multiboot::copy(&mods) }
        }
        Err(e) => fail::<AnyX86>(format_args!("multiboot: {e}")),
    }
}

/// The Linux host's files: the parameter block, the kernel's segments and the initrd
/// where QEMU's loader devices would put them (`linux::loader`), the sizes as the block
/// says.
#[cfg(feature = "linux")]
fn linux_modules<'a>(mods: &multiboot::Modules<'a>) -> Result<(), multiboot::Error<'a>> {
    use crate::linux::loader::{Params, INITRD_GPA, PARAMS, RAM_HPA};
    mods.only(&["params", "kernel", "initrd"])?;
    let block = mods.expect("params", PARAMS, None)?;
    // SAFETY: where GRUB loaded the block, identity-mapped RAM.
    let bytes = unsafe { core::slice::from_raw_parts(block.start as *const u8, block.len) };
    let p = Params::parse(bytes).map_err(|why| multiboot::Error::Wrong(*block, why))?;
    mods.expect("kernel", RAM_HPA + p.load, Some(p.image_size))?;
    if p.initrd_size != 0 {
        mods.expect("initrd", RAM_HPA + INITRD_GPA, Some(p.initrd_size))?;
    } else if let Some(m) = mods.get("initrd") {
        return Err(multiboot::Error::Wrong(
            *m,
            "the parameter block says no initrd",
        ));
    }
    Ok(())
}

/// Without a backend: the boot CPU still does the machine's part of the boot (PIC, TSC,
/// IDT, local APIC, CPU 1 through INIT-SIPI: what every backend's run needs, so it is
/// known to work here), reports every scenario `N/A` with `why` and ends the machine with
/// the failure status: honestly not a pass. The other CPU parks.
fn no_backend(why: &'static str, boot: bool) -> ! {
    if !boot {
        loop {
            // SAFETY: parks this CPU with interrupts off.
            unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
        }
    }
    let say = |line: core::fmt::Arguments| axvcpu_testbed::say::<AnyX86>(line);
    boot_init();
    say(format_args!(
        "{}: boot CPU {}, TSC {} ticks per ms; CPU 1 {}",
        AnyX86::NAME,
        hal::cpu_id(),
        hal::tsc_per_ms(),
        if start_cpu(1) {
            "started"
        } else {
            "did not start"
        }
    ));
    say(format_args!("{}: {why}", AnyX86::NAME));
    let mut summary = axvcpu_conformance::Summary::default();
    let mut w = hal::CONSOLE.writer();
    for s in axvcpu_conformance::Scenario::ALL {
        summary.record(&mut w, s, &axvcpu_conformance::Outcome::NotApplicable(why));
    }
    drop(w);
    say(format_args!("{summary}"));
    AnyX86::shutdown(false)
}

#[unsafe(no_mangle)]
extern "C" fn testbed_host_fault(vector: u64, frame: *const u64) -> ! {
    // SAFETY: the interrupt frame the CPU pushed: five words at least.
    let words = unsafe { core::slice::from_raw_parts(frame, 5) };
    let cr2: u64;
    // SAFETY: reads CR2.
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
    fail::<AnyX86>(format_args!(
        "host exception {vector} on CPU {}: frame {:#x} {:#x} {:#x} {:#x} cr2 {cr2:#x}",
        hal::cpu_id(),
        words[0],
        words[1],
        words[2],
        words[3]
    ))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail::<AnyX86>(format_args!("panic on CPU {}: {info}", hal::cpu_id()))
}
