//! The guest's device tree, written by the hypervisor with `vm-fdt`: memory, the harts
//! (each with an ISA string naming only what the guest may use, and its interrupt
//! controller), the PLIC, the NS16550A console on PLIC source 10, `chosen`
//! (command line, console, initrd). What Linux 6.12 needs to reach user space.

use alloc::string::{String, ToString};
use alloc::vec;

use alloc::vec::Vec;

use vm_fdt::{Error, FdtWriter};

use super::{plic, PLIC_GPA, UART_GPA, UART_IRQ};

/// The guest's machine, as the tree describes it.
#[derive(Debug, Clone, Copy)]
pub struct Machine<'a> {
    /// Guest RAM: start, size.
    pub ram: (u64, u64),
    /// Harts (ids 0..cpus).
    pub cpus: u32,
    /// Whether the guest may use Sstc (`stimecmp`: the backend turned `henvcfg.STCE` on).
    pub sstc: bool,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// The initrd's guest-physical start and end, if any.
    pub initrd: Option<(u64, u64)>,
}

/// QEMU virt's CLINT (described, not emulated: see `build`).
const CLINT_GPA: usize = 0x0200_0000;
/// QEMU virt's test finisher (described, not emulated: see `build`).
const FINISHER_GPA: usize = 0x0010_0000;
/// The `time` CSR's frequency on QEMU virt (the guest reads the host's `time`).
const TIMEBASE_HZ: u32 = 10_000_000;
/// The NS16550A's input clock, as QEMU virt's.
const UART_CLOCK_HZ: u32 = 3_686_400;

/// The guest's ISA string: RV64GC, the counters (`time` and `instret` read directly,
/// `cycle` through the hypervisor) and `sstc` when the backend gives it. Nothing the
/// backend turns off in `henvcfg` (Zicbom, Zicboz, Svpbmt, Svadu), no vector.
pub fn isa(sstc: bool) -> String {
    let mut s = String::from("rv64imafdc_zicntr_zicsr_zifencei");
    if sstc {
        s += "_sstc";
    }
    s
}

/// Writes the tree.
pub fn build(m: &Machine) -> Result<Vec<u8>, Error> {
    let mut f = FdtWriter::new()?;
    let root = f.begin_node("")?;
    f.property_string("compatible", "riscv-virtio")?;
    f.property_string("model", "axvcpu-riscv guest")?;
    f.property_u32("#address-cells", 2)?;
    f.property_u32("#size-cells", 2)?;

    axvcpu_testbed::fdt::chosen(&mut f, m.cmdline, &uart_path(), m.initrd)?;
    axvcpu_testbed::fdt::memory(&mut f, m.ram.0, m.ram.1)?;

    let cpus = f.begin_node("cpus")?;
    f.property_u32("#address-cells", 1)?;
    f.property_u32("#size-cells", 0)?;
    f.property_u32("timebase-frequency", TIMEBASE_HZ)?;
    let isa = isa(m.sstc);
    let mut extensions: Vec<String> = ["i", "m", "a", "f", "d", "c", "zicntr", "zicsr", "zifencei"]
        .iter()
        .map(|e| e.to_string())
        .collect();
    if m.sstc {
        extensions.push("sstc".into());
    }
    for i in 0..m.cpus {
        let cpu = f.begin_node(&alloc::format!("cpu@{i}"))?;
        f.property_string("device_type", "cpu")?;
        f.property_u32("reg", i)?;
        f.property_string("status", "okay")?;
        f.property_string("compatible", "riscv")?;
        f.property_string("riscv,isa", &isa)?;
        f.property_string("riscv,isa-base", "rv64i")?;
        f.property_string_list("riscv,isa-extensions", extensions.clone())?;
        f.property_string("mmu-type", "riscv,sv39")?;
        let intc = f.begin_node("interrupt-controller")?;
        f.property_u32("#interrupt-cells", 1)?;
        f.property_null("interrupt-controller")?;
        f.property_string("compatible", "riscv,cpu-intc")?;
        f.property_phandle(i + 1)?;
        f.end_node(intc)?;
        f.end_node(cpu)?;
    }
    f.end_node(cpus)?;

    let soc = f.begin_node("soc")?;
    f.property_string("compatible", "simple-bus")?;
    f.property_u32("#address-cells", 2)?;
    f.property_u32("#size-cells", 2)?;
    f.property_null("ranges")?;
    let plic_phandle = m.cpus + 1;
    let pl = f.begin_node(&alloc::format!("plic@{PLIC_GPA:x}"))?;
    f.property_string_list(
        "compatible",
        vec!["sifive,plic-1.0.0".to_string(), "riscv,plic0".to_string()],
    )?;
    f.property_u32("#address-cells", 0)?;
    f.property_u32("#interrupt-cells", 1)?;
    f.property_null("interrupt-controller")?;
    f.property_array_u64("reg", &[PLIC_GPA as u64, plic::SIZE as u64])?;
    f.property_u32("riscv,ndev", plic::SOURCES as u32 - 1)?;
    // As QEMU virt: contexts 2n and 2n + 1 are hart n's machine (11) and supervisor (9)
    // external interrupts. Linux takes only the supervisor ones.
    let contexts: Vec<u32> = (0..m.cpus).flat_map(|i| [i + 1, 11, i + 1, 9]).collect();
    f.property_array_u32("interrupts-extended", &contexts)?;
    f.property_phandle(plic_phandle)?;
    f.end_node(pl)?;
    // The core-local interruptor QEMU virt has: firmware's (M-mode) timer and IPIs. Not the
    // guest's (an S-mode Linux uses SBI for both); there for OpenSBI when plain QEMU boots
    // this tree (`cargo xtask bench linux-riscv64`).
    let clint = f.begin_node(&alloc::format!("clint@{CLINT_GPA:x}"))?;
    f.property_string_list(
        "compatible",
        vec!["sifive,clint0".to_string(), "riscv,clint0".to_string()],
    )?;
    f.property_array_u64("reg", &[CLINT_GPA as u64, 0x10000])?;
    let clint_irqs: Vec<u32> = (0..m.cpus).flat_map(|i| [i + 1, 3, i + 1, 7]).collect();
    f.property_array_u32("interrupts-extended", &clint_irqs)?;
    f.end_node(clint)?;
    // QEMU virt's test finisher, also described for plain QEMU's OpenSBI (its system
    // reset). No `syscon-poweroff` node points at it, so Linux powers off through SBI.
    let finisher = f.begin_node(&alloc::format!("test@{FINISHER_GPA:x}"))?;
    f.property_string_list(
        "compatible",
        vec![
            "sifive,test1".to_string(),
            "sifive,test0".to_string(),
            "syscon".to_string(),
        ],
    )?;
    f.property_array_u64("reg", &[FINISHER_GPA as u64, 0x1000])?;
    f.end_node(finisher)?;
    let uart = f.begin_node(&uart_path()[5..])?;
    f.property_string("compatible", "ns16550a")?;
    f.property_array_u64("reg", &[UART_GPA as u64, 0x100])?;
    f.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    f.property_u32("interrupt-parent", plic_phandle)?;
    f.property_u32("interrupts", UART_IRQ as u32)?;
    f.end_node(uart)?;
    f.end_node(soc)?;

    f.end_node(root)?;
    f.finish()
}

fn uart_path() -> String {
    alloc::format!("/soc/serial@{UART_GPA:x}")
}
