//! The vCPUs' loops: each vCPU runs on its own CPU and serves its exits here (ports, its
//! local APIC's page, IPIs, INIT-SIPI, MSRs, `Halt`); a start-up IPI makes a new vCPU in
//! real mode for its CPU's [`secondary`] job.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use axvcpu::{AxArchVCpu, AxVCpu, AxVCpuExitReason, GuestPhysAddr, VCpuState};
use axvcpu_testbed::say;

use super::lapic::{self, Lapic};
use super::ports::concerns_vcpu0;
use super::Machine;
use crate::arch::{VCpu, X86};
use crate::backend::{Backend, Boot, Setup};
use crate::hal;

/// #GP.
const GP: u8 = 13;
/// `IA32_APIC_BASE`: the xAPIC page, enabled (bit 11), the bootstrap processor (bit 8).
const MSR_APIC_BASE: u32 = 0x1b;
const MSR_TSC: u32 = 0x10;
/// `IA32_TSC_DEADLINE`: the local APIC timer's deadline in TSC-deadline mode.
const MSR_TSC_DEADLINE: u32 = 0x6e0;

/// What a vCPU's loop does after an exit.
enum Next {
    /// Enter the guest again.
    Run,
    /// The run is over.
    Stop,
    /// This vCPU is done (a secondary halted with interrupts off, or an INIT-SIPI
    /// replaces it): its loop ends, its CPU waits for the next start.
    Off,
}

/// Runs `vcpu` on this CPU until the run is over or the vCPU is done; `Err` if it failed.
pub(super) fn run_vcpu<B: Backend>(
    m: &Arc<Machine<B>>,
    mut vcpu: AxVCpu<VCpu<B>>,
) -> Result<(), String> {
    let id = vcpu.id().vcpu_id;
    vcpu.bind().map_err(|e| format!("bind: {e}"))?;
    m.run.bound(true);
    let result = loop {
        if m.run.is_done() {
            break Ok(());
        }
        if id != 0 && m.start_waiting[id].load(Ordering::Acquire) {
            break Ok(());
        }
        if let Err(e) = deliver(m, &mut vcpu, id) {
            break Err(e);
        }
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) => break Err(format!("run: {e} (rip {:#x})", vcpu.pc().unwrap_or(0))),
        };
        // Before the exit is served: an EOI it carries must know whether the guest took
        // the interrupt in flight.
        note_taken(m, &vcpu, id);
        m.run.exits.count(&exit);
        match handle(m, &mut vcpu, id, exit) {
            Ok(Next::Run) => {}
            Ok(Next::Stop) | Ok(Next::Off) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    hal::disarm_timer();
    let unbound = vcpu.unbind().map_err(|e| format!("unbind: {e}"));
    m.run.bound(false);
    result.and(unbound)
}

/// CPU `cpu`'s job for the whole run (posted once at boot): runs each vCPU a start-up IPI
/// made for it, and sleeps in `sti; hlt` in between (woken by the start and by the end of
/// the run).
pub(super) fn secondary<B: Backend>(m: &Arc<Machine<B>>, cpu: usize) {
    loop {
        if m.run.is_done() {
            return;
        }
        let ready = m.starting.get(cpu).and_then(|s| s.lock().take());
        let Some(vcpu) = ready else {
            hal::idle();
            continue;
        };
        m.start_waiting[cpu].store(false, Ordering::Release);
        if let Err(why) = run_vcpu(m, vcpu) {
            say::<X86<B>>(format_args!("linux: FAIL vCPU {cpu}: {why}"));
            m.finish();
            return;
        }
    }
}

/// The interrupt in flight to vCPU `id` was taken if the backend holds nothing pending.
fn note_taken<B: Backend>(m: &Machine<B>, vcpu: &AxVCpu<VCpu<B>>, id: usize) {
    if !vcpu.arch().has_pending_interrupt() {
        let mut l = m.lapics[id].lock();
        if l.in_flight() {
            l.taken();
        }
    }
}

