//! The vCPUs' loops: each vCPU runs on its own CPU and serves its exits here (the emulated
//! devices, SGIs, debug/PMU registers, PSCI calls the backend leaves to the hypervisor,
//! `Halt`); `CPU_ON` starts a vCPU on its CPU through that CPU's mailbox.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;

use axvcpu::{AxVCpu, AxVCpuExitReason, GuestPhysAddr, VCpuState};
use axvcpu_aarch64::psci::fid;
use axvcpu_testbed::mailbox::PostError;
use axvcpu_testbed::os::CpuState;
use axvcpu_testbed::say;

use super::devices::{GICD_IPA, UART_IPA, UART_SPI};
use super::Machine;
use crate::arch::{Aarch64, VCpu};
use crate::hal;

/// PSCI return codes the hypervisor gives for `CPU_ON`.
const PSCI_INVALID_PARAMETERS: i64 = -2;
const PSCI_ALREADY_ON: i64 = -4;
const SMCCC_NOT_SUPPORTED: i64 = -1;

/// Runs `vcpu` on this CPU until the guest powers off or the machine is done (`None`), or
/// the vCPU turns itself off (PSCI `CPU_OFF`: returned, unbound, for a later `CPU_ON`).
pub(super) fn run_vcpu(
    m: &Arc<Machine>,
    mut vcpu: AxVCpu<VCpu>,
) -> Result<Option<AxVCpu<VCpu>>, String> {
    use alloc::format;
    let id = vcpu.id().vcpu_id;
    vcpu.bind().map_err(|e| format!("bind: {e}"))?;
    m.run.bound(true);
    let result = loop {
        if m.run.is_done() {
            break Ok(false);
        }
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) => break Err(format!("run: {e} (pc {:#x})", vcpu.pc().unwrap_or(0))),
        };
        m.run.exits.count(&exit);
        match handle_exit(m, &mut vcpu, id, exit) {
            Ok(Next::Run) => {}
            Ok(Next::Stop) => break Ok(false),
            Ok(Next::Off) => break Ok(true),
            Err(e) => break Err(e),
        }
    };
    let unbound = vcpu.unbind().map_err(|e| format!("unbind: {e}"));
    // Out of the guest for good: the stage-2 table may go once every vCPU got here.
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
    /// The vCPU turned itself off (PSCI `CPU_OFF`).
    Off,
}

/// Serves one exit.
fn handle_exit(
    m: &Arc<Machine>,
    vcpu: &mut AxVCpu<VCpu>,
    id: usize,
    exit: AxVCpuExitReason,
) -> Result<Next, String> {
    use alloc::format;
    let e = |e: axvcpu::VCpuError| format!("{e}");
    match exit {
        AxVCpuExitReason::MmioRead { addr, width, .. } => {
            let a = addr.as_usize();
            let v = match a {
                _ if (GICD_IPA..GICD_IPA + 0x1000).contains(&a) => {
                    m.gicd.lock().read(id, a - GICD_IPA, width.size())
                }
                _ if (UART_IPA..UART_IPA + 0x1000).contains(&a) => m.uart.lock().read(a - UART_IPA),
                _ => return Err(format!("read of unemulated MMIO at {a:#x}")),
            };
            vcpu.complete_read(v).map_err(e)?;
        }
        AxVCpuExitReason::MmioWrite { addr, width, data } => {
            let a = addr.as_usize();
            if (GICD_IPA..GICD_IPA + 0x1000).contains(&a) {
                let sgi = m.gicd.lock().write(id, a - GICD_IPA, width.size(), data);
                if let Some(sgi) = sgi {
                    for t in 0..m.handles.len() {
                        if sgi.targets & (1 << t) != 0 {
                            send(m, t, sgi.id as usize)?;
                        }
                    }
                }
                // An enable or a new target may let the UART's waiting interrupt through.
                uart_interrupt(m)?;
            } else if (UART_IPA..UART_IPA + 0x1000).contains(&a) {
                let line = m.uart.lock().write(a - UART_IPA, data);
                if let Some(line) = line {
                    m.run.console_line(&line.text, hal::now_ns());
                    say::<Aarch64>(format_args!("{}", String::from_utf8_lossy(line.unshown())));
                }
                uart_interrupt(m)?;
            } else {
                return Err(format!("write of unemulated MMIO at {a:#x}"));
            }
        }
        // Debug and PMU registers (`MDCR_EL2` traps them): no debug or PMU features; the
        // architecture lets such registers read as zero with no effect.
        AxVCpuExitReason::SysRegRead { .. } => vcpu.complete_read(0).map_err(e)?,
        AxVCpuExitReason::SysRegWrite { .. } => {}
        AxVCpuExitReason::Hypercall { nr, args } => {
            let affinity_info_fids = [fid::AFFINITY_INFO32, fid::AFFINITY_INFO64];
            let answer = if affinity_info_fids.iter().any(|&f| f as u64 == nr) {
                affinity_info(m, args[0], args[1])
            } else {
                SMCCC_NOT_SUPPORTED
            };
            vcpu.set_return_value(answer as usize).map_err(e)?
        }
        AxVCpuExitReason::Halt | AxVCpuExitReason::Idle => {
            // The guest waits: show a prompt it left unfinished.
            if let Some(partial) = m.uart.lock().show_partial_line() {
                hal::CONSOLE.write_bytes(partial);
            }
            if vcpu.state() == VCpuState::Blocked {
                m.run.slept();
                hal::wait_for_interrupt();
            }
        }
        // The console's input interrupt goes to CPU 0 (`hal::enable_console_input`): its
        // exit, or the first entry after a `wfi` it ended, is where the bytes are taken.
        AxVCpuExitReason::ExternalInterrupt { .. } if id == 0 => console_input(m)?,
        AxVCpuExitReason::Kicked | AxVCpuExitReason::ExternalInterrupt { .. } => {}
        AxVCpuExitReason::CpuUp {
            target_cpu,
            entry_point,
            arg,
        } => {
            let answer = cpu_on(m, target_cpu, entry_point, arg as usize);
            if answer != 0 {
                vcpu.set_gpr(0, answer as usize).map_err(e)?;
            }
        }
        AxVCpuExitReason::CpuDown { .. } => return Ok(Next::Off),
        AxVCpuExitReason::SystemDown => {
            // `SYSTEM_OFF` or `SYSTEM_RESET`: the function id is still in `x0`. A reset is
            // how Linux ends after a panic (`panic=-1`): not a clean end.
            let reset = vcpu.get_gpr(0).map_err(e)? as u32 == fid::SYSTEM_RESET;
            m.run.powered_off(!reset);
            m.finish();
            return Ok(Next::Stop);
        }
        other => return Err(format!("unexpected exit {other:?}")),
    }
    Ok(Next::Run)
}

