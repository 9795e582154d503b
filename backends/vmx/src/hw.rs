//! The host CPU's privileged registers and instructions the backend uses: the VMX
//! instructions (`vmxon` .. `invvpid`), MSRs, control registers, descriptor tables,
//! CPUID, the local APIC's fixed IPIs, and handing an acknowledged interrupt to the host's
//! IDT. Writes that can break memory safety are `unsafe fn`s with their contract.

use core::arch::{asm, global_asm};

use axvcpu::HostPhysAddr;

use axvcpu_x86::cpu::wrmsr;
pub use axvcpu_x86::cpu::{cpuid, efer, rdmsr, restore_flags, save_flags_cli};

/// `IA32_FS_BASE`.
pub const MSR_FS_BASE: u32 = 0xc000_0100;
/// `IA32_GS_BASE`.
pub const MSR_GS_BASE: u32 = 0xc000_0101;
/// `IA32_SYSENTER_CS`; `_ESP` and `_EIP` follow.
pub const MSR_SYSENTER_CS: u32 = 0x174;
/// `IA32_FEATURE_CONTROL` bit 0: locked until reset.
pub const FEATURE_CONTROL_LOCK: u64 = 1 << 0;
/// `IA32_FEATURE_CONTROL` bit 2: VMXON allowed outside SMX.
pub const FEATURE_CONTROL_VMXON: u64 = 1 << 2;

/// Writes `IA32_FEATURE_CONTROL` (locks it until reset when `value` has bit 0).
///
/// # Safety
/// The MSR is unlocked (a write to a locked one #GPs) and this CPU has VMX.
pub unsafe fn write_feature_control(value: u64) {
    // SAFETY: the caller guarantees the MSR is writable; it only allows VMXON.
    unsafe { wrmsr(crate::controls::msr::FEATURE_CONTROL, value) }
}

/// Whether CPUID.1:ECX.VMX[bit 5] is set.
pub fn has_vmx() -> bool {
    cpuid(1, 0).2 & (1 << 5) != 0
}

