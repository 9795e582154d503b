//! The vCPUs' loops: each vCPU runs on its own hart and serves its exits here (the
//! console, IPIs, remote fences, `hart_get_status`, trapped counters, `Halt`); SBI
//! `hart_start` hands a vCPU to its hart's [`secondary`] loop.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use axvcpu::{AxVCpu, AxVCpuExitReason, GuestPhysAddr, VCpuState};
use axvcpu_riscv::sbi::{self, eid, err};
use axvcpu_testbed::os::CpuState;
use axvcpu_testbed::say;

use super::{plic, Machine, PLIC_GPA, UART_GPA, UART_IRQ};
use crate::arch::{Riscv, VCpu};
use crate::hal;

/// HSM hart states `hart_get_status` answers.
const STARTED: usize = 0;
const STOPPED: usize = 1;
const START_PENDING: usize = 2;
/// The counter CSRs the backend traps: `cycle` (0xc00) and the HPM counters (0xc03..0xc1f).
const CYCLE: usize = 0xc00;

/// Runs `vcpu` on this hart until the guest powers off or the machine is done (`None`), or
/// the vCPU stops itself (HSM `hart_stop`: returned, unbound, for a later `hart_start`).
pub(super) fn run_vcpu(
    m: &Arc<Machine>,
    mut vcpu: AxVCpu<VCpu>,
) -> Result<Option<AxVCpu<VCpu>>, String> {
    let id = vcpu.id().vcpu_id;
    vcpu.bind().map_err(|e| format!("bind: {e}"))?;
    m.run.bound(true);
    if let Some(f) = m.in_loop.get(id) {
        f.store(true, Ordering::Release);
    }
    let result = loop {
        if m.run.is_done() {
            break Ok(false);
        }
        if let Err(e) = serve_fences(m, &mut vcpu, id).and_then(|()| sync_eip(m, &mut vcpu, id)) {
            break Err(e);
        }
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) => {
                let t = vcpu.arch().last_trap();
                break Err(format!(
                    "run: {e} (pc {:#x}, scause {:#x}, stval {:#x}, htval {:#x})",
                    vcpu.pc().unwrap_or(0),
                    t.scause,
                    t.stval,
                    t.htval
                ));
            }
        };
        m.run.exits.count(&exit);
        match handle_exit(m, &mut vcpu, id, exit) {
            Ok(Next::Run) => {}
            Ok(Next::Stop) => break Ok(false),
            Ok(Next::Off) => break Ok(true),
            Err(e) => break Err(e),
        }
    };
    if let Some(f) = m.in_loop.get(id) {
        f.store(false, Ordering::Release);
    }
    let unbound = vcpu.unbind().map_err(|e| format!("unbind: {e}"));
    m.run.bound(false);
    unbound?;
    result.map(|off| off.then_some(vcpu))
}

/// What a vCPU's loop does after an exit.
enum Next {
    /// Enter the guest again.
    Run,
    /// The guest powered off.
    Stop,
    /// The vCPU stopped itself (HSM `hart_stop`).
    Off,
}

/// The harts a mask-and-base target set names (as SBI IPI and RFENCE take them), among
/// the guest's `n`.
fn targets(mask: u64, base: u64, all: bool, n: usize) -> impl Iterator<Item = usize> {
    (0..n).filter(move |&h| {
        let h = h as u64;
        all || (h >= base && h - base < 64 && (mask >> (h - base)) & 1 != 0)
    })
}

