//! A hosted hypervisor with two vCPUs on two threads, as a user of the library writes one.
//!
//! vCPU 0's guest greets through the serial port, writes 21 to an MMIO device and reads
//! back its answer, reports it with a hypercall, and rings the device's doorbell. vCPU 1's
//! guest loads an interrupt table, enables interrupts and halts; its thread sleeps (no
//! polling) until the doorbell makes vCPU 0's thread inject an interrupt, and the guest's
//! handler acknowledges it to the device. Then a table of the exits taken.
//!
//! `cargo run -p axvcpu-kvm --release --example demo`

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axvcpu_kvm::{AxVCpuExitReason as Exit, GuestVCpu, HostedVm, KvmVCpu, Port, VCpuHandle};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Guest RAM: 256 KiB at 64 KiB (the boot tables take its first pages).
const RAM: u64 = 0x1_0000;
const RAM_SIZE: usize = 0x4_0000;
/// Where each vCPU's program is loaded and starts; the stacks are at the top of RAM.
const ENTRY0: u64 = 0x2_0000;
const ENTRY1: u64 = 0x2_1000;
/// vCPU 1's interrupt table: the IDTR (limit, base) and the IDT.
const IDTR: u64 = 0x2_1800;
const IDT: u64 = 0x2_2000;
/// The interrupt vCPU 1 takes.
const VECTOR: usize = 0x40;

/// The device, unmapped guest-physical memory: a register (+0), twice the register (+4),
/// the doorbell (+8) and the acknowledgement (+0xc).
const DEVICE: usize = 0xd000_0000;
const SERIAL: u16 = 0x3f8;
/// vCPU 0's hypercall: "here is the device's answer" (number in `eax`, argument in `rdi`).
const HC_REPORT: u64 = 1;

/// vCPU 0's program: x86-64 machine code (assembled, then pasted here).
const GUEST0: [u8; 73] = [
    0x48, 0x8d, 0x35, 0x2f, 0x00, 0x00, 0x00, //  lea rsi, [rip + msg]
    0x66, 0xba, 0xf8, 0x03, //                    mov dx, 0x3f8
    0xac, //                                      next: lodsb
    0x84, 0xc0, //                                test al, al
    0x74, 0x03, //                                jz done
    0xee, //                                      out dx, al           -> IoWrite
    0xeb, 0xf8, //                                jmp next
    0xbf, 0x00, 0x00, 0x00, 0xd0, //              done: mov edi, DEVICE
    0xc7, 0x07, 0x15, 0x00, 0x00, 0x00, //        mov dword [rdi], 21  -> MmioWrite
    0x8b, 0x47, 0x04, //                          mov eax, [rdi + 4]   -> MmioRead
    0x89, 0xc7, //                                mov edi, eax
    0xb8, 0x01, 0x00, 0x00, 0x00, //              mov eax, HC_REPORT
    0xe7, 0xf6, //                                out 0xf6, eax        -> Hypercall
    0xbf, 0x08, 0x00, 0x00, 0xd0, //              mov edi, DEVICE + 8
    0xc7, 0x07, 0x01, 0x00, 0x00, 0x00, //        mov dword [rdi], 1   -> MmioWrite (doorbell)
    0xf4, //                                      hlt                  -> Halt
    b'h', b'e', b'l', b'l', b'o', b' ', b'f', b'r', b'o', b'm', b' ', //   msg:
    b'v', b'C', b'P', b'U', b' ', b'0', b'\n', 0,
];

/// vCPU 1's program; its interrupt handler is at `ENTRY1 + 0x10`.
const GUEST1: [u8; 28] = [
    0x0f, 0x01, 0x1c, 0x25, 0x00, 0x18, 0x02, 0x00, // lidt [IDTR]
    0xfb, //                                          sti
    0xf4, //                                          hlt                 -> Halt
    0xeb, 0xf4, //                                    jmp back to lidt
    0x00, 0x00, 0x00, 0x00, //                        (padding)
    0xbf, 0x0c, 0x00, 0x00, 0xd0, //                  handler: mov edi, DEVICE + 0xc
    0xc7, 0x07, 0x01, 0x00, 0x00, 0x00, //            mov dword [rdi], 1  -> MmioWrite (ack)
    0xf4, //                                          hlt
];