/// Sends interrupt `intid` to vCPU `target`, waking its CPU if it sleeps in `Halt` (the
/// kick SGI ends the host `wfi`; a running vCPU was kicked by the injection).
fn send(m: &Machine, target: usize, intid: usize) -> Result<(), String> {
    let Some(h) = m.handles.get(target) else {
        return Ok(());
    };
    h.inject_interrupt(intid)
        .map_err(|e| alloc::format!("interrupt {intid} to vCPU {target}: {e}"))?;
    if h.state() != VCpuState::Running {
        h.kick();
    }
    Ok(())
}

/// Raises the UART's interrupt at the vCPU the distributor routes it to, if the UART
/// asserts it. Called whenever the line may have risen (input arrived, the guest unmasked
/// it in the UART or the distributor); a raise while the guest still serves the last one
/// leaves it pending once more (the interrupt rule), and the driver's handler reads until
/// the FIFO is empty, so nothing waits unseen.
fn uart_interrupt(m: &Machine) -> Result<(), String> {
    if !m.uart.lock().irq() {
        return Ok(());
    }
    let target = m.gicd.lock().spi_target(UART_SPI);
    match target {
        Some(t) => send(m, t, 32 + UART_SPI as usize),
        None => Ok(()),
    }
}

/// CPU 0's part of the console: what the host's UART received goes to the guest's.
fn console_input(m: &Machine) -> Result<(), String> {
    let mut buf = [0u8; 64];
    let n = hal::console_input(&mut buf);
    if n == 0 {
        return Ok(());
    }
    m.uart.lock().receive(&buf[..n]);
    uart_interrupt(m)
}

/// PSCI `CPU_ON`: starts the parked vCPU `target` (its MPIDR: Aff0 = vCPU id) on its CPU.
fn cpu_on(m: &Arc<Machine>, target: u64, entry: GuestPhysAddr, arg: usize) -> i64 {
    let id = (target & 0xff) as usize;
    if target >> 8 != 0 || id >= m.handles.len() {
        return PSCI_INVALID_PARAMETERS;
    }
    let Some(mut vcpu) = m.slots.unpark(id) else {
        return PSCI_ALREADY_ON;
    };
    // First start: entry and setup; a start after `CPU_OFF`: the new entry.
    let ready = if vcpu.state() == VCpuState::Created {
        vcpu.set_entry(entry).and_then(|()| vcpu.setup(m.setup))
    } else {
        vcpu.set_pc(entry.as_usize())
    };
    if ready.and_then(|()| vcpu.set_gpr(0, arg)).is_err() {
        m.slots.park(id, vcpu);
        return PSCI_INVALID_PARAMETERS;
    }
    m.slots.ready(id, vcpu);
    // The job that ran this vCPU before a `CPU_OFF` may still be returning: its CPU's
    // mailbox is busy for those few instructions.
    loop {
        let machine = m.clone();
        let job = Box::new(move || start_vcpu(&machine, id));
        match m.cpus.post(id, job) {
            Ok(_) => return 0,
            Err(PostError::Busy) => core::hint::spin_loop(),
            Err(PostError::NoSuchCpu) => {
                if let Some(v) = m.slots.take_ready(id) {
                    m.slots.park(id, v);
                }
                return PSCI_INVALID_PARAMETERS;
            }
        }
    }
}

/// The job on vCPU `id`'s CPU: runs the vCPU `CPU_ON` made ready; parks it again if it
/// turns itself off.
fn start_vcpu(m: &Arc<Machine>, id: usize) {
    let Some(vcpu) = m.slots.take_ready(id) else {
        return;
    };
    match run_vcpu(m, vcpu) {
        Ok(None) => {}
        Ok(Some(off)) => m.slots.park(id, off),
        Err(why) => {
            say::<Aarch64>(format_args!("linux: FAIL vCPU {id}: {why}"));
            m.finish();
        }
    }
}

/// PSCI `AFFINITY_INFO(target, level)`: 0 on, 1 off, 2 on pending; only level 0 (one
/// vCPU) is answered.
fn affinity_info(m: &Arc<Machine>, target: u64, level: u64) -> i64 {
    let id = (target & 0xff) as usize;
    if level != 0 || target >> 8 != 0 || id >= m.handles.len() {
        return PSCI_INVALID_PARAMETERS;
    }
    match m.slots.state(id) {
        Some(CpuState::Started) => 0,
        Some(CpuState::Stopped) | None => 1,
        Some(CpuState::StartPending) => 2,
    }
}
