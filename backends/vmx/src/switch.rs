//! The world switch: load the guest's general-purpose registers, `vmlaunch` or `vmresume`,
//! and at the VM exit (the host `rip` of the VMCS) store them and return; and the host
//! state the VMCS loads at every exit, read from the running CPU.

use core::arch::global_asm;

use axvcpu::{VCpuError, VCpuResult};

use crate::hw;
use crate::regs::Gprs;
use crate::vmcs::{host, Vmcs};

global_asm!(
    r#"
    .text
    .global axvcpu_vmx_enter
    .global axvcpu_vmx_exit
    // rdi = &mut Gprs, esi = launched (0: vmlaunch, else vmresume).
    // Returns eax = 0 after a VM exit, 1 for VMfailInvalid, 2 for VMfailValid.
axvcpu_vmx_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi
    // The exit comes back with this rsp (the Gprs pointer on top).
    mov rax, 0x6c14
    vmwrite rax, rsp
    cmp esi, 0
    mov rax, [rdi]
    mov rcx, [rdi + 8]
    mov rdx, [rdi + 16]
    mov rbx, [rdi + 24]
    mov rbp, [rdi + 40]
    mov rsi, [rdi + 48]
    mov r8, [rdi + 64]
    mov r9, [rdi + 72]
    mov r10, [rdi + 80]
    mov r11, [rdi + 88]
    mov r12, [rdi + 96]
    mov r13, [rdi + 104]
    mov r14, [rdi + 112]
    mov r15, [rdi + 120]
    mov rdi, [rdi + 56]
    jne 2f
    vmlaunch
    jmp 3f
2:
    vmresume
3:
    // VMfail: CF (invalid) or ZF (valid, error number in the VMCS).
    mov eax, 1
    mov ecx, 2
    cmovz eax, ecx
    add rsp, 8
    jmp 4f
axvcpu_vmx_exit:
    // VM exit: rsp as written above, every GPR the guest's.
    xchg rdi, [rsp]
    mov [rdi], rax
    mov [rdi + 8], rcx
    mov [rdi + 16], rdx
    mov [rdi + 24], rbx
    mov [rdi + 40], rbp
    mov [rdi + 48], rsi
    mov [rdi + 64], r8
    mov [rdi + 72], r9
    mov [rdi + 80], r10
    mov [rdi + 88], r11
    mov [rdi + 96], r12
    mov [rdi + 104], r13
    mov [rdi + 112], r14
    mov [rdi + 120], r15
    pop rax
    mov [rdi + 56], rax
    xor eax, eax
4:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
);

extern "C" {
    fn axvcpu_vmx_enter(gprs: *mut Gprs, launched: u32) -> u32;
    fn axvcpu_vmx_exit();
}

/// How an entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The guest ran and exited.
    Exited,
    /// VMfailInvalid: no current VMCS.
    FailInvalid,
    /// VMfailValid: the VM-instruction error field says why.
    FailValid,
}

/// Runs the guest of the current VMCS until its next exit: loads `gprs` (all but `rsp`,
/// which the VMCS holds), `vmlaunch` (not `launched`) or `vmresume`; after the exit stores
/// the guest's GPRs into `gprs`.
///
/// # Safety
/// VMX is on; the current VMCS is filled for a guest (controls, guest state, the host
/// state of this CPU with [`write_host_state`]'s `rip`), its EPT and MSR bitmap as
/// `Vmcs::init_control` requires; host interrupts are disabled.
#[inline]
pub unsafe fn enter(gprs: &mut Gprs, launched: bool) -> Entry {
    // SAFETY: the caller guarantees the VMCS and VMX state; the assembly saves and
    // restores every callee-saved register and returns on the host's stack.
    match unsafe { axvcpu_vmx_enter(gprs, u32::from(launched)) } {
        0 => Entry::Exited,
        1 => Entry::FailInvalid,
        _ => Entry::FailValid,
    }
}

/// Writes the host state of the running CPU into the current VMCS: control registers,
/// selectors, FS/GS/TR/GDTR/IDTR bases, `SYSENTER_*`, `EFER`, and the exit's `rip` (the
/// world switch writes `rsp` at each entry). The exit loads GDTR/IDTR limits of 0xffff and
/// a TR limit of 0x67, which the host does not rely on.
///
/// A host without a task register is refused here: the VM-entry checks refuse host TR
/// selector 0 (VM-instruction error 8), so every entry would fail.
///
/// # Safety
/// VMX is on and `vmcs` is current on this CPU (the state is this CPU's: write it again
/// after moving the VMCS to another CPU).
pub unsafe fn write_host_state(vmcs: Vmcs) -> VCpuResult {
    let sel = hw::selectors();
    if sel[6] & !7 == 0 {
        return Err(VCpuError::bad_state(
            "the host CPU has no task register (TR is 0): VMX needs a 64-bit TSS loaded",
        ));
    }
    let w = |f, v| vmcs.write(f, v);
    w(host::CR0, hw::cr0());
    w(host::CR3, hw::cr3());
    w(host::CR4, hw::cr4());
    let fields = [
        host::ES_SELECTOR,
        host::CS_SELECTOR,
        host::SS_SELECTOR,
        host::DS_SELECTOR,
        host::FS_SELECTOR,
        host::GS_SELECTOR,
        host::TR_SELECTOR,
    ];
    for (f, s) in fields.into_iter().zip(sel) {
        // The host-state checks want RPL = TI = 0.
        w(f, u64::from(s & !7));
    }
    let gdt = hw::gdt_base();
    w(host::GDTR_BASE, gdt);
    w(host::IDTR_BASE, hw::idt_base());
    // SAFETY: the running CPU's GDT and task register.
    w(host::TR_BASE, unsafe { hw::tss_base(gdt, sel[6]) });
    // SAFETY: these MSRs exist on every x86-64 CPU with VMX.
    unsafe {
        w(host::FS_BASE, hw::rdmsr(hw::MSR_FS_BASE));
        w(host::GS_BASE, hw::rdmsr(hw::MSR_GS_BASE));
        w(host::SYSENTER_CS, hw::rdmsr(hw::MSR_SYSENTER_CS));
        w(host::SYSENTER_ESP, hw::rdmsr(hw::MSR_SYSENTER_CS + 1));
        w(host::SYSENTER_EIP, hw::rdmsr(hw::MSR_SYSENTER_CS + 2));
    }
    w(host::EFER, hw::efer());
    w(host::RIP, axvcpu_vmx_exit as *const () as usize as u64);
    Ok(())
}