/// Serves one exit.
fn handle_exit(
    m: &Arc<Machine>,
    vcpu: &mut AxVCpu<VCpu>,
    id: usize,
    exit: AxVCpuExitReason,
) -> Result<Next, String> {
    let e = |e: axvcpu::VCpuError| format!("{e}");
    match exit {
        AxVCpuExitReason::MmioRead { addr, .. } => {
            let a = addr.as_usize();
            let mut d = m.devices.lock();
            let v = match a {
                _ if (UART_GPA..UART_GPA + 8).contains(&a) => {
                    // Reading the receive buffer may lower the line.
                    let v = d.0.read(a - UART_GPA);
                    let irq = d.0.irq();
                    d.1.set_level(UART_IRQ, irq);
                    route(m, &d.1, id);
                    u32::from(v)
                }
                _ if (UART_GPA..UART_GPA + 0x100).contains(&a) => 0,
                _ if (PLIC_GPA..PLIC_GPA + plic::SIZE).contains(&a) => {
                    let v = d.1.read((a - PLIC_GPA) & !3);
                    route(m, &d.1, id);
                    v
                }
                _ => return Err(format!("read of unemulated MMIO at {a:#x}")),
            };
            drop(d);
            vcpu.complete_read(v as u64).map_err(e)?;
        }
        AxVCpuExitReason::MmioWrite { addr, data, .. } => {
            let a = addr.as_usize();
            let mut d = m.devices.lock();
            if (PLIC_GPA..PLIC_GPA + plic::SIZE).contains(&a) {
                d.1.write((a - PLIC_GPA) & !3, data as u32);
                route(m, &d.1, id);
                return Ok(Next::Run);
            }
            if !(UART_GPA..UART_GPA + 0x100).contains(&a) {
                return Err(format!("write of unemulated MMIO at {a:#x}"));
            }
            let line = d.0.write(a - UART_GPA, data as u8);
            let irq = d.0.irq();
            d.1.set_level(UART_IRQ, irq);
            route(m, &d.1, id);
            drop(d);
            if let Some(line) = line {
                m.run.console_line(&line.text, hal::now_ns());
                say::<Riscv>(format_args!("{}", String::from_utf8_lossy(line.unshown())));
            }
        }
        // `cycle` reads as `time` (hcounteren leaves it to the hypervisor); the HPM
        // counters read as zero; writes to trapped CSRs are ignored.
        AxVCpuExitReason::SysRegRead { addr, .. } => {
            let v = if addr.0 == CYCLE {
                hal::now_ns() / 100
            } else {
                0
            };
            vcpu.complete_read(v).map_err(e)?
        }
        AxVCpuExitReason::SysRegWrite { .. } => {}
        AxVCpuExitReason::Hypercall { nr, args } => {
            if nr == sbi::HART_STATUS_NR {
                match hart_status(m, args[0]) {
                    Some(s) => vcpu.set_return_value(s).map_err(e)?,
                    None => vcpu.set_gpr(10, err::INVALID_PARAM as usize).map_err(e)?,
                }
            } else {
                vcpu.set_gpr(10, err::NOT_SUPPORTED as usize).map_err(e)?;
            }
        }
        AxVCpuExitReason::SendIPI {
            target_cpu,
            target_cpu_aux,
            send_to_all,
            ..
        } => {
            for t in targets(target_cpu, target_cpu_aux, send_to_all, m.handles.len()) {
                let Some(h) = m.handles.get(t) else { continue };
                h.inject_interrupt(1).map_err(e)?;
                // Wakes its hart if it sleeps in `Halt` (the kick IPI ends the host `wfi`);
                // a running vCPU was kicked by the injection.
                if t != id && h.state() != VCpuState::Running {
                    h.kick();
                }
            }
        }
        AxVCpuExitReason::RemoteFence {
            target_cpu,
            target_cpu_aux,
            send_to_all,
        } => remote_fence(m, vcpu, id, target_cpu, target_cpu_aux, send_to_all)?,
        AxVCpuExitReason::Halt => {
            // The guest waits: show a prompt it left unfinished.
            if let Some(partial) = m.devices.lock().0.show_partial_line() {
                hal::CONSOLE.write_bytes(partial);
            }
            if vcpu.state() == VCpuState::Blocked {
                m.run.slept();
                hal::wait_for_interrupt();
            }
        }
        // The console's input interrupt goes to hart 0 (`hal::enable_console_input`): its
        // exit, or the first entry after a `wfi` it ended, is where the bytes are taken
        // (and the host PLIC's claim completed).
        AxVCpuExitReason::ExternalInterrupt { .. } if id == 0 => console_input(m, id),
        AxVCpuExitReason::Kicked | AxVCpuExitReason::ExternalInterrupt { .. } => {}
        AxVCpuExitReason::CpuUp {
            target_cpu,
            entry_point,
            arg,
        } => {
            let answer = hart_start(m, target_cpu, entry_point, arg as usize);
            if answer != 0 {
                vcpu.set_gpr(10, answer as usize).map_err(e)?;
            }
        }
        AxVCpuExitReason::CpuDown { .. } => return Ok(Next::Off),
        AxVCpuExitReason::SystemDown => {
            // SRST leaves its reset type in a0 and reason in a1: a clean end is a shutdown
            // (type 0) without the "system failure" reason (1). The legacy shutdown has
            // neither.
            let srst = vcpu.get_gpr(17).map_err(e)? as u64 == eid::SRST;
            let (kind, reason) = (vcpu.get_gpr(10).map_err(e)?, vcpu.get_gpr(11).map_err(e)?);
            let clean = !srst || (kind as u32 == 0 && reason as u32 != 1);
            m.run.powered_off(clean);
            m.finish();
            return Ok(Next::Stop);
        }
        other => return Err(format!("unexpected exit {other:?}")),
    }
    Ok(Next::Run)
}

