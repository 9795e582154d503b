// Soak: many vCPUs, many exits, interrupts injected and kicks sent from another thread the
// whole time. Every interrupt injected is counted and every interrupt the guest takes is
// counted (by the guest, in its memory); at the end none may be lost and none taken more
// often than injected (the merge rule of `AxArchVCpu::inject_interrupt`: a vector injected
// again before the guest takes it merges). Memory and file descriptors must stay flat.
//
// `cargo xtask soak [--exits N]` (or `cargo run --release -p axvcpu-kvm --example soak --
// --exits N`): 8 vCPUs of one VM on two host threads, N exits each (default 1,000,000).
// Exits 0 when every check holds, 1 otherwise.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axvcpu_kvm::{AxVCpuExitReason, GuestVCpu, HostedVm, Port};

const VCPUS: usize = 8;
const THREADS: usize = 2;
/// Exits one vCPU makes per turn on its thread before the next vCPU's turn.
const TURN: u64 = 2_000;
/// Vectors injected at random: few enough that the same one is often injected again before
/// the guest takes it (merges), many enough that several are pending at once.
const VECTORS: std::ops::Range<usize> = 32..48;
/// Vectors injected again only once the guest has taken the last one: each must be taken
/// exactly as often as injected, so one lost injection shows.
const EXACT: std::ops::Range<usize> = 48..56;
/// Exits each vCPU makes after the injector stopped, its interrupts open, so whatever is
/// still pending is taken before the counts are compared.
const DRAIN: u64 = 200;
/// Guest RAM; each vCPU has its own region (code, IDT, handlers, counters, stack).
const RAM_BASE: u64 = 0x1_0000;
const RAM_SIZE: usize = 0x8_0000;
const REGION_BASE: u64 = 0x4_0000;
const REGION_SIZE: u64 = 0x8000;
/// Offsets in a region.
const IDTR: u64 = 0x100;
const STUBS: u64 = 0x200;
const STUB_SIZE: u64 = 16;
const COUNTERS: u64 = 0x1000;
const IDT: u64 = 0x2000;
/// The port the guest's loop writes (one exit per iteration).
const LOOP_PORT: u16 = 0x80;

fn region(i: usize) -> u64 {
    REGION_BASE + i as u64 * REGION_SIZE
}

fn counter_gpa(i: usize, vector: usize) -> u64 {
    region(i) + COUNTERS + 8 * vector as u64
}

