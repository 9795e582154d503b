//! The testbed's own checks of the backend (SVM or VMX), beyond the conformance contract.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu::{
    AccessWidth, AxArchVCpu, AxVCpu, AxVCpuExitReason, GuestPhysAddr, VCpuError, VCpuHandle,
    VCpuResult, VCpuState,
};
use axvcpu_conformance::alloc_fail::FailingHal;
use axvcpu_conformance::contract::{HC_DONE, HC_REPORT, IO_IN_RAX_BEFORE};
use axvcpu_conformance::{Join, TestVm};
use axvcpu_npt::{MapFlags, NestedPageTable};
use axvcpu_testbed::selftest::{
    self, alloc_fail_with_memory, note_vcpu_set_up, AllocFailMemory, Check, SelfTest,
    AF_BIG_FRAMES, AF_BIG_GPA, AF_FAR_GPA,
};
use axvcpu_testbed::vm::TestbedVm;
use axvcpu_testbed::TestbedArch;
use axvcpu_x86::boot::LongModeBoot;

use crate::arch::{Hal, VCpu, X86};
use crate::backend::{Backend, Boot, Setup};
use crate::boot::TEST_VECTOR;
use crate::guests::{selftest_code, SelfTest as Guest, MMIO_BASE, RAM_BASE, RAM_SIZE, STACK_SIZE};
use crate::hal;

type Vm<B> = TestbedVm<X86<B>>;

fn vm<B: Backend>(code: &[u8]) -> Result<Vm<B>, String> {
    Vm::new(code, X86::<B>::first_pass()).map_err(|e| format!("VM: {e}"))
}

