//! What the vCPU loops of an OS-guest hypervisor (a testbed built to boot Linux) share,
//! whatever the architecture: [`Run`] (how the run ends, exit counts, the console's
//! user-space marker, halts slept, vCPUs inside their loops, the closing line) and
//! [`VCpuSlots`] (vCPUs not started or stopped, and those a CPU-start call made ready for
//! their CPU to take).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use axvcpu::{AxArchVCpu, AxVCpu, VCpuHandle};

use crate::exits::ExitCounts;

/// The guest's console line that says its init reached user space.
pub const USERSPACE_MARKER: &[u8] = b"AXVCPU-USERSPACE";

/// The run's shared state.
#[derive(Debug)]
pub struct Run {
    t0: u64,
    done: AtomicBool,
    clean: AtomicBool,
    reset: AtomicBool,
    /// Exits by kind, counted by every vCPU's loop.
    pub exits: ExitCounts,
    halts_slept: AtomicU64,
    bound: AtomicUsize,
    userspace_ns: AtomicU64,
}

/// How a run ended, for [`Run::closing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The guest powered off cleanly.
    PoweredOff,
    /// The guest asked for a reset or reported a failure.
    Reset,
    /// Another vCPU failed (it said why).
    OtherFailed,
}

impl Run {
    /// A run that started at `t0_ns`.
    pub const fn new(t0_ns: u64) -> Self {
        Self {
            t0: t0_ns,
            done: AtomicBool::new(false),
            clean: AtomicBool::new(false),
            reset: AtomicBool::new(false),
            exits: ExitCounts::new(),
            halts_slept: AtomicU64::new(0),
            bound: AtomicUsize::new(0),
            userspace_ns: AtomicU64::new(0),
        }
    }

    /// Whether the run is over (every loop leaves).
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Ends the run (a failure unless [`powered_off`](Self::powered_off) said otherwise).
    pub fn stop(&self) {
        self.done.store(true, Ordering::Release);
    }

    /// Ends the run and kicks every vCPU of `handles` out of its guest, so each loop sees
    /// the end.
    pub fn stop_all<A: AxArchVCpu>(&self, handles: &[VCpuHandle<A>]) {
        self.stop();
        for h in handles {
            h.kick();
        }
    }

    /// The guest powered off: cleanly, or asking for a reset / reporting a failure.
    pub fn powered_off(&self, clean: bool) {
        self.reset.store(!clean, Ordering::Release);
        self.clean.store(clean, Ordering::Release);
        self.stop();
    }

    /// Whether the guest powered off cleanly.
    pub fn clean(&self) -> bool {
        self.clean.load(Ordering::Acquire)
    }

