//! The devices the hypervisor emulates for the guest through MMIO exits: the GICv2
//! distributor (the guest never touches the host's) and a PL011 UART. The GIC's CPU
//! interface is not here: the guest's GICC is the hardware's virtual CPU interface (GICV),
//! mapped by stage 2.

/// The guest's GIC distributor (guest physical, QEMU virt's address).
pub const GICD_IPA: usize = 0x0800_0000;
/// The guest's GIC CPU interface: the host's GICV is mapped here.
pub const GICC_IPA: usize = 0x0801_0000;
/// The guest's PL011.
pub const UART_IPA: usize = 0x0900_0000;
/// The PL011's interrupt, as an SPI number (INTID 33).
pub const UART_SPI: u32 = 1;

/// Interrupt lines the distributor has: SGIs, PPIs and 32 SPIs (`GICD_TYPER.ITLinesNumber`
/// = 1).
const LINES: usize = 64;
/// CPU interfaces the distributor serves.
pub const MAX_CPUS: usize = 8;

/// A GICv2 distributor's programmable state. The interrupts themselves are delivered by
/// the backend's virtual CPU interface: only SGIs (`GICD_SGIR`) come out of here; the
/// virtual timer is the backend's own. Pending, active and group registers read as zero
/// and ignore writes.
#[derive(Debug, Clone)]
pub struct Gicd {
    cpus: usize,
    ctlr: u32,
    /// Enable bits: SGIs and PPIs per CPU (banked), SPIs shared.
    enabled_banked: [u32; MAX_CPUS],
    enabled_spi: u32,
    /// Priorities: SGIs and PPIs per CPU, SPIs shared.
    priority_banked: [[u8; 32]; MAX_CPUS],
    priority_spi: [u8; LINES - 32],
    targets_spi: [u8; LINES - 32],
    cfg: [u32; LINES / 16],
}

/// SGIs a `GICD_SGIR` write sends: a mask of target CPUs and the SGI number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sgi {
    /// Bit n: CPU interface n.
    pub targets: u8,
    /// 0..16.
    pub id: u32,
}

impl Gicd {
    /// The distributor of a machine with `cpus` CPU interfaces (at most [`MAX_CPUS`]).
    pub fn new(cpus: usize) -> Self {
        Self {
            cpus: cpus.clamp(1, MAX_CPUS),
            ctlr: 0,
            enabled_banked: [0xffff; MAX_CPUS],
            enabled_spi: 0,
            priority_banked: [[0; 32]; MAX_CPUS],
            priority_spi: [0; LINES - 32],
            targets_spi: [0; LINES - 32],
            // SGIs are edge-triggered (ICFGR0 reads 0xaaaa_aaaa), PPIs level.
            cfg: [0xaaaa_aaaa, 0, 0, 0],
        }
    }

    /// A read of `width` bytes at `offset` by CPU interface `cpu`.
    pub fn read(&self, cpu: usize, offset: usize, width: usize) -> u64 {
        let cpu = cpu.min(MAX_CPUS - 1);
        let word = match offset & !3 {
            0x000 => self.ctlr,
            // CPUNumber (7:5), ITLinesNumber (4:0).
            0x004 => ((self.cpus as u32 - 1) << 5) | (LINES as u32 / 32 - 1),
            // GIC-400's implementer and revision.
            0x008 => 0x0200_143b,
            0x100 | 0x180 => self.enabled_banked[cpu],
            0x104 | 0x184 => self.enabled_spi,
            o @ 0x400..0x440 => u32::from_le_bytes(self.priority_word(cpu, o - 0x400)),
            // ITARGETSR0..7 (SGIs and PPIs): the reading CPU's own interface, in every byte.
            0x800..0x820 => 0x0101_0101 << cpu,
            o @ 0x820..0x840 => {
                let i = o - 0x820;
                u32::from_le_bytes([
                    self.targets_spi[i],
                    self.targets_spi[i + 1],
                    self.targets_spi[i + 2],
                    self.targets_spi[i + 3],
                ])
            }
            o @ 0xc00..0xc10 => self.cfg[(o - 0xc00) / 4],
            // ICPIDR2: architecture version 2.
            0xfe8 => 0x2b,
            _ => 0,
        };
        let shift = (offset & 3) * 8;
        let mask = if width >= 4 {
            u32::MAX
        } else {
            (1u32 << (width * 8)) - 1
        };
        ((word >> shift) & mask) as u64
    }

