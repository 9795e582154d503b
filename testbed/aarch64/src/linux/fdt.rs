//! The guest's device tree, written by the hypervisor with `vm-fdt` (rust-vmm's FDT
//! writer; `no_std` with its `alloc` feature): memory, the CPUs with PSCI, PSCI over `hvc`,
//! the GICv2, the architected timer, the PL011 and its clock, `chosen` (command line,
//! console, initrd). Just what Linux needs to reach user space (the shared notes'
//! measured list).

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use vm_fdt::{Error, FdtWriter};

use super::devices::{GICC_IPA, GICD_IPA, UART_IPA, UART_SPI};

/// The guest's machine, as the tree describes it.
#[derive(Debug, Clone, Copy)]
pub struct Machine<'a> {
    /// Guest RAM: start, size.
    pub ram: (u64, u64),
    /// vCPUs (MPIDR Aff0 = 0..cpus).
    pub cpus: u32,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// The initrd's guest-physical start and end, if any.
    pub initrd: Option<(u64, u64)>,
}

const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;
/// Interrupt specifier types.
const SPI: u32 = 0;
const PPI: u32 = 1;
/// Level-sensitive, active high.
const LEVEL_HIGH: u32 = 4;

/// Writes the tree.
pub fn build(m: &Machine) -> Result<Vec<u8>, Error> {
    let mut f = FdtWriter::new()?;
    let root = f.begin_node("")?;
    f.property_string("compatible", "linux,dummy-virt")?;
    f.property_string("model", "axvcpu-aarch64 guest")?;
    f.property_u32("#address-cells", 2)?;
    f.property_u32("#size-cells", 2)?;
    f.property_u32("interrupt-parent", GIC_PHANDLE)?;

    axvcpu_testbed::fdt::chosen(&mut f, m.cmdline, &uart_path(), m.initrd)?;
    axvcpu_testbed::fdt::memory(&mut f, m.ram.0, m.ram.1)?;

    let cpus = f.begin_node("cpus")?;
    f.property_u32("#address-cells", 1)?;
    f.property_u32("#size-cells", 0)?;
    for i in 0..m.cpus {
        let cpu = f.begin_node(&alloc::format!("cpu@{i}"))?;
        f.property_string("device_type", "cpu")?;
        f.property_string("compatible", "arm,armv8")?;
        f.property_u32("reg", i)?;
        f.property_string("enable-method", "psci")?;
        f.end_node(cpu)?;
    }
    f.end_node(cpus)?;

    let psci = f.begin_node("psci")?;
    f.property_string_list(
        "compatible",
        vec!["arm,psci-1.0".to_string(), "arm,psci-0.2".to_string()],
    )?;
    f.property_string("method", "hvc")?;
    f.end_node(psci)?;

    let gic = f.begin_node(&alloc::format!("intc@{GICD_IPA:x}"))?;
    f.property_string("compatible", "arm,cortex-a15-gic")?;
    f.property_u32("#interrupt-cells", 3)?;
    f.property_null("interrupt-controller")?;
    f.property_array_u64("reg", &[GICD_IPA as u64, 0x1000, GICC_IPA as u64, 0x2000])?;
    f.property_phandle(GIC_PHANDLE)?;
    f.end_node(gic)?;

    // PPI flags carry the CPUs the interrupt reaches (bits 15:8).
    let ppi_flags = (((1u32 << m.cpus) - 1) << 8) | LEVEL_HIGH;
    let timer = f.begin_node("timer")?;
    f.property_string("compatible", "arm,armv8-timer")?;
    let mut irqs = Vec::new();
    // Secure physical, non-secure physical, virtual, hypervisor timers: PPIs 13, 14, 11, 10.
    for ppi in [13, 14, 11, 10] {
        irqs.extend([PPI, ppi, ppi_flags]);
    }
    f.property_array_u32("interrupts", &irqs)?;
    f.end_node(timer)?;

    let clock = f.begin_node("apb-pclk")?;
    f.property_string("compatible", "fixed-clock")?;
    f.property_u32("#clock-cells", 0)?;
    f.property_u32("clock-frequency", 24_000_000)?;
    f.property_string("clock-output-names", "clk24mhz")?;
    f.property_phandle(CLOCK_PHANDLE)?;
    f.end_node(clock)?;

    let uart = f.begin_node(&uart_path()[1..])?;
    f.property_string_list(
        "compatible",
        vec!["arm,pl011".to_string(), "arm,primecell".to_string()],
    )?;
    f.property_array_u64("reg", &[UART_IPA as u64, 0x1000])?;
    f.property_array_u32("interrupts", &[SPI, UART_SPI, LEVEL_HIGH])?;
    f.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    f.property_string_list(
        "clock-names",
        vec!["uartclk".to_string(), "apb_pclk".to_string()],
    )?;
    f.end_node(uart)?;

    f.end_node(root)?;
    f.finish()
}

fn uart_path() -> String {
    alloc::format!("/pl011@{UART_IPA:x}")
}
