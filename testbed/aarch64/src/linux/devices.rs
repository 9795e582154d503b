//! The devices the hypervisor emulates for the guest through MMIO exits: the GICv2
//! distributor (the guest never touches the host's) and where the PL011 UART
//! ([`axvcpu_testbed::pl011`]) is. The GIC's CPU
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

    /// The CPU interface SPI `spi` goes to now: the lowest one its `GICD_ITARGETSR` byte
    /// names, if the distributor and the SPI are enabled (else the interrupt waits).
    pub fn spi_target(&self, spi: u32) -> Option<usize> {
        let i = spi as usize;
        let targets = *self.targets_spi.get(i)?;
        let enabled = self.ctlr & 1 != 0 && self.enabled_spi & (1 << i) != 0;
        (enabled && targets != 0).then(|| targets.trailing_zeros() as usize)
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
    fn an_spi_goes_to_its_first_target_once_enabled() {
        let mut d = Gicd::new(2);
        assert_eq!(d.spi_target(1), None);
        d.write(0, 0x821, 1, 0b10);
        d.write(0, 0x104, 4, 1 << 1);
        assert_eq!(d.spi_target(1), None, "distributor off");
        d.write(0, 0x000, 4, 1);
        assert_eq!(d.spi_target(1), Some(1));
        d.write(0, 0x821, 1, 0b11);
        assert_eq!(d.spi_target(1), Some(0));
        d.write(0, 0x184, 4, 1 << 1);
        assert_eq!(d.spi_target(1), None, "disabled");
        assert_eq!(d.spi_target(40), None, "no such SPI");
    }
}