/// vCPU `i`'s region, as bytes: its code (`lidt; sti; 1: out 0x80, al; jmp 1b`), IDTR, a
/// handler per vector 32..=255 (`lock inc qword [its counter]; iretq`) and the IDT.
/// Machine code is written out here because the guest is this small and fixed.
fn region_image(i: usize) -> Vec<u8> {
    let base = region(i);
    let mut img = vec![0u8; (IDT + 256 * 16) as usize];
    let abs32 = |v: u64| (v as u32).to_le_bytes();
    let mut code = vec![0x0f, 0x01, 0x1c, 0x25]; // lidt [abs32]
    code.extend_from_slice(&abs32(base + IDTR));
    code.push(0xfb); // sti
    code.extend_from_slice(&[0xe6, LOOP_PORT as u8]); // out 0x80, al
    code.extend_from_slice(&[0xeb, 0xfc]); // jmp back to the out
    img[..code.len()].copy_from_slice(&code);
    let idt_base = base + IDT;
    let limit = (256 * 16 - 1) as u16;
    img[IDTR as usize..IDTR as usize + 2].copy_from_slice(&limit.to_le_bytes());
    img[IDTR as usize + 2..IDTR as usize + 10].copy_from_slice(&idt_base.to_le_bytes());
    for v in 32..256usize {
        let stub_off = STUBS + (v as u64 - 32) * STUB_SIZE;
        let mut stub = vec![0xf0, 0x48, 0xff, 0x04, 0x25]; // lock inc qword [abs32]
        stub.extend_from_slice(&abs32(counter_gpa(i, v)));
        stub.extend_from_slice(&[0x48, 0xcf]); // iretq
        img[stub_off as usize..stub_off as usize + stub.len()].copy_from_slice(&stub);
        let h = base + stub_off;
        let low = (h & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((h >> 16) & 0xffff) << 48;
        let gate = (IDT + v as u64 * 16) as usize;
        img[gate..gate + 8].copy_from_slice(&low.to_le_bytes());
        img[gate + 8..gate + 16].copy_from_slice(&(h >> 32).to_le_bytes());
    }
    img
}

/// xorshift64*: the injector's choices, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What the injector did for one (vCPU, vector).
#[derive(Clone, Copy, Default)]
struct Injected {
    count: u64,
    /// The guest's taken-counter read just before the last injection: the vector must be
    /// taken after it (the last injection, or one merged with it, was not lost).
    taken_before_last: u64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn read_counter(vm: &HostedVm, i: usize, v: usize) -> Result<u64, String> {
    let mut b = [0u8; 8];
    vm.read(counter_gpa(i, v), &mut b)
        .map_err(|e| format!("reading vCPU {i}'s counter of vector {v}: {e}"))?;
    Ok(u64::from_le_bytes(b))
}

/// Runs `vcpus` in turns on this thread until each made `exits` exits; then, once `drain`
/// is set (the injector has stopped), [`DRAIN`] more exits each.
fn worker(
    vcpus: &mut [(usize, GuestVCpu<'_>)],
    exits: u64,
    made: &[AtomicU64],
    drain: &AtomicBool,
) -> Result<(), String> {
    turns(vcpus, exits, made)?;
    while !drain.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let drained: Vec<AtomicU64> = (0..VCPUS).map(|_| AtomicU64::new(0)).collect();
    turns(vcpus, DRAIN, &drained)
}

/// Runs `vcpus` in turns until each made `exits` exits (counted in `made`).
fn turns(
    vcpus: &mut [(usize, GuestVCpu<'_>)],
    exits: u64,
    made: &[AtomicU64],
) -> Result<(), String> {
    loop {
        let mut all_done = true;
        for (i, v) in vcpus.iter_mut() {
            let left = exits.saturating_sub(made[*i].load(Ordering::Relaxed));
            if left == 0 {
                continue;
            }
            all_done = false;
            v.bind().map_err(|e| format!("vCPU {i}: bind: {e}"))?;
            for _ in 0..left.min(TURN) {
                match v.run().map_err(|e| format!("vCPU {i}: run: {e}"))? {
                    AxVCpuExitReason::IoWrite {
                        port: Port(LOOP_PORT),
                        ..
                    }
                    | AxVCpuExitReason::Kicked => {}
                    other => return Err(format!("vCPU {i}: unexpected exit {other:?}")),
                }
                made[*i].fetch_add(1, Ordering::Relaxed);
            }
            v.unbind().map_err(|e| format!("vCPU {i}: unbind: {e}"))?;
        }
        if all_done {
            return Ok(());
        }
    }
}

fn main() {
    let mut exits: u64 = 1_000_000;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, n] = args.as_slice() {
        if flag == "--exits" {
            exits = n.parse().unwrap_or(exits);
        }
    }
    match soak(exits) {
        Ok(()) => println!("soak: ok"),
        Err(why) => {
            eprintln!("soak: FAILED: {why}");
            std::process::exit(1);
        }
    }
}

fn soak(exits: u64) -> Result<(), String> {
    let vm = HostedVm::new(RAM_BASE, RAM_SIZE).map_err(|e| format!("VM: {e}"))?;
    let mut vcpus = Vec::new();
    for i in 0..VCPUS {
        vm.load(region(i), &region_image(i))
            .map_err(|e| format!("loading vCPU {i}'s region: {e}"))?;
        let v = vm
            .new_vcpu(i, region(i), region(i) + REGION_SIZE)
            .map_err(|e| format!("vCPU {i}: {e}"))?;
        vcpus.push((i, v));
    }
    let handles: Vec<_> = vcpus.iter().map(|(_, v)| v.handle()).collect();
    let made: Vec<AtomicU64> = (0..VCPUS).map(|_| AtomicU64::new(0)).collect();
    let injected = Mutex::new(vec![[Injected::default(); 256]; VCPUS]);
    let (kicks, stop, drain) = (
        AtomicU64::new(0),
        AtomicBool::new(false),
        AtomicBool::new(false),
    );
    let (mut fds_before, mut rss_before, mut fds_after, mut rss_after) = (0, 0, 0, 0);
    println!(
        "soak: {VCPUS} vCPUs of one VM on {THREADS} threads, {exits} exits each; vectors \
         {}..{} injected at random, {}..{} one at a time, and kicks, from a third thread",
        VECTORS.start, VECTORS.end, EXACT.start, EXACT.end
    );
    let started = Instant::now();
    let mut per_thread: Vec<Vec<(usize, GuestVCpu<'_>)>> =
        (0..THREADS).map(|_| Vec::new()).collect();
    for (n, v) in vcpus.into_iter().enumerate() {
        per_thread[n % THREADS].push(v);
    }
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let workers: Vec<_> = per_thread
            .into_iter()
            .map(|mut mine| {
                let (made, drain) = (&made, &drain);
                s.spawn(move || worker(&mut mine, exits, made, drain))
            })
            .collect();
        let injector = s.spawn(|| -> Result<(), String> {
            let mut rng = Rng(0x5eed_50a6);
            let mut last_report = Instant::now();
            while !stop.load(Ordering::Acquire) {
                let i = (rng.next() % VCPUS as u64) as usize;
                if rng.next() % 16 == 0 {
                    handles[i].kick();
                    kicks.fetch_add(1, Ordering::Relaxed);
                } else if rng.next() % 4 == 0 {
                    let v = EXACT.start + (rng.next() % EXACT.len() as u64) as usize;
                    let mut inj = injected.lock().map_err(|_| "poisoned")?;
                    // Only once the last one was taken: nothing to merge with.
                    if read_counter(&vm, i, v)? == inj[i][v].count {
                        handles[i]
                            .inject_interrupt(v)
                            .map_err(|e| format!("inject {v} into vCPU {i}: {e}"))?;
                        inj[i][v].count += 1;
                    }
                } else {
                    let v = VECTORS.start + (rng.next() % VECTORS.len() as u64) as usize;
                    let before = read_counter(&vm, i, v)?;
                    handles[i]
                        .inject_interrupt(v)
                        .map_err(|e| format!("inject {v} into vCPU {i}: {e}"))?;
                    let mut inj = injected.lock().map_err(|_| "poisoned")?;
                    inj[i][v].count += 1;
                    inj[i][v].taken_before_last = before;
                }
                if last_report.elapsed() > Duration::from_secs(5) {
                    last_report = Instant::now();
                    let total: u64 = made.iter().map(|m| m.load(Ordering::Relaxed)).sum();
                    println!(
                        "soak: {total} of {} exits, {:.0} s",
                        exits * VCPUS as u64,
                        started.elapsed().as_secs_f64()
                    );
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            Ok(())
        });
        // The memory baseline once the run is warm (every structure allocated).
        while made.iter().map(|m| m.load(Ordering::Relaxed)).sum::<u64>()
            < exits * VCPUS as u64 / 10
            && workers.iter().any(|w| !w.is_finished())
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        (rss_before, fds_before) = (rss_kib(), open_fds());
        while made.iter().map(|m| m.load(Ordering::Relaxed)).sum::<u64>() < exits * VCPUS as u64
            && workers.iter().any(|w| !w.is_finished())
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Measured while every vCPU still lives, like the baseline.
        (rss_after, fds_after) = (rss_kib(), open_fds());
        stop.store(true, Ordering::Release);
        let mut results = vec![injector
            .join()
            .unwrap_or_else(|_| Err("the injector panicked".into()))];
        drain.store(true, Ordering::Release);
        results.extend(
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err("a worker panicked".into()))),
        );
        results
    });
    let elapsed = started.elapsed().as_secs_f64();
    for r in results {
        r?;
    }
    let total: u64 = made.iter().map(|m| m.load(Ordering::Relaxed)).sum();
    let injected = injected.into_inner().map_err(|_| "poisoned")?;
    let (mut sent, mut taken_total, mut merged) = (0u64, 0u64, 0u64);
    let mut problems = Vec::new();
    for (i, per_vector) in injected.iter().enumerate() {
        for v in EXACT {
            let (inj, taken) = (per_vector[v].count, read_counter(&vm, i, v)?);
            sent += inj;
            taken_total += taken;
            if taken != inj {
                problems.push(format!(
                    "vCPU {i} vector {v} (injected only once the last was taken): taken {taken} times, injected {inj}"
                ));
            }
        }
        for v in VECTORS {
            let inj = per_vector[v];
            let taken = read_counter(&vm, i, v)?;
            sent += inj.count;
            taken_total += taken;
            merged += inj.count.saturating_sub(taken);
            if taken > inj.count {
                problems.push(format!(
                    "vCPU {i} vector {v}: taken {taken} times, injected {}",
                    inj.count
                ));
            }
            if inj.count > 0 && taken <= inj.taken_before_last {
                problems.push(format!(
                    "vCPU {i} vector {v}: the last injection was never taken (taken {taken}, {} before it)",
                    inj.taken_before_last
                ));
            }
        }
    }
    println!(
        "soak: {total} exits in {elapsed:.1} s ({:.0} exits/s); {sent} interrupts injected, \
         {taken_total} taken, {merged} merged with one still pending; {} kicks",
        total as f64 / elapsed,
        kicks.load(Ordering::Relaxed)
    );
    println!(
        "soak: RSS {rss_before} KiB after warm-up, {rss_after} KiB at the end; open file \
         descriptors {fds_before} after warm-up, {fds_after} at the end"
    );
    if fds_after != fds_before {
        problems.push(format!(
            "open file descriptors went from {fds_before} to {fds_after}"
        ));
    }
    if rss_after > rss_before + 4096 {
        problems.push(format!("RSS grew by {} KiB", rss_after - rss_before));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