    /// A vCPU entered (`true`) or left its loop, bound to its CPU.
    pub fn bound(&self, entered: bool) {
        if entered {
            self.bound.fetch_add(1, Ordering::AcqRel);
        } else {
            self.bound.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// vCPUs inside their loops.
    pub fn vcpus_bound(&self) -> usize {
        self.bound.load(Ordering::Acquire)
    }

    /// A halted vCPU's CPU went to sleep.
    pub fn slept(&self) {
        self.halts_slept.fetch_add(1, Ordering::Relaxed);
    }

    /// A finished console line at `now_ns`: records the first user-space marker.
    pub fn console_line(&self, line: &[u8], now_ns: u64) {
        if line.starts_with(USERSPACE_MARKER) {
            let _ =
                self.userspace_ns
                    .compare_exchange(0, now_ns, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// What vCPU 0's loop returned, once the run is over: if vCPU 0 turned itself off
    /// (`Ok(Some(vcpu))`), the other vCPUs may still power the guest off, so this waits
    /// for the run's end before dropping it. (The boot CPU runs vCPU 0's loop itself, not
    /// its mailbox, so vCPU 0 cannot be started again.)
    pub fn after_boot_vcpu<A: AxArchVCpu>(
        &self,
        ended: Result<Option<AxVCpu<A>>, String>,
    ) -> Result<(), String> {
        if let Ok(Some(off)) = ended {
            while !self.is_done() {
                core::hint::spin_loop();
            }
            drop(off);
            return Ok(());
        }
        ended.map(drop)
    }

    /// Drops `table` (the guest's nested page table) once every vCPU has left its loop
    /// (they were kicked out of their guests); if one has not within a second of `now`'s
    /// clock, the table is kept for ever rather than freed under a vCPU that may still
    /// use it (the machine powers off next anyway).
    pub fn free_when_out<T>(&self, table: T, now: fn() -> u64) {
        let t0 = now();
        while self.vcpus_bound() != 0 && now().saturating_sub(t0) < 1_000_000_000 {
            core::hint::spin_loop();
        }
        if self.vcpus_bound() == 0 {
            drop(table);
        } else {
            core::mem::forget(table);
        }
    }

    /// The closing line at `now_ns`: `linux: <how> after N ms; user space reached at N ms;
    /// halts slept N; exits: Kind n, ...`. `ended` is vCPU 0's loop's result; `off` names
    /// the clean power-off (`PSCI SYSTEM_OFF`), `reset` the reset.
    pub fn closing(&self, now_ns: u64, ended: Result<(), &str>, off: &str, reset: &str) -> String {
        self.closing_with(now_ns, ended, off, reset, "")
    }

    /// [`closing`](Self::closing) with the hypervisor's own figures (`; name n; ...`)
    /// before the exits, which stay last (`cargo xtask bench` reads what follows them).
    pub fn closing_with(
        &self,
        now_ns: u64,
        ended: Result<(), &str>,
        off: &str,
        reset: &str,
        extra: &str,
    ) -> String {
        let ms = now_ns.saturating_sub(self.t0) / 1_000_000;
        let userspace = match self.userspace_ns.load(Ordering::Acquire) {
            0 => String::from("never"),
            t => format!("at {} ms", t.saturating_sub(self.t0) / 1_000_000),
        };
        let how = match (ended, self.clean(), self.reset.load(Ordering::Acquire)) {
            (Ok(()), true, _) => format!("guest powered off ({off})"),
            (Ok(()), false, true) => format!("FAIL {reset}"),
            (Ok(()), false, false) => String::from("FAIL another vCPU failed"),
            (Err(e), _, _) => format!("FAIL vCPU 0: {e}"),
        };
        format!(
            "linux: {how} after {ms} ms; user space reached {userspace}; halts slept {}{extra}; exits:{}",
            self.halts_slept.load(Ordering::Relaxed),
            self.exits.summary()
        )
    }
}

/// A CPU's state as the guest's firmware interface reports it (SBI HSM, PSCI
/// `AFFINITY_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuState {
    /// Running (its loop has it).
    Started,
    /// Not started, or stopped itself.
    Stopped,
    /// Started by the guest, not yet taken by its CPU.
    StartPending,
}

/// The vCPUs outside their loops: parked (not started, or stopped) and starting (made
/// ready by the guest's CPU-start call, until their CPU takes them).
#[derive(Debug)]
pub struct VCpuSlots<A: AxArchVCpu> {
    parked: spin::Mutex<Vec<Option<AxVCpu<A>>>>,
    starting: spin::Mutex<Vec<Option<AxVCpu<A>>>>,
}

impl<A: AxArchVCpu> VCpuSlots<A> {
    /// Every vCPU of `vcpus` parked (`None`: one already taken, vCPU 0 say).
    pub fn new(vcpus: Vec<Option<AxVCpu<A>>>) -> Self {
        let n = vcpus.len();
        Self {
            parked: spin::Mutex::new(vcpus),
            starting: spin::Mutex::new((0..n).map(|_| None).collect()),
        }
    }

    /// Takes parked vCPU `id` (to start it).
    pub fn unpark(&self, id: usize) -> Option<AxVCpu<A>> {
        self.parked.lock().get_mut(id).and_then(Option::take)
    }

    /// Parks vCPU `id` (stopped, or its start failed).
    pub fn park(&self, id: usize, v: AxVCpu<A>) {
        if let Some(slot) = self.parked.lock().get_mut(id) {
            *slot = Some(v);
        }
    }

    /// Makes vCPU `id` ready for its CPU.
    pub fn ready(&self, id: usize, v: AxVCpu<A>) {
        if let Some(slot) = self.starting.lock().get_mut(id) {
            *slot = Some(v);
        }
    }

    /// Takes the vCPU made ready for CPU `id`.
    pub fn take_ready(&self, id: usize) -> Option<AxVCpu<A>> {
        self.starting.lock().get_mut(id).and_then(Option::take)
    }

    /// vCPU `id`'s state (`None`: no such vCPU).
    pub fn state(&self, id: usize) -> Option<CpuState> {
        let parked = self.parked.lock().get(id).map(Option::is_some)?;
        let starting = self.starting.lock().get(id).is_some_and(Option::is_some);
        Some(match (parked, starting) {
            (true, _) => CpuState::Stopped,
            (false, true) => CpuState::StartPending,
            (false, false) => CpuState::Started,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_line_says_how_the_run_ended() {
        let r = Run::new(1_000_000_000);
        r.exits.count(&axvcpu::AxVCpuExitReason::Halt);
        r.console_line(b"not yet", 2_000_000_000);
        r.console_line(b"AXVCPU-USERSPACE: init reached user space", 3_000_000_000);
        r.console_line(b"AXVCPU-USERSPACE: again", 4_000_000_000);
        r.slept();
        assert!(!r.is_done());
        r.powered_off(true);
        assert!(r.is_done() && r.clean());
        assert_eq!(
            r.closing(5_000_000_000, Ok(()), "SBI SRST shutdown", "reset"),
            "linux: guest powered off (SBI SRST shutdown) after 4000 ms; user space reached at 2000 ms; halts slept 1; exits: Halt 1"
        );
        r.powered_off(false);
        assert!(r
            .closing(5_000_000_000, Ok(()), "x", "guest reset")
            .starts_with("linux: FAIL guest reset after"));
        assert!(r
            .closing(5_000_000_000, Err("boom"), "x", "y")
            .starts_with("linux: FAIL vCPU 0: boom"));
        assert!(r
            .closing_with(5_000_000_000, Err("boom"), "x", "y", "; IPIs 3")
            .contains("halts slept 1; IPIs 3; exits: Halt 1"));
        let quiet = Run::new(0);
        quiet.stop();
        assert!(quiet
            .closing(0, Ok(()), "x", "y")
            .contains("FAIL another vCPU failed after 0 ms; user space reached never"));
    }
}
