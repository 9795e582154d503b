//! A guest that greets through the serial port, makes a hypercall, talks to an MMIO device,
//! takes an interrupt and powers off; then a table of the exits it took.
//!
//! `cargo run -p axvcpu-kvm --release --example demo`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axvcpu::{AxVCpuExitReason as E, GuestPhysAddr, Port};
use axvcpu_conformance::contract::{HC_DONE, HC_READY, HC_REPORT};
use axvcpu_conformance::TestVm;
use axvcpu_kvm_testkit::guests::{self, HC_ADD};
use axvcpu_kvm_testkit::{KvmTestVm, IRQ_VECTOR, MMIO_BASE};

const SERIAL: u16 = 0x3f8;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vm = KvmTestVm::new(0, guests::demo())?;
    let mut vcpu = vm.new_vcpu(0, vm.entry())?;
    vcpu.bind()?;

    let mut serial = Vec::new();
    let mut log = Vec::new();
    let mut device_reg = 0u64;
    let mut table: BTreeMap<&'static str, (usize, Duration)> = BTreeMap::new();
    let ioctls_before = vcpu.arch().ioctl_count();
    let mut exits = 0u64;
    loop {
        let t = Instant::now();
        let exit = vcpu.run()?;
        let took = t.elapsed();
        exits += 1;
        let entry = table.entry(exit.name()).or_default();
        entry.0 += 1;
        entry.1 += took;
        match exit {
            E::IoWrite {
                port: Port(SERIAL),
                data,
                ..
            } => serial.push(data as u8),
            E::Hypercall { nr: HC_ADD, args } => {
                let sum = args[0].wrapping_add(args[1]);
                log.push(format!("hypercall add({}, {}) = {sum}", args[0], args[1]));
                vcpu.set_return_value(sum as usize)?;
            }
            E::Hypercall {
                nr: HC_REPORT,
                args,
            } => log.push(format!("guest reports {}", args[0])),
            E::Hypercall { nr: HC_READY, .. } => {
                log.push(format!(
                    "guest is ready for interrupts: injecting vector {IRQ_VECTOR:#x}"
                ));
                vcpu.inject_interrupt(IRQ_VECTOR as usize)?;
            }
            E::MmioWrite { addr, data, .. } if addr == GuestPhysAddr::from(MMIO_BASE as usize) => {
                log.push(format!("device: register <- {data}"));
                device_reg = data;
            }
            E::MmioRead { addr, .. } => {
                let value = if addr == GuestPhysAddr::from(MMIO_BASE as usize + 4) {
                    device_reg * 2
                } else {
                    0
                };
                log.push(format!("device: read {addr:?} -> {value}"));
                vcpu.complete_read(value)?;
            }
            E::Halt => {}
            E::SystemDown => {
                log.push("guest powered off".into());
                break;
            }
            E::Hypercall { nr: HC_DONE, .. } => break,
            other => return Err(format!("unexpected exit {other:?}").into()),
        }
    }
    let ioctls = vcpu.arch().ioctl_count() - ioctls_before;
    vcpu.unbind()?;

    println!("--- guest serial output ---");
    print!("{}", String::from_utf8_lossy(&serial));
    println!("--- hypervisor log ---");
    for line in &log {
        println!("{line}");
    }
    println!("--- exits ---");
    println!("{:<12} {:>6} {:>14}", "kind", "count", "mean latency");
    for (kind, (count, total)) in &table {
        println!("{kind:<12} {count:>6} {:>14.2?}", *total / *count as u32);
    }
    println!("{exits} exits, {ioctls} ioctls ({:.2} per exit; interrupt injection rides in the synced registers)", ioctls as f64 / exits as f64);
    Ok(())
}