/// Brings vCPU `id`'s interrupt sources up to now and gives the backend the next
/// interrupt if it holds none (one at a time: see `lapic`); arms this CPU's host timer for
/// the nearest deadline.
fn deliver<B: Backend>(
    m: &Machine<B>,
    vcpu: &mut AxVCpu<VCpu<B>>,
    id: usize,
) -> Result<(), String> {
    let now = hal::now_ns();
    let held = vcpu.arch().has_pending_interrupt();
    let mut l = lapic_now(m, id, now, held);
    let mut inject = if held { None } else { l.next() };
    let mut deadline = l.deadline();
    let extint = id == 0 && l.extint();
    drop(l);
    if id == 0 {
        let mut d = m.devices.lock();
        let pit = d.tick(now);
        if inject.is_none() && !held && extint {
            inject = d.pic.ack();
        }
        deadline = earliest(deadline, pit);
    }
    if let Some(v) = inject {
        vcpu.arch_mut()
            .and_then(|a| a.inject_interrupt(usize::from(v)))
            .map_err(|e| format!("inject {v:#x}: {e}"))?;
    }
    match deadline {
        Some(t) => hal::arm_timer_ns(t.saturating_sub(hal::now_ns())),
        None => hal::disarm_timer(),
    }
    Ok(())
}

/// vCPU `id`'s local APIC brought up to host time `now` (its timer), locked; its
/// interrupt in flight counted as taken if the backend no longer `held` it.
fn lapic_now<B: Backend>(
    m: &Machine<B>,
    id: usize,
    now: u64,
    held: bool,
) -> spin::MutexGuard<'_, Lapic> {
    let mut l = m.lapics[id].lock();
    l.tick(now);
    if l.in_flight() && !held {
        l.taken();
    }
    l
}

fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Serves one exit.
fn handle<B: Backend>(
    m: &Machine<B>,
    vcpu: &mut AxVCpu<VCpu<B>>,
    id: usize,
    exit: AxVCpuExitReason,
) -> Result<Next, String> {
    let e = |e: axvcpu::VCpuError| format!("{e}");
    let in_apic = |a: usize| (lapic::BASE..lapic::BASE + 0x1000).contains(&a);
    match exit {
        AxVCpuExitReason::IoRead { port, width } => {
            let v = io_read(m, id, port.0, width.size());
            vcpu.complete_read(v & width.mask()).map_err(e)?;
        }
        AxVCpuExitReason::IoWrite { port, data, .. } => io_write(m, id, port.0, data as u8),
        AxVCpuExitReason::MmioRead { addr, width, .. } => {
            let a = addr.as_usize();
            let v = if in_apic(a) {
                u64::from(m.lapics[id].lock().read(a - lapic::BASE, hal::now_ns()))
            } else {
                width.mask()
            };
            vcpu.complete_read(v & width.mask()).map_err(e)?;
        }
        AxVCpuExitReason::MmioWrite { addr, data, .. } => {
            let a = addr.as_usize();
            if in_apic(a) {
                m.lapics[id]
                    .lock()
                    .write(a - lapic::BASE, data as u32, hal::now_ns());
            }
        }
        AxVCpuExitReason::SendIPI {
            target_cpu,
            target_cpu_aux,
            send_to_all,
            send_to_self,
            vector,
        } => {
            let Ok(vector) = u8::try_from(vector) else {
                return Ok(Next::Run);
            };
            for t in 0..m.vcpus() {
                let to = if send_to_all {
                    t != id || send_to_self
                } else if send_to_self {
                    t == id
                } else {
                    m.lapics[t]
                        .lock()
                        .accepts(target_cpu as u8, target_cpu_aux == 1)
                };
                if !to {
                    continue;
                }
                if vector < 16 {
                    // An NMI IPI (Linux's backtrace and last-resort stop): not modelled.
                    m.nmis_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                m.lapics[t].lock().request(vector);
                m.ipis.fetch_add(1, Ordering::Relaxed);
                if t != id {
                    m.kick(t);
                }
            }
        }
        AxVCpuExitReason::CpuUp {
            target_cpu,
            entry_point,
            ..
        } => start_cpu(m, target_cpu as usize, entry_point)?,
        AxVCpuExitReason::SysRegRead { addr, .. } => match addr.0 as u32 {
            // The guest's TSC is the host's.
            MSR_TSC => {
                // SAFETY: reads the TSC.
                let tsc = unsafe { core::arch::x86_64::_rdtsc() };
                vcpu.complete_read(tsc).map_err(e)?;
            }
            MSR_APIC_BASE => {
                let bsp = if id == 0 { 1 << 8 } else { 0 };
                vcpu.complete_read(lapic::BASE as u64 | (1 << 11) | bsp)
                    .map_err(e)?;
            }
            MSR_TSC_DEADLINE => {
                let v = m.lapics[id].lock().tsc_deadline();
                vcpu.complete_read(v).map_err(e)?;
            }
            msr => gp(m, vcpu, msr)?,
        },
        AxVCpuExitReason::SysRegWrite { addr, value } if addr.0 as u32 == MSR_TSC_DEADLINE => {
            let at = tsc_to_ns(value);
            m.lapics[id].lock().write_tsc_deadline(value, at);
        }
        // The APIC stays where it is, enabled, in xAPIC mode (CPUID hides x2APIC).
        AxVCpuExitReason::SysRegWrite { addr, .. } if addr.0 as u32 == MSR_APIC_BASE => {}
        AxVCpuExitReason::SysRegWrite { addr, .. } => gp(m, vcpu, addr.0 as u32)?,
        AxVCpuExitReason::Halt => {
            if !B::interrupts_enabled(vcpu.arch()) {
                // `hlt` with interrupts off: nothing but an NMI or INIT wakes it. vCPU 0:
                // the power-off; a secondary: offline (or stopped for the power-off).
                if id != 0 {
                    return Ok(Next::Off);
                }
                if !m.run.is_done() {
                    m.run.powered_off(true);
                }
                m.finish();
                return Ok(Next::Stop);
            }
            if vcpu.state() == VCpuState::Blocked {
                sleep(m, vcpu, id);
            }
        }
        AxVCpuExitReason::Hypercall { .. } => {
            vcpu.set_return_value(usize::MAX).map_err(e)?;
        }
        AxVCpuExitReason::SystemDown => {
            // A triple fault or a write to the shutdown port: a reset.
            m.run.powered_off(false);
            m.finish();
            return Ok(Next::Stop);
        }
        AxVCpuExitReason::Kicked | AxVCpuExitReason::ExternalInterrupt { .. } => {}
        other => return Err(format!("unexpected exit {other:?}")),
    }
    if m.run.is_done() {
        m.finish();
        return Ok(Next::Stop);
    }
    Ok(Next::Run)
}

/// INIT and a start-up IPI for vCPU `target`: a new vCPU in real mode at the SIPI's
/// address, its local APIC reset, handed to its CPU's [`secondary`] job (the one running
/// there, if any, makes way). A start that cannot be made is reported and ignored: Linux
/// then says the CPU did not come up.
fn start_cpu<B: Backend>(
    m: &Machine<B>,
    target: usize,
    entry: GuestPhysAddr,
) -> Result<(), String> {
    if target == 0 || target >= m.vcpus() {
        return Ok(());
    }
    let made = AxVCpu::<VCpu<B>>::new(m.vm_id, target, ()).and_then(|mut v| {
        // SAFETY: the machine's nested page table, which maps only the guest's RAM and
        // outlives every vCPU loop (`boot` frees it once `bound` is back at 0).
        unsafe { v.set_ept_root(m.npt_root) }?;
        v.set_entry(entry)?;
        v.setup(Setup {
            boot: Boot::RealMode,
            stack_top: 0,
            stack_stride: 0,
        })?;
        Ok(v)
    });
    let vcpu = match made {
        Ok(v) => v,
        Err(err) => {
            say::<X86<B>>(format_args!(
                "linux: vCPU {target} not started at {:#x}: {err}",
                entry.as_usize()
            ));
            return Ok(());
        }
    };
    *m.lapics[target].lock() = Lapic::new(target as u32);
    let old = m.handles[target].lock().replace(vcpu.handle());
    *m.starting[target].lock() = Some(vcpu);
    m.start_waiting[target].store(true, Ordering::Release);
    if let Some(old) = old {
        old.kick();
    }
    hal::wake(target);
    Ok(())
}

/// A halted vCPU's CPU sleeps until the vCPU has an interrupt to take: its local APIC
/// timer's or the PIT's deadline (the host timer armed for it), or another CPU's kick
/// (an IPI for it, an 8259 interrupt for vCPU 0, a new start, the end of the run).
fn sleep<B: Backend>(m: &Machine<B>, vcpu: &AxVCpu<VCpu<B>>, id: usize) {
    m.run.slept();
    // The guest waits: show a prompt it left unfinished.
    if let Some(partial) = m.devices.lock().uart.show_partial_line() {
        hal::CONSOLE.write_bytes(partial);
    }
    let held = vcpu.arch().has_pending_interrupt();
    loop {
        if m.run.is_done() || m.start_waiting[id].load(Ordering::Acquire) {
            return;
        }
        let now = hal::now_ns();
        let l = lapic_now(m, id, now, held);
        if held || l.has_deliverable() {
            return;
        }
        let mut deadline = l.deadline();
        let extint = id == 0 && l.extint();
        drop(l);
        if id == 0 {
            let mut d = m.devices.lock();
            let pit = d.tick(now);
            if extint && d.pic.pending() {
                return;
            }
            // Wakes to look at the console's input again.
            deadline = earliest(earliest(deadline, pit), Some(now + hal::CONSOLE_POLL_NS));
        }
        match deadline {
            Some(t) if t <= now => return,
            Some(t) => hal::arm_timer_ns(t - now),
            None => hal::disarm_timer(),
        }
        // SAFETY: `sti; hlt` sleeps until an interrupt (the timer just armed, or a kick
        // IPI, pending already if it came since the checks above); its handler sends EOI;
        // interrupts go off again after.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
}

/// The host time (ns) at which the TSC reads `tsc` (now, for a TSC already past).
fn tsc_to_ns(tsc: u64) -> u64 {
    // SAFETY: reads the TSC.
    let now_tsc = unsafe { core::arch::x86_64::_rdtsc() };
    let now = hal::now_ns();
    let ahead = u128::from(tsc.saturating_sub(now_tsc)) * 1_000_000 / u128::from(hal::tsc_per_ms());
    now.saturating_add(u64::try_from(ahead).unwrap_or(u64::MAX))
}

/// #GP(0) for an MSR the hypervisor does not give.
fn gp<B: Backend>(m: &Machine<B>, vcpu: &mut AxVCpu<VCpu<B>>, msr: u32) -> Result<(), String> {
    m.devices.lock().gp(msr);
    vcpu.inject_exception(GP, Some(0))
        .map_err(|e| format!("#GP for MSR {msr:#x}: {e}"))
}

fn io_read<B: Backend>(m: &Machine<B>, id: usize, port: u16, size: usize) -> u64 {
    let v = m.devices.lock().read(port, size, hal::now_ns());
    if id != 0 && concerns_vcpu0(port) {
        m.kick(0);
    }
    v
}

fn io_write<B: Backend>(m: &Machine<B>, id: usize, port: u16, v: u8) {
    let out = m.devices.lock().write(port, v, hal::now_ns());
    if out.reset {
        m.run.powered_off(false);
    }
    if let Some(line) = out.line {
        m.run.console_line(&line.text, hal::now_ns());
        hal::CONSOLE.write_bytes(line.unshown());
        hal::CONSOLE.write_bytes(b"\n");
    }
    if id != 0 && concerns_vcpu0(port) {
        m.kick(0);
    }
}