    fn priority_word(&self, cpu: usize, at: usize) -> [u8; 4] {
        let mut w = [0; 4];
        for (k, b) in w.iter_mut().enumerate() {
            *b = self.priority(cpu, at + k);
        }
        w
    }

    fn priority(&self, cpu: usize, line: usize) -> u8 {
        if line < 32 {
            self.priority_banked[cpu][line]
        } else {
            self.priority_spi.get(line - 32).copied().unwrap_or(0)
        }
    }

    /// A write of `width` bytes of `value` at `offset` by CPU interface `cpu`; returns the
    /// SGIs it sends.
    pub fn write(&mut self, cpu: usize, offset: usize, width: usize, value: u64) -> Option<Sgi> {
        let cpu = cpu.min(MAX_CPUS - 1);
        let v = value as u32;
        match offset {
            0x000 => self.ctlr = v & 1,
            0x100 => self.enabled_banked[cpu] |= v,
            0x104 => self.enabled_spi |= v,
            0x180 => self.enabled_banked[cpu] &= !v | 0xffff, // SGIs stay enabled
            0x184 => self.enabled_spi &= !v,
            o @ 0x400..0x440 => {
                for k in 0..width.min(4) {
                    let line = o - 0x400 + k;
                    let b = (v >> (8 * k)) as u8;
                    if line < 32 {
                        self.priority_banked[cpu][line] = b;
                    } else if let Some(p) = self.priority_spi.get_mut(line - 32) {
                        *p = b;
                    }
                }
            }
            o @ 0x820..0x840 => {
                for k in 0..width.min(4) {
                    if let Some(t) = self.targets_spi.get_mut(o - 0x820 + k) {
                        *t = (v >> (8 * k)) as u8;
                    }
                }
            }
            // ICFGR0 (SGIs) is read-only.
            o @ 0xc04..0xc10 if width == 4 => self.cfg[(o - 0xc00) / 4] = v,
            0xf00 => return Some(self.sgir(cpu, v)),
            _ => {}
        }
        None
    }

    /// `GICD_SGIR`: TargetListFilter (25:24), CPUTargetList (23:16), SGIINTID (3:0).
    fn sgir(&self, cpu: usize, v: u32) -> Sgi {
        let all = ((1u32 << self.cpus) - 1) as u8;
        let targets = match (v >> 24) & 3 {
            0 => (v >> 16) as u8 & all,
            1 => all & !(1 << cpu),
            2 => 1 << cpu,
            _ => 0,
        };
        Sgi {
            targets: if self.ctlr & 1 != 0 { targets } else { 0 },
            id: v & 0xf,
        }
    }
}

/// A PL011 as far as Linux's `amba-pl011` driver and its console need: transmit always
/// ready and never full, nothing to receive, the PrimeCell identification registers, the
/// control registers read back as written. Its interrupt never asserts (the driver's
/// transmit path writes while the FIFO is not full, which is always).
#[derive(Debug, Clone, Default)]
pub struct Pl011 {
    regs: [u32; 16],
    line: alloc::vec::Vec<u8>,
}

/// PL011 registers.
const DR: usize = 0x000;
const FR: usize = 0x018;
/// FR: transmit FIFO empty, receive FIFO empty.
const FR_TXFE: u32 = 1 << 7;
const FR_RXFE: u32 = 1 << 4;
/// PeriphID0..3 (PL011 r1p4), PCellID0..3.
const IDS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

impl Pl011 {
    /// A read at `offset`.
    pub fn read(&self, offset: usize) -> u64 {
        let v = match offset {
            FR => FR_TXFE | FR_RXFE,
            0xfe0..0x1000 => IDS.get((offset - 0xfe0) / 4).copied().unwrap_or(0),
            // IBRD .. DMACR
            0x024..=0x048 => self.regs.get((offset - 0x024) / 4).copied().unwrap_or(0),
            _ => 0,
        };
        v as u64
    }