fn bound<B: Backend>(vm: &Vm<B>) -> Result<AxVCpu<VCpu<B>>, String> {
    let mut v = vm
        .new_vcpu(0, vm.entry())
        .map_err(|e| format!("new vCPU: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    Ok(v)
}

fn step<V: AxArchVCpu>(v: &mut AxVCpu<V>) -> Result<AxVCpuExitReason, String> {
    v.run().map_err(|e| format!("run: {e}"))
}

fn expect<V: AxArchVCpu>(v: &mut AxVCpu<V>, want: AxVCpuExitReason) -> Check {
    match step(v)? {
        got if got == want => Ok(()),
        got => Err(format!("expected {want:?}, got {got:?}")),
    }
}

fn expect_done<V: AxArchVCpu>(v: &mut AxVCpu<V>) -> Check {
    match step(v)? {
        AxVCpuExitReason::Hypercall { nr: HC_DONE, .. } => Ok(()),
        other => Err(format!("expected HC_DONE, got {other:?}")),
    }
}

/// A triple fault is `SystemDown` (shutdown intercept).
fn triple_fault<B: Backend>(_: ()) -> Check {
    let vm = vm::<B>(selftest_code(Guest::TripleFault))?;
    let mut v = bound(&vm)?;
    expect(&mut v, AxVCpuExitReason::SystemDown)
}

/// `rep outsb` is refused with an error; the vCPU becomes invalid.
fn string_io<B: Backend>(_: ()) -> Check {
    let vm = vm::<B>(selftest_code(Guest::StringIo))?;
    let mut v = bound(&vm)?;
    match v.run() {
        Err(e) if v.state() == VCpuState::Invalid && format!("{e}").contains("string") => Ok(()),
        other => Err(format!(
            "expected a string-I/O error, got {other:?} in state {:?}",
            v.state()
        )),
    }
}

/// MMIO through `ah`: the store carries bits 8..16 of `rax`, the load writes them.
fn high_byte_mmio<B: Backend>(_: ()) -> Check {
    let vm = vm::<B>(selftest_code(Guest::HighByte))?;
    let mut v = bound(&vm)?;
    let base = GuestPhysAddr::from(MMIO_BASE);
    expect(
        &mut v,
        AxVCpuExitReason::MmioWrite {
            addr: base,
            width: AccessWidth::Byte,
            data: 0x12,
        },
    )?;
    match step(&mut v)? {
        AxVCpuExitReason::MmioRead {
            width: AccessWidth::Byte,
            reg: Some(0),
            ..
        } => {}
        other => return Err(format!("expected a byte MmioRead, got {other:?}")),
    }
    v.complete_read(0xab)
        .map_err(|e| format!("complete_read: {e}"))?;
    let want = (IO_IN_RAX_BEFORE & !0xff00) | 0xab00;
    match step(&mut v)? {
        AxVCpuExitReason::Hypercall {
            nr: HC_REPORT,
            args,
        } if args[0] == want => {}
        other => return Err(format!("expected HC_REPORT({want:#x}), got {other:?}")),
    }
    expect_done(&mut v)
}

/// A fixed IPI written to the emulated ICR is `SendIPI`.
fn send_ipi<B: Backend>(_: ()) -> Check {
    let vm = vm::<B>(selftest_code(Guest::SendIpi))?;
    let mut v = bound(&vm)?;
    expect(
        &mut v,
        AxVCpuExitReason::SendIPI {
            target_cpu: 2,
            target_cpu_aux: 0,
            send_to_all: false,
            send_to_self: false,
            vector: 0x55,
        },
    )?;
    expect_done(&mut v)
}

/// MSRs the backend does not keep in the guest state trap: reading and writing
/// IA32_APIC_BASE reach the hypervisor, and the host's APIC stays where it was.
fn msrs_trap<B: Backend>(_: ()) -> Check {
    let vm = vm::<B>(selftest_code(Guest::Msr))?;
    let mut v = bound(&vm)?;
    match step(&mut v)? {
        AxVCpuExitReason::SysRegRead { addr, reg: 0 } if addr.0 == 0x1b => {}
        other => return Err(format!("expected SysRegRead of APIC_BASE, got {other:?}")),
    }
    v.complete_read(0x1234_5678_0000_0d01)
        .map_err(|e| format!("complete_read: {e}"))?;
    match step(&mut v)? {
        AxVCpuExitReason::Hypercall {
            nr: HC_REPORT,
            args,
        } if args[0] == 0x1234_5678_0000_0d01 => {}
        other => return Err(format!("expected HC_REPORT(edx:eax), got {other:?}")),
    }
    match step(&mut v)? {
        AxVCpuExitReason::SysRegWrite { addr, value: 0 } if addr.0 == 0x1b => {}
        other => return Err(format!("expected SysRegWrite of APIC_BASE, got {other:?}")),
    }
    expect_done(&mut v)?;
    if hal::cpu_id() != 0 {
        return Err("the host's APIC id changed".into());
    }
    Ok(())
}

/// Virtualization (SVM or VMX) off and on again on CPU 0, then a guest still runs.
fn percpu_cycle<B: Backend>(_: ()) -> Check {
    let slot = B::cpus().percpu(0).ok_or("no per-CPU slot")?;
    {
        let mut guard = slot.lock();
        let percpu = guard
            .as_mut()
            .ok_or("virtualization not enabled on CPU 0")?;
        percpu
            .hardware_disable()
            .map_err(|e| format!("disable: {e}"))?;
        if percpu.hardware_disable().is_ok() {
            return Err("a second disable was accepted".into());
        }
        percpu
            .hardware_enable()
            .map_err(|e| format!("enable again: {e}"))?;
    }
    let vm = vm::<B>(selftest_code(Guest::SendIpi))?;
    let mut v = bound(&vm)?;
    match step(&mut v)? {
        AxVCpuExitReason::SendIPI { .. } => Ok(()),
        other => Err(format!("after re-enable: {other:?}")),
    }
}

/// A guest state the hardware refuses (a CR3 with bits above the physical-address width) is
/// `FailEntry` with the reason the backend's hardware gives ([`Backend::refused_entry`]),
/// and the host goes on.
fn fail_entry<B: Backend>(_: ()) -> Check {
    let code = selftest_code(Guest::SendIpi);
    let vm = vm::<B>(code)?;
    let setup = Setup {
        boot: Boot::Tables(LongModeBoot {
            cr3: 1 << 62,
            gdt_base: 0,
            gdt_limit: 0x17,
        }),
        stack_top: (RAM_BASE + RAM_SIZE) as u64,
        stack_stride: STACK_SIZE as u64,
    };
    let builder = AxVCpu::<VCpu<B>>::builder(vm.vm_id(), 0, ()).map_err(|e| format!("new: {e}"))?;
    // SAFETY: the VM's NPT outlives the vCPU, which is dropped first.
    let mut v = unsafe { builder.ept_root(vm.ept_root()) }
        .entry(vm.entry())
        .setup(setup)
        .map_err(|e| format!("setup: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    match step(&mut v)? {
        AxVCpuExitReason::FailEntry {
            hardware_entry_failure_reason,
        } if B::refused_entry(hardware_entry_failure_reason) => Ok(()),
        other => Err(format!("expected FailEntry, got {other:?}")),
    }
}

/// A host interrupt pending at entry makes the guest exit at once, before its first
/// instruction with an effect: `ExternalInterrupt` with its vector, handled by the host's
/// IDT when `run` returns; the guest then goes on. `program` starts with the guest's
/// interrupts open (`sti`) or shut.
fn external_interrupt_with<B: Backend>(program: Guest) -> Check {
    let vm = vm::<B>(selftest_code(program))?;
    let mut v = bound(&vm)?;
    hal::apic_icr(hal::cpu_id() as u32, 0x4000 | u32::from(TEST_VECTOR));
    expect(
        &mut v,
        AxVCpuExitReason::ExternalInterrupt {
            vector: u64::from(TEST_VECTOR),
        },
    )?;
    match step(&mut v)? {
        AxVCpuExitReason::SendIPI { vector: 0x55, .. } => {}
        other => return Err(format!("after the interrupt: {other:?}")),
    }
    expect_done(&mut v)
}

/// The host's interrupt with the guest's open.
fn external_interrupt<B: Backend>(_: ()) -> Check {
    external_interrupt_with::<B>(Guest::SendIpiOpen)
}

/// The host's interrupt with the guest's shut: external-interrupt exiting ignores the
/// guest's `RFLAGS.IF` (SVM: the physical INTR intercept, likewise).
fn external_interrupt_masked_guest<B: Backend>(_: ()) -> Check {
    external_interrupt_with::<B>(Guest::SendIpi)
}

/// Why [`external_interrupt_masked_guest`] is not run in Bochs: Bochs 2.7 re-evaluates
/// whether a pending interrupt is masked at VM entry only when `RFLAGS.IF` differs between
/// the host (0 here: `run` enters with interrupts off) and the guest (`setEFlags` calls
/// `handleInterruptMaskChange` only on a change of IF), so the interrupt stays masked in a
/// guest with IF = 0 until the guest sets IF or the VMX-preemption timer ends the entry.
const BOCHS_MASKED_GUEST: &str = "Bochs 2.7 keeps a host interrupt masked at VM entry \
     into a guest with RFLAGS.IF = 0 when the host's IF is 0 too; real VMX exits at once";

const GARBAGE: u64 = 1000;
const BUDGET_NS: u64 = 20_000_000;

struct Dog<B: Backend> {
    armed: spin::Mutex<Option<(u64, VCpuHandle<VCpu<B>>)>>,
    stop: AtomicBool,
}

/// 1,000 more random programs (other seeds than the suite's), with the exits tallied and
/// printed: the host survives them all and they end in varied exits, not one kind.
fn garbage_exits<B: Backend>(_: ()) -> Check {
    let dog = Arc::new(Dog::<B> {
        armed: spin::Mutex::new(None),
        stop: AtomicBool::new(false),
    });
    let d = dog.clone();
    let watcher = B::cpus()
        .post(
            1,
            Box::new(move || {
                while !d.stop.load(Ordering::Acquire) {
                    if let Some((deadline, h)) = &*d.armed.lock() {
                        if hal::now_ns() > *deadline {
                            h.kick();
                        }
                    }
                    hal::delay_ms(1);
                }
            }),
        )
        .map_err(|_| "CPU 1 is not serving")?;
    let mut tally: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut result = Ok(());
    'programs: for i in 0..GARBAGE {
        let seed = axvcpu_conformance::GARBAGE_SEED ^ (0x5eed << 32) ^ i;
        let vm = vm::<B>(&axvcpu_conformance::random_program(seed, 256))?;
        let mut v = bound(&vm)?;
        for _ in 0..32 {
            *dog.armed.lock() = Some((hal::now_ns() + BUDGET_NS, v.handle()));
            let r = v.run();
            *dog.armed.lock() = None;
            let exit = match r {
                Ok(e) => e,
                Err(_) if v.state() == VCpuState::Invalid => {
                    *tally.entry("Err").or_default() += 1;
                    continue 'programs;
                }
                Err(e) => {
                    result = Err(format!("seed {seed:#x}: {e} in state {:?}", v.state()));
                    break 'programs;
                }
            };
            *tally.entry(exit.name()).or_default() += 1;
            match exit {
                AxVCpuExitReason::MmioRead { .. }
                | AxVCpuExitReason::IoRead { .. }
                | AxVCpuExitReason::SysRegRead { .. } => v
                    .complete_read(0)
                    .map_err(|e| format!("complete_read: {e}"))?,
                AxVCpuExitReason::SystemDown
                | AxVCpuExitReason::NestedPageFault { .. }
                | AxVCpuExitReason::FailEntry { .. }
                | AxVCpuExitReason::Kicked => continue 'programs,
                _ => {}
            }
        }
    }
    dog.stop.store(true, Ordering::Release);
    let joined = Box::new(watcher).join();
    let mut line = String::new();
    for (name, n) in &tally {
        line.push_str(&format!(" {name} {n}"));
    }
    axvcpu_testbed::say::<X86<B>>(format_args!("testbed-x86: garbage exits:{line}"));
    result?;
    if !joined {
        return Err("the watchdog did not finish".into());
    }
    if tally.len() < 4 {
        return Err(format!("only {} kinds of exit", tally.len()));
    }
    Ok(())
}

type Failing<B> = FailingHal<Hal<B>>;
type FailingVCpu<B> = AxVCpu<<B as Backend>::VCpu<Failing<B>>>;
type FailingNpt<B> = NestedPageTable<Failing<B>, <B as Backend>::Format>;

/// One build: a nested page table over [`Failing`], RAM and the block mapped, a vCPU
/// created (the backend's own frames: VMCB, permission maps / VMCS, MSR bitmap) and set up
/// (boot tables written through the table), two table changes under it (a large-page
/// split, a far page), and a run to its `hlt`. Returns the vCPU before the table, so it
/// drops first.
fn alloc_fail_build<B: Backend>(
    mem: &AllocFailMemory,
) -> VCpuResult<(FailingVCpu<B>, FailingNpt<B>)> {
    let rwx = MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE;
    let mut npt = FailingNpt::<B>::new()?;
    let ram = GuestPhysAddr::from(RAM_BASE);
    npt.map(ram, mem.ram, mem.ram_frames * 4096, rwx)?;
    npt.map(
        GuestPhysAddr::from(AF_BIG_GPA),
        mem.big,
        AF_BIG_FRAMES * 4096,
        rwx,
    )?;
    let builder = FailingVCpu::<B>::builder(0, 0, ())?;
    // SAFETY: the table is returned with the vCPU, which drops first; the memory it maps
    // outlives every build.
    let mut v = unsafe { builder.ept_root(npt.root_paddr()) }
        .entry(ram)
        .setup(Setup {
            boot: Boot::WriteTablesAt(crate::guests::BOOT_TABLES as u64),
            stack_top: (RAM_BASE + RAM_SIZE) as u64,
            stack_stride: STACK_SIZE as u64,
        })?;
    note_vcpu_set_up();
    npt.protect(
        GuestPhysAddr::from(AF_BIG_GPA + 0x1000),
        4096,
        MapFlags::READ,
    )?;
    npt.map(
        GuestPhysAddr::from(AF_FAR_GPA),
        mem.ram,
        4096,
        MapFlags::READ,
    )?;
    v.nested_page_table_changed()?;
    v.bind()?;
    let exit = v.run();
    v.unbind()?;
    match exit? {
        AxVCpuExitReason::Halt => Ok((v, npt)),
        _ => Err(VCpuError::bad_state("alloc-fail: the guest did not halt")),
    }
}

/// Every frame allocation of [`alloc_fail_build`] fails in turn: each must be a clean
/// `NoMemory` error with no frame leaked (`axvcpu_conformance::alloc_fail`).
fn alloc_fail<B: Backend>(_: ()) -> Check {
    // Root, tables for RAM and the block, the split, the far page's tables, the backend's.
    let (points, with_vcpu) = alloc_fail_with_memory::<Hal<B>, _>(
        RAM_SIZE / 4096,
        &[0xf4], // hlt
        |mem| alloc_fail_build::<B>(mem),
        8,
    )?;
    axvcpu_testbed::say::<X86<B>>(format_args!(
        "testbed-x86: alloc-fail: {points} allocation points, {with_vcpu} with a set-up vCPU, \
         each a clean NoMemory error"
    ));
    Ok(())
}

/// The `real-mode-start` guest: 16-bit code at a SIPI address. It reports CS
/// (`HC_REPORT`), writes 0x5a to port 0x80, then `HC_DONE`. Run as 64-bit code it would
/// report CS = 8 and then decode `66 b8` as `mov ax, imm16`, running into garbage.
const REAL_MODE_GUEST: [u8; 25] = [
    0x8c, 0xcf, //                         mov di, cs
    0x66, 0xb8, 0x50, 0x52, 0x00, 0x00, // mov eax, HC_REPORT
    0x0f, 0x01, 0xd9, //                   vmmcall
    0xb0, 0x5a, //                         mov al, 0x5a
    0xe6, 0x80, //                         out 0x80, al
    0x66, 0xb8, 0x4f, 0x44, 0x00, 0x00, // mov eax, HC_DONE
    0x0f, 0x01, 0xd9, //                   vmmcall
    0xf4, //                               hlt
];
/// Where [`REAL_MODE_GUEST`]'s hypercalls are (their third byte: `d9` AMD, `c1` Intel).
const REAL_MODE_HYPERCALLS: [usize; 2] = [8, 21];

/// A vCPU started in real mode (`Boot::RealMode`) at a SIPI address runs 16-bit code
/// there: CS = address >> 4, IP = 0, port I/O decoded (SVM as it is, VMX through
/// unrestricted guest).
fn real_mode_start<B: Backend>(_: ()) -> Check {
    let mut code = REAL_MODE_GUEST;
    if crate::backend::found() == crate::backend::Found::Vmx {
        for at in REAL_MODE_HYPERCALLS {
            code[at + 2] = 0xc1; // vmcall
        }
    }
    let vm = vm::<B>(&code)?;
    let mut v = real_mode_vcpu::<B>(&vm).map_err(|e| format!("setup: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    let cs = (vm.entry().as_usize() >> 4) as u64;
    match step(&mut v)? {
        AxVCpuExitReason::Hypercall {
            nr: HC_REPORT,
            args,
        } if args[0] & 0xffff == cs => {}
        other => return Err(format!("expected HC_REPORT(CS = {cs:#x}), got {other:?}")),
    }
    let pc = v.pc().map_err(|e| format!("pc: {e}"))?;
    if pc != 11 {
        return Err(format!("IP after the vmmcall is {pc:#x}, not 0xb"));
    }
    expect(
        &mut v,
        AxVCpuExitReason::IoWrite {
            port: axvcpu::Port(0x80),
            width: AccessWidth::Byte,
            data: 0x5a,
        },
    )?;
    expect_done(&mut v)?;
    v.unbind().map_err(|e| format!("unbind: {e}"))
}

/// vCPU 1 of `vm`, set up to start in real mode at the VM's entry (a SIPI address).
fn real_mode_vcpu<B: Backend>(vm: &Vm<B>) -> VCpuResult<AxVCpu<VCpu<B>>> {
    let mut v = AxVCpu::<VCpu<B>>::new(vm.vm_id(), 1, ())?;
    // SAFETY: the VM's table, which outlives the vCPU (its callers drop the vCPU first).
    unsafe { v.set_ept_root(vm.ept_root()) }?;
    v.set_entry(vm.entry())?;
    v.setup(Setup {
        boot: Boot::RealMode,
        ..X86::<B>::first_pass()
    })?;
    Ok(v)
}

/// Runs the self-tests; `true` if all passed.
pub fn run_all<B: Backend>() -> bool {
    let mut w = hal::CONSOLE.writer();
    let masked: SelfTest<()> = (
        "external-interrupt-masked-guest",
        external_interrupt_masked_guest::<B>,
    );
    let mut ok = true;
    if hal::is_bochs() {
        selftest::not_run(masked.0, BOCHS_MASKED_GUEST, &mut w);
    } else {
        ok &= selftest::run_all(&[masked], (), &mut w);
    }
    let real_mode: SelfTest<()> = ("real-mode-start", real_mode_start::<B>);
    ok &= selftest::run_all(&[real_mode], (), &mut w);
    let tests: [SelfTest<()>; 10] = [
        ("fail-entry", fail_entry::<B>),
        ("external-interrupt", external_interrupt::<B>),
        ("triple-fault", triple_fault::<B>),
        ("string-io", string_io::<B>),
        ("high-byte-mmio", high_byte_mmio::<B>),
        ("send-ipi", send_ipi::<B>),
        ("msrs-trap", msrs_trap::<B>),
        ("percpu-cycle", percpu_cycle::<B>),
        ("garbage-exits", garbage_exits::<B>),
        ("alloc-fail", alloc_fail::<B>),
    ];
    selftest::run_all(&tests, (), &mut w) && ok
}