/// The boot hart's part of the console: what the host's UART received goes to the
/// guest's, and its PLIC source follows the UART's line.
fn console_input(m: &Machine, id: usize) {
    let mut buf = [0u8; 64];
    let n = hal::console_input(&mut buf);
    if n == 0 {
        return;
    }
    let mut d = m.devices.lock();
    d.0.receive(&buf[..n]);
    let irq = d.0.irq();
    d.1.set_level(UART_IRQ, irq);
    route(m, &d.1, id);
}

/// Records which harts' S-mode PLIC contexts have an interrupt to take; kicks another vCPU
/// whose context changed (its loop then raises or lowers its external interrupt).
fn route(m: &Machine, p: &plic::Plic, id: usize) {
    for (hart, flag) in m.eip.iter().enumerate() {
        let want = p.eip(plic::s_context(hart));
        if flag.swap(want, Ordering::AcqRel) != want && hart != id {
            if let Some(h) = m.handles.get(hart) {
                h.kick();
            }
        }
    }
}

/// Raises or lowers this vCPU's external interrupt (code 9) to match its PLIC context.
fn sync_eip(m: &Machine, vcpu: &mut AxVCpu<VCpu>, id: usize) -> Result<(), String> {
    let want = m.eip.get(id).is_some_and(|f| f.load(Ordering::Acquire));
    let has = vcpu.arch().pending_interrupts() & (1 << 9) != 0;
    if want && !has {
        vcpu.inject_interrupt(9)
            .map_err(|e| format!("external interrupt: {e}"))?;
    } else if !want && has {
        vcpu.arch_mut()
            .map(|a| a.clear_external_interrupt())
            .map_err(|e| format!("external interrupt: {e}"))?;
    }
    Ok(())
}

/// Performs the fences other vCPUs asked of this one (on its own hart, before its guest
/// runs again).
fn serve_fences(m: &Machine, vcpu: &mut AxVCpu<VCpu>, id: usize) -> Result<(), String> {
    let (Some(asked), Some(done)) = (m.fences_asked.get(id), m.fences_done.get(id)) else {
        return Ok(());
    };
    let want = asked.load(Ordering::Acquire);
    if done.load(Ordering::Acquire) < want {
        vcpu.arch_mut()
            .and_then(|a| a.fence_guest())
            .map_err(|e| format!("fence: {e}"))?;
        done.store(want, Ordering::Release);
    }
    Ok(())
}