    /// A write at `offset`; returns a finished line of output (without its `\n`).
    pub fn write(&mut self, offset: usize, value: u64) -> Option<alloc::vec::Vec<u8>> {
        match offset {
            DR => {
                let b = value as u8;
                match b {
                    b'\n' => return Some(core::mem::take(&mut self.line)),
                    b'\r' => {}
                    _ => {
                        self.line.push(b);
                        if self.line.len() >= 4096 {
                            return Some(core::mem::take(&mut self.line));
                        }
                    }
                }
            }
            0x024..=0x048 => {
                if let Some(r) = self.regs.get_mut((offset - 0x024) / 4) {
                    *r = value as u32;
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cpu_reads_its_own_interface_in_the_banked_targets_registers() {
        let d = Gicd::new(2);
        assert_eq!(d.read(0, 0x800, 4), 0x0101_0101);
        assert_eq!(d.read(1, 0x81c, 4), 0x0202_0202);
        assert_eq!(d.read(1, 0x801, 1), 0x02);
        // TYPER: 2 CPUs, 64 lines; ICPIDR2: GICv2.
        assert_eq!(d.read(0, 0x004, 4), (1 << 5) | 1);
        assert_eq!(d.read(0, 0xfe8, 4) >> 4 & 0xf, 2);
    }

    #[test]
    fn sgir_targets_by_list_others_or_self_once_enabled() {
        let mut d = Gicd::new(2);
        assert_eq!(
            d.write(0, 0xf00, 4, 1 << 16 | 3),
            Some(Sgi { targets: 0, id: 3 })
        );
        d.write(0, 0x000, 4, 1);
        assert_eq!(
            d.write(0, 0xf00, 4, 2 << 16 | 5),
            Some(Sgi { targets: 2, id: 5 })
        );
        assert_eq!(
            d.write(1, 0xf00, 4, 1 << 24 | 1),
            Some(Sgi { targets: 1, id: 1 })
        );
        assert_eq!(
            d.write(1, 0xf00, 4, 2 << 24 | 15),
            Some(Sgi { targets: 2, id: 15 })
        );
        // A CPU the machine does not have is not a target.
        assert_eq!(
            d.write(0, 0xf00, 4, 0xfc << 16),
            Some(Sgi { targets: 0, id: 0 })
        );
        assert_eq!(d.write(0, 0x100, 4, 1), None);
    }

    #[test]
    fn enables_priorities_and_targets_are_kept_per_bank() {
        let mut d = Gicd::new(2);
        d.write(0, 0x100, 4, 1 << 27);
        assert_eq!(d.read(0, 0x100, 4), 0xffff | 1 << 27);
        assert_eq!(d.read(1, 0x100, 4), 0xffff);
        d.write(1, 0x180, 4, u64::MAX);
        assert_eq!(d.read(1, 0x100, 4), 0xffff, "SGIs stay enabled");
        d.write(0, 0x41b, 1, 0xa0);
        assert_eq!(d.read(0, 0x418, 4), 0xa000_0000);
        assert_eq!(d.read(1, 0x418, 4), 0);
        d.write(1, 0x821, 1, 2);
        assert_eq!(d.read(0, 0x820, 4), 0x0200);
        d.write(0, 0xc00, 4, 0);
        assert_eq!(d.read(0, 0xc00, 4), 0xaaaa_aaaa, "ICFGR0 is read-only");
    }

    #[test]
    fn the_uart_is_always_ready_identifies_itself_and_gives_whole_lines() {
        let mut u = Pl011::default();
        assert_eq!(u.read(0x018), 0x90);
        let id: Vec<u64> = (0..8).map(|i| u.read(0xfe0 + 4 * i)).collect();
        assert_eq!(id, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        assert_eq!(u.write(0x000, b'o' as u64), None);
        assert_eq!(u.write(0x000, b'k' as u64), None);
        assert_eq!(u.write(0x000, b'\r' as u64), None);
        assert_eq!(u.write(0x000, b'\n' as u64).as_deref(), Some(&b"ok"[..]));
        u.write(0x030, 0x301);
        assert_eq!(u.read(0x030), 0x301);
    }
}
