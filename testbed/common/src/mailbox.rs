//! "Run this job on CPU n": one slot per CPU, posted by any CPU, served by the target's
//! idle loop. A [`Ticket`] is the conformance suite's [`Join`].

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axvcpu_conformance::Join;

/// A job for another CPU.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// A [`Ticket`]'s state: the job has not finished yet.
const RUNNING: u8 = 0;
/// The job returned.
const FINISHED: u8 = 1;
/// The job did not return (it panicked and unwound: hosted tests only; on bare metal a
/// panic is fatal before this could be seen).
const ABANDONED: u8 = 2;

struct Slot {
    job: spin::Mutex<Option<(Job, Arc<AtomicU8>)>>,
    /// A job is in `job`. The serving CPU polls this, not the lock: a server taking and
    /// dropping the lock in a tight loop can starve the poster for good where CPUs are
    /// interleaved in fixed slices (Bochs runs each CPU a few instructions in turn, so the
    /// poster saw the lock held at every one of its turns: preempt hung there).
    posted: AtomicBool,
    busy: AtomicBool,
}

/// Ends a job's run however the job ends: frees its slot and settles its ticket,
/// [`ABANDONED`] unless [`finish`](Self::finish) says it returned.
struct Settle<'a> {
    busy: &'a AtomicBool,
    state: Arc<AtomicU8>,
    outcome: u8,
}

impl Settle<'_> {
    fn finish(mut self) {
        self.outcome = FINISHED;
    }
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
        self.state.store(self.outcome, Ordering::Release);
    }
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
                    posted: AtomicBool::new(false),
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
        let state = Arc::new(AtomicU8::new(RUNNING));
        *slot.job.lock() = Some((job, state.clone()));
        slot.posted.store(true, Ordering::Release);
        Ok(Ticket { state })
    }

    /// Runs the job posted to `cpu`, if any; returns whether one ran.
    pub fn serve_once(&self, cpu: usize) -> bool {
        let Some(slot) = self.slots.get(cpu) else {
            return false;
        };
        if !slot.posted.load(Ordering::Acquire) {
            return false;
        }
        let Some((job, state)) = slot.job.lock().take() else {
            return false;
        };
        // No new job until this one settles `busy`.
        slot.posted.store(false, Ordering::Release);
        let settle = Settle {
            busy: &slot.busy,
            state,
            outcome: ABANDONED,
        };
        job();
        settle.finish();
        true
    }

    /// `cpu`'s idle loop: serves its jobs forever.
    pub fn serve(&self, cpu: usize) -> ! {
        self.serve_with(cpu, core::hint::spin_loop)
    }

    /// [`serve`](Self::serve), calling `idle` whenever no job is posted. `idle` may sleep
    /// only until the poster wakes it (the testbed's `TestbedArch::wake`, after
    /// [`post`](Self::post)): a job posted between the look and the sleep must end the
    /// sleep at once (a latched wake-up interrupt does).
    pub fn serve_with(&self, cpu: usize, idle: fn()) -> ! {
        loop {
            if !self.serve_once(cpu) {
                idle();
            }
        }
    }
}

/// The handle of a posted job.
#[derive(Debug)]
pub struct Ticket {
    state: Arc<AtomicU8>,
}

impl Ticket {
    /// Whether the job has ended (returned, or abandoned by a panic).
    pub fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) != RUNNING
    }
}

impl Join for Ticket {
    /// Waits for the job to end; `true` if it returned.
    fn join(self: Box<Self>) -> bool {
        loop {
            match self.state.load(Ordering::Acquire) {
                RUNNING => core::hint::spin_loop(),
                state => return state == FINISHED,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;

    #[test]
    fn jobs_run_on_the_serving_cpu_once() {
        static MB: Mailbox<2> = Mailbox::new();
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
        assert_eq!(
            MB.post(2, Box::new(|| {})).unwrap_err(),
            PostError::NoSuchCpu
        );
        assert!(!t.is_done());
        let server = std::thread::spawn(|| while !MB.serve_once(1) {});
        assert!(Box::new(t).join(), "the job returned");
        server.join().unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(!MB.serve_once(1), "nothing left to serve");
        // The slot is free again.
        let again = MB.post(1, Box::new(|| {})).unwrap();
        assert!(MB.serve_once(1));
        assert!(Box::new(again).join());
    }

    #[test]
    fn a_job_that_does_not_return_joins_false_and_frees_its_cpu() {
        static MB: Mailbox<1> = Mailbox::new();
        let t = MB.post(0, Box::new(|| panic!("the job fails"))).unwrap();
        let server = std::thread::spawn(|| MB.serve_once(0));
        assert!(
            server.join().is_err(),
            "the job panicked on the serving CPU"
        );
        assert!(!Box::new(t).join());
        assert!(
            MB.post(0, Box::new(|| {})).is_ok(),
            "the CPU takes jobs again"
        );
    }
}