/// A 64-bit interrupt gate to `handler` in the boot tables' code segment.
fn interrupt_gate(handler: u64) -> [u8; 16] {
    let mut gate = [0u8; 16];
    gate[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    gate[2..4].copy_from_slice(&axvcpu_kvm::boot::CODE_SELECTOR.to_le_bytes());
    gate[5] = 0x8e; // present, ring 0, interrupt gate
    gate[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    gate[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    gate
}

/// What both threads report: exits by kind (count, total time in `run`), and a log.
#[derive(Default)]
struct Report {
    exits: BTreeMap<&'static str, (u32, Duration)>,
    log: Vec<String>,
    serial: Vec<u8>,
}

impl Report {
    fn note(&mut self, exit: &Exit, took: Duration) {
        let entry = self.exits.entry(exit.name()).or_default();
        entry.0 += 1;
        entry.1 += took;
    }
}

fn run(vcpu: &mut GuestVCpu<'_>, report: &Mutex<Report>) -> Result<Exit> {
    let t = Instant::now();
    let exit = vcpu.run()?;
    report
        .lock()
        .map_err(|_| "a thread panicked")?
        .note(&exit, t.elapsed());
    Ok(exit)
}

fn say(report: &Mutex<Report>, line: String) -> Result<()> {
    report
        .lock()
        .map_err(|_| "a thread panicked")?
        .log
        .push(line);
    Ok(())
}

/// vCPU 0's thread: the serial port, the device, the hypercall, and the doorbell that
/// interrupts vCPU 1.
fn vcpu0(vm: &HostedVm, other: VCpuHandle<KvmVCpu>, report: &Mutex<Report>) -> Result<()> {
    let mut vcpu = vm.new_vcpu(0, ENTRY0, RAM + RAM_SIZE as u64)?;
    vcpu.bind()?;
    let mut register = 0;
    loop {
        match run(&mut vcpu, report)? {
            Exit::IoWrite {
                port: Port(SERIAL),
                data,
                ..
            } => report
                .lock()
                .map_err(|_| "poisoned")?
                .serial
                .push(data as u8),
            Exit::MmioWrite { addr, data, .. } if addr.as_usize() == DEVICE => {
                say(report, format!("vCPU 0: device register <- {data}"))?;
                register = data;
            }
            Exit::MmioRead { addr, .. } if addr.as_usize() == DEVICE + 4 => {
                say(report, format!("vCPU 0: device reads {}", register * 2))?;
                vcpu.complete_read(register * 2)?;
            }
            Exit::Hypercall {
                nr: HC_REPORT,
                args,
            } => say(
                report,
                format!("vCPU 0: hypercall: the answer is {}", args[0]),
            )?,
            Exit::MmioWrite { addr, .. } if addr.as_usize() == DEVICE + 8 => {
                say(
                    report,
                    format!("vCPU 0: doorbell: interrupt {VECTOR:#x} to vCPU 1"),
                )?;
                other.inject_interrupt(VECTOR)?;
            }
            Exit::Halt => break,
            other => return Err(format!("vCPU 0: unexpected exit {other:?}").into()),
        }
    }
    vcpu.unbind()?;
    Ok(())
}

/// vCPU 1's thread: halts until interrupted, sleeping in `wait_while_blocked`.
fn vcpu1(mut vcpu: GuestVCpu<'_>, report: &Mutex<Report>) -> Result<()> {
    vcpu.bind()?;
    loop {
        match run(&mut vcpu, report)? {
            Exit::Halt => {
                let t = Instant::now();
                if !vcpu.wait_while_blocked(Duration::from_secs(10)) {
                    return Err("vCPU 1 was not woken within 10 s".into());
                }
                say(
                    report,
                    format!("vCPU 1: halted, woken after {:.2?}", t.elapsed()),
                )?;
            }
            Exit::MmioWrite { addr, .. } if addr.as_usize() == DEVICE + 0xc => {
                say(report, "vCPU 1: the interrupt handler ran".into())?;
                break;
            }
            other => return Err(format!("vCPU 1: unexpected exit {other:?}").into()),
        }
    }
    vcpu.unbind()?;
    Ok(())
}

fn main() -> Result<()> {
    let vm = HostedVm::new(RAM, RAM_SIZE)?;
    vm.load(ENTRY0, &GUEST0)?;
    vm.load(ENTRY1, &GUEST1)?;
    let mut idtr = [0u8; 10];
    idtr[0..2].copy_from_slice(&(256u16 * 16 - 1).to_le_bytes());
    idtr[2..10].copy_from_slice(&IDT.to_le_bytes());
    vm.load(IDTR, &idtr)?;
    vm.load(IDT + VECTOR as u64 * 16, &interrupt_gate(ENTRY1 + 0x10))?;

    let report = Mutex::new(Report::default());
    // vCPU 1 is made here, so vCPU 0's thread can be given its handle; vCPUs are bound and
    // run on the thread that runs them.
    let second = vm.new_vcpu(1, ENTRY1, RAM + RAM_SIZE as u64 - 0x4000)?;
    let handle = second.handle();
    let started = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let t1 = s.spawn(|| vcpu1(second, &report));
        let t0 = s.spawn(|| vcpu0(&vm, handle, &report));
        t0.join().map_err(|_| "vCPU 0's thread panicked")??;
        t1.join().map_err(|_| "vCPU 1's thread panicked")??;
        Ok(())
    })?;
    let elapsed = started.elapsed();

    let report = report.into_inner().map_err(|_| "a thread panicked")?;
    println!("--- guest serial output ---");
    print!("{}", String::from_utf8_lossy(&report.serial));
    println!("--- hypervisor log ---");
    for line in &report.log {
        println!("{line}");
    }
    println!("--- exits ---");
    println!("{:<12} {:>6} {:>14}", "kind", "count", "mean latency");
    let mut total = 0;
    for (kind, (count, time)) in &report.exits {
        println!("{kind:<12} {count:>6} {:>14.2?}", *time / *count);
        total += count;
    }
    println!(
        "{total} exits, {} VM ioctls, two vCPUs, {elapsed:.2?} in all",
        vm.kvm_vm().ioctl_count()
    );
    Ok(())
}