/// `CR0`.
pub fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 at CPL 0 has no side effect.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// `CR3`.
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 at CPL 0 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// `CR4`.
pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 at CPL 0 has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes `CR4`.
///
/// # Safety
/// `value` keeps what the host runs on (PAE, PGE, OSFXSR, ...); clearing VMXE needs VMX
/// off (`vmxoff`), setting it is harmless.
pub unsafe fn write_cr4(value: u64) {
    // SAFETY: the caller guarantees the host keeps running with `value`.
    unsafe { asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// A descriptor-table register as `sgdt`/`sidt` store it.
#[repr(C, packed)]
#[derive(Default)]
struct DescriptorTable {
    limit: u16,
    base: u64,
}

/// The GDT's base address.
pub fn gdt_base() -> u64 {
    let mut t = DescriptorTable::default();
    // SAFETY: `sgdt` stores 10 bytes into `t`, which has them.
    unsafe { asm!("sgdt [{}]", in(reg) &mut t, options(nostack, preserves_flags)) };
    t.base
}

/// The IDT's base address.
pub fn idt_base() -> u64 {
    let mut t = DescriptorTable::default();
    // SAFETY: `sidt` stores 10 bytes into `t`, which has them.
    unsafe { asm!("sidt [{}]", in(reg) &mut t, options(nostack, preserves_flags)) };
    t.base
}

/// The host's segment selectors: `[es, cs, ss, ds, fs, gs, tr]`.
pub fn selectors() -> [u16; 7] {
    let (es, cs, ss, ds, fs, gs, tr): (u16, u16, u16, u16, u16, u16, u16);
    // SAFETY: reading segment registers and TR has no side effect.
    unsafe {
        asm!(
            "mov {0:x}, es", "mov {1:x}, cs", "mov {2:x}, ss", "mov {3:x}, ds",
            "mov {4:x}, fs", "mov {5:x}, gs", "str {6:x}",
            out(reg) es, out(reg) cs, out(reg) ss, out(reg) ds, out(reg) fs, out(reg) gs,
            out(reg) tr, options(nomem, nostack, preserves_flags)
        )
    };
    [es, cs, ss, ds, fs, gs, tr]
}

/// The base address of the 64-bit TSS descriptor `selector` selects in the GDT at
/// `gdt_base` (0 for the null selector).
///
/// # Safety
/// `gdt_base` is the running CPU's GDT and `selector` its task register.
pub unsafe fn tss_base(gdt_base: u64, selector: u16) -> u64 {
    if selector & !7 == 0 {
        return 0;
    }
    let d = (gdt_base + u64::from(selector & !7)) as *const u64;
    // SAFETY: the GDT holds the 16-byte system descriptor TR was loaded from.
    let (lo, hi) = unsafe { (d.read_unaligned(), d.add(1).read_unaligned()) };
    ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | ((hi & 0xffff_ffff) << 32)
}

/// Flags after a VMX instruction: `Ok` (CF = ZF = 0), `Err(true)` VMfailValid (ZF: an error
/// number in the current VMCS), `Err(false)` VMfailInvalid (CF).
fn vm_result(cf: u8, zf: u8) -> Result<(), bool> {
    match (cf, zf) {
        (0, 0) => Ok(()),
        (_, 0) => Err(false),
        _ => Err(true),
    }
}

/// `vmxon`: enters VMX operation with the VMXON region at `region`.
///
/// # Safety
/// CR4.VMXE is set, CR0/CR4 satisfy the fixed bits, `IA32_FEATURE_CONTROL` allows it;
/// `region` is a 4 KiB frame starting with the VMCS revision, which the caller leaves to
/// the CPU until `vmxoff`.
pub unsafe fn vmxon(region: HostPhysAddr) -> Result<(), bool> {
    let pa = region.as_usize() as u64;
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees the preconditions; the operand is a readable u64.
    unsafe {
        asm!("vmxon qword ptr [{}]", "setc {}", "setz {}", in(reg) &pa, out(reg_byte) cf,
            out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// `vmxoff`: leaves VMX operation.
///
/// # Safety
/// VMX is on here and no VMCS of a live vCPU is active on this CPU (clear them first).
pub unsafe fn vmxoff() {
    // SAFETY: the caller guarantees it.
    unsafe { asm!("vmxoff", options(nostack)) };
}

/// `vmclear`: writes the VMCS at `vmcs` back to memory, not current and not launched.
///
/// # Safety
/// VMX is on; `vmcs` is a 4 KiB frame starting with the revision, the caller's.
pub unsafe fn vmclear(vmcs: HostPhysAddr) -> Result<(), bool> {
    let pa = vmcs.as_usize() as u64;
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees the preconditions.
    unsafe {
        asm!("vmclear qword ptr [{}]", "setc {}", "setz {}", in(reg) &pa, out(reg_byte) cf,
            out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// `vmptrld`: makes the VMCS at `vmcs` current.
///
/// # Safety
/// As [`vmclear`]; the VMCS is not active on another CPU.
pub unsafe fn vmptrld(vmcs: HostPhysAddr) -> Result<(), bool> {
    let pa = vmcs.as_usize() as u64;
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees the preconditions.
    unsafe {
        asm!("vmptrld qword ptr [{}]", "setc {}", "setz {}", in(reg) &pa, out(reg_byte) cf,
            out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// `vmptrst`: the current VMCS's address (all ones: none).
///
/// # Safety
/// VMX is on.
pub unsafe fn vmptrst() -> u64 {
    let mut pa = 0u64;
    // SAFETY: VMX is on; the operand is a writable u64.
    unsafe { asm!("vmptrst qword ptr [{}]", in(reg) &mut pa, options(nostack)) };
    pa
}

/// `vmread`: field `field` of the current VMCS (0 after VMfail).
///
/// # Safety
/// VMX is on and a VMCS is current.
#[inline]
#[cfg_attr(test, allow(dead_code))]
pub unsafe fn vmread(field: u32) -> u64 {
    let mut v = 0u64;
    // SAFETY: the caller guarantees VMX is on with a current VMCS.
    unsafe {
        asm!("vmread {}, {}", inout(reg) v, in(reg) u64::from(field), options(nostack, nomem))
    };
    v
}

/// `vmwrite`: sets field `field` of the current VMCS.
///
/// # Safety
/// VMX is on and a VMCS is current; the value keeps the guest from reaching host memory it
/// does not own (EPTP, MSR bitmap, host state: see their writers).
#[inline]
#[cfg_attr(test, allow(dead_code))]
pub unsafe fn vmwrite(field: u32, value: u64) {
    // SAFETY: the caller guarantees it.
    unsafe {
        asm!("vmwrite {}, {}", in(reg) u64::from(field), in(reg) value, options(nostack, nomem))
    };
}

/// `invept` of type `ty` (1 single-context, 2 all-context) for `eptp`.
///
/// # Safety
/// VMX is on and the CPU supports that type.
pub unsafe fn invept(ty: u64, eptp: u64) {
    let desc = [eptp, 0u64];
    // SAFETY: the caller guarantees it; the descriptor is 16 readable bytes.
    unsafe { asm!("invept {}, [{}]", in(reg) ty, in(reg) &desc, options(nostack)) };
}

/// `invvpid` of type `ty` (1 single-context, 2 all-context) for `vpid`.
///
/// # Safety
/// VMX is on and the CPU supports that type.
pub unsafe fn invvpid(ty: u64, vpid: u16) {
    let desc = [u64::from(vpid), 0u64];
    // SAFETY: the caller guarantees it; the descriptor is 16 readable bytes.
    unsafe { asm!("invvpid {}, [{}]", in(reg) ty, in(reg) &desc, options(nostack)) };
}

// 256 stubs of 4 bytes, `int N; ret; int3`, vector N at `axvcpu_vmx_int_stubs + 4 * N`.
global_asm!(
    r#"
    .text
    .balign 16
    .global axvcpu_vmx_int_stubs
axvcpu_vmx_int_stubs:
    .set vector, 0
    .rept 256
    .byte 0xcd, vector
    ret
    int3
    .set vector, vector + 1
    .endr
"#
);

extern "C" {
    fn axvcpu_vmx_int_stubs();
}

/// Hands `vector` to the host's IDT handler as if the interrupt had arrived (`int vector`):
/// the interrupt an exit acknowledged, which the local APIC no longer holds.
///
/// # Safety
/// The host's IDT has a handler for `vector` that returns with `iretq` (and sends EOI for
/// an interrupt from the local APIC).
pub unsafe fn dispatch_interrupt(vector: u8) {
    let stub = axvcpu_vmx_int_stubs as *const () as usize + 4 * usize::from(vector);
    // SAFETY: `stub` is `int vector; ret` in the table above; the handler returns through
    // `iretq` to its `ret`. The call clobbers what the C ABI lets a call clobber, and
    // steps over a red zone where the target has one.
    unsafe { asm!("sub rsp, 128", "call {}", "add rsp, 128", in(reg) stub, clobber_abi("C")) };
}
