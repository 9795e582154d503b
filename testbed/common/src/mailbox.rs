//! "Run this job on CPU n": one slot per CPU, posted by any CPU, served by the target's
//! idle loop. A [`Ticket`] is the conformance suite's [`Join`].

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu_conformance::Join;

/// A job for another CPU.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

struct Slot {
    job: spin::Mutex<Option<(Job, Arc<AtomicBool>)>>,
    busy: AtomicBool,
}

/// Mailboxes of `N` CPUs.
pub struct Mailbox<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> core::fmt::Debug for Mailbox<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mailbox").field("cpus", &N).finish()
    }
}

/// Why a job could not be posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostError {
    /// No such CPU.
    NoSuchCpu,
    /// The CPU is running another job.
    Busy,
}

impl<const N: usize> Default for Mailbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Mailbox<N> {
    /// Empty mailboxes.
    pub const fn new() -> Self {
        Self {
            slots: [const {
                Slot {
                    job: spin::Mutex::new(None),
                    busy: AtomicBool::new(false),
                }
            }; N],
        }
    }

    /// Posts `job` to `cpu`. One job per CPU at a time: a CPU still running one is `Busy`.
    pub fn post(&self, cpu: usize, job: Job) -> Result<Ticket, PostError> {
        let slot = self.slots.get(cpu).ok_or(PostError::NoSuchCpu)?;
        if slot
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(PostError::Busy);
        }
        let done = Arc::new(AtomicBool::new(false));
        *slot.job.lock() = Some((job, done.clone()));
        Ok(Ticket { done })
    }

    /// Runs the job posted to `cpu`, if any; returns whether one ran.
    pub fn serve_once(&self, cpu: usize) -> bool {
        let Some(slot) = self.slots.get(cpu) else {
            return false;
        };
        let Some((job, done)) = slot.job.lock().take() else {
            return false;
        };
        job();
        slot.busy.store(false, Ordering::Release);
        done.store(true, Ordering::Release);
        true
    }

    /// `cpu`'s idle loop: serves its jobs forever.
    pub fn serve(&self, cpu: usize) -> ! {
        loop {
            if !self.serve_once(cpu) {
                core::hint::spin_loop();
            }
        }
    }
}

/// The handle of a posted job.
#[derive(Debug)]
pub struct Ticket {
    done: Arc<AtomicBool>,
}

impl Ticket {
    /// Whether the job has finished.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

impl Join for Ticket {
    fn join(self: Box<Self>) -> bool {
        while !self.is_done() {
            core::hint::spin_loop();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;

    static MB: Mailbox<2> = Mailbox::new();

    #[test]
    fn jobs_run_on_the_serving_cpu_once() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let t = MB
            .post(
                1,
                Box::new(move || {
                    h.fetch_add(1, Ordering::SeqCst);
                }),
            )
            .unwrap();
        assert_eq!(MB.post(1, Box::new(|| {})).unwrap_err(), PostError::Busy);
        assert!(MB.post(2, Box::new(|| {})).is_err());
        let server = std::thread::spawn(|| while !MB.serve_once(1) {});
        assert!(Box::new(t).join());
        server.join().unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(!MB.serve_once(1));
    }
}
