//! The world switch: `vmsave` the host's hidden state, `vmload` the guest's, load the
//! guest's general-purpose registers, `vmrun`, and the way back. `rax` and `rsp` live in
//! the VMCB; the other fourteen travel through [`Gprs`].

use core::arch::global_asm;

use axvcpu::HostPhysAddr;

use crate::regs::Gprs;

global_asm!(
    r#"
    .text
    .global axvcpu_svm_vmrun
    // rdi = &mut Gprs, rsi = VMCB physical address, rdx = host state area physical address.
    // Entered with GIF = 0; returns after #VMEXIT with GIF = 0.
axvcpu_svm_vmrun:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi
    push rsi
    push rdx
    mov rax, rdx
    vmsave rax
    mov rax, rsi
    vmload rax
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
    vmrun rax
    // #VMEXIT: rax (the VMCB address) and rsp are the host's again, the rest the guest's.
    push rdi
    mov rdi, [rsp + 24]
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
    pop rcx
    mov [rdi + 56], rcx
    vmsave rax
    pop rax
    vmload rax
    add rsp, 16
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
    fn axvcpu_svm_vmrun(gprs: *mut Gprs, vmcb: u64, host_area: u64);
}

/// Runs the guest of the VMCB at `vmcb` until the next #VMEXIT: `vmsave`s the host's
/// hidden state to `host_area`, `vmload`s the guest's, loads `gprs`, `vmrun`s; after the
/// exit, stores the guest's GPRs into `gprs`, `vmsave`s the guest, `vmload`s the host.
///
/// # Safety
/// SVM is enabled on this CPU with a host save area; `vmcb` is a VMCB filled for a guest
/// (its permission maps and nested page table as [`Vmcb::init_control`] requires them);
/// `host_area` is a 4 KiB frame of the caller's. GIF is clear (`clgi`): it stays clear
/// after the exit.
///
/// [`Vmcb::init_control`]: crate::vmcb::Vmcb::init_control
#[inline]
pub unsafe fn vmrun(gprs: &mut Gprs, vmcb: HostPhysAddr, host_area: HostPhysAddr) {
    // SAFETY: the caller guarantees the VMCB, host area and SVM state; the assembly saves
    // and restores every callee-saved register and returns on the host's stack.
    unsafe { axvcpu_svm_vmrun(gprs, vmcb.as_usize() as u64, host_area.as_usize() as u64) }
}