/// SBI RFENCE to other harts: each target fences on its own hart before it runs guest code
/// again, and the caller's call returns only once every target in its run loop has. A
/// target outside its loop runs no guest code, and `bind` flushes when it comes back.
/// While waiting, this vCPU serves fences asked of it, so two harts fencing each other do
/// not wait for ever.
fn remote_fence(
    m: &Machine,
    vcpu: &mut AxVCpu<VCpu>,
    id: usize,
    mask: u64,
    base: u64,
    all: bool,
) -> Result<(), String> {
    let mut waits: [(usize, u64); crate::boot::MAX_HARTS] =
        [(usize::MAX, 0); crate::boot::MAX_HARTS];
    for (slot, t) in waits
        .iter_mut()
        .zip(targets(mask, base, all, m.handles.len()).filter(|&t| t != id))
    {
        let (Some(asked), Some(h)) = (m.fences_asked.get(t), m.handles.get(t)) else {
            continue;
        };
        *slot = (t, asked.fetch_add(1, Ordering::AcqRel) + 1);
        h.kick();
    }
    for &(t, ticket) in waits.iter().filter(|(t, _)| *t != usize::MAX) {
        let (Some(done), Some(in_loop)) = (m.fences_done.get(t), m.in_loop.get(t)) else {
            continue;
        };
        while done.load(Ordering::Acquire) < ticket
            && in_loop.load(Ordering::Acquire)
            && !m.run.is_done()
        {
            serve_fences(m, vcpu, id)?;
            core::hint::spin_loop();
        }
    }
    Ok(())
}

/// HSM `hart_get_status(hart)`: `None` for a hart the guest does not have.
fn hart_status(m: &Machine, hart: u64) -> Option<usize> {
    let id = usize::try_from(hart).ok()?;
    Some(match m.slots.state(id)? {
        CpuState::Stopped => STOPPED,
        CpuState::StartPending => START_PENDING,
        CpuState::Started => STARTED,
    })
}

/// HSM `hart_start`: makes the parked vCPU `hart` ready for its hart's [`secondary`] loop;
/// the SBI error code.
fn hart_start(m: &Machine, hart: u64, entry: GuestPhysAddr, arg: usize) -> i64 {
    let Some(id) = usize::try_from(hart).ok().filter(|&i| i < m.handles.len()) else {
        return err::INVALID_PARAM;
    };
    let Some(mut vcpu) = m.slots.unpark(id) else {
        return err::ALREADY_AVAILABLE;
    };
    // First start: entry and setup; a start after `hart_stop`: the new entry and a0.
    let ready = if vcpu.state() == VCpuState::Created {
        vcpu.set_entry(entry).and_then(|()| vcpu.setup(m.setup))
    } else {
        vcpu.set_pc(entry.as_usize())
            .and_then(|()| vcpu.set_gpr(10, id))
    };
    if ready.and_then(|()| vcpu.set_boot_arg(arg)).is_err() {
        m.slots.park(id, vcpu);
        return err::INVALID_PARAM;
    }
    m.slots.ready(id, vcpu);
    // Its hart sleeps in `secondary` until this IPI.
    hal::send_ipi(id);
    err::SUCCESS
}

/// Hart `hart`'s job for the whole run (posted once at boot): runs the vCPU of the same
/// number each time `hart_start` makes it ready, parks it again when it stops itself, and
/// sleeps in `wfi` in between (woken by the IPI `hart_start` and the end of the run send),
/// so an idle hart leaves its host CPU to the others.
pub(super) fn secondary(m: &Arc<Machine>, hart: usize) {
    loop {
        // Cleared before the checks: an IPI sent after them is still pending at the `wfi`.
        hal::clear_soft_interrupt();
        if m.run.is_done() {
            return;
        }
        let ready = m.slots.take_ready(hart);
        let Some(vcpu) = ready else {
            hal::wait_for_interrupt();
            continue;
        };
        match run_vcpu(m, vcpu) {
            Ok(None) => {}
            Ok(Some(off)) => m.slots.park(hart, off),
            Err(why) => {
                say::<Riscv>(format_args!("linux: FAIL vCPU {hart}: {why}"));
                m.finish();
                return;
            }
        }
    }
}
