//! The MultiProcessor Specification 1.4 table that tells Linux (booted `acpi=off`) its
//! CPUs: a floating pointer and a configuration table with one processor entry per vCPU
//! (local APIC id = vCPU number, vCPU 0 the bootstrap processor) and one ISA bus. No I/O
//! APIC entry: the guest runs `noapic`, its legacy interrupts come from the 8259 through
//! the bootstrap processor's LINT0 (virtual-wire mode, the floating pointer's IMCR bit
//! clear). Linux finds the floating pointer by scanning 0xF0000-0xFFFFF, which the e820
//! map keeps reserved ([`super::loader::zero_page`]).

/// Where the table goes (guest-physical): the floating pointer, then the configuration
/// table right after it.
pub const MPTABLE_GPA: usize = 0xf_0000;
/// The most vCPUs the table describes (its size is fixed by it).
pub const MAX_VCPUS: usize = 8;
/// The bytes [`write()`] fills at most.
pub const SIZE: usize = FLOATING + HEADER + MAX_VCPUS * PROCESSOR + BUS;

const FLOATING: usize = 16;
const HEADER: usize = 44;
const PROCESSOR: usize = 20;
const BUS: usize = 8;
/// Where every local APIC's registers are (the xAPIC default; `lapic::BASE`).
const LAPIC_BASE: u32 = 0xfee0_0000;
/// The local APIC version the processor entries give (the emulated APIC's).
const APIC_VERSION: u8 = 0x14;

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_sub(*b))
}

/// Writes the table for `cpus` vCPUs into `out` (to be copied to [`MPTABLE_GPA`]);
/// returns its length. `cpus` is clamped to 1..=[`MAX_VCPUS`]; `cpu_signature` and
/// `features` are CPUID leaf 1's `eax` and `edx` as the guest sees them.
pub fn write(out: &mut [u8; SIZE], cpus: usize, cpu_signature: u32, features: u32) -> usize {
    out.fill(0);
    let cpus = cpus.clamp(1, MAX_VCPUS);
    let table = MPTABLE_GPA + FLOATING;
    let len = HEADER + cpus * PROCESSOR + BUS;
    // The configuration table.
    let t = &mut out[FLOATING..FLOATING + len];
    t[0..4].copy_from_slice(b"PCMP");
    t[4..6].copy_from_slice(&(len as u16).to_le_bytes());
    t[6] = 4; // spec revision 1.4
    t[8..16].copy_from_slice(b"AXVCPU  ");
    t[16..28].copy_from_slice(b"TESTBED-X86 ");
    t[34..36].copy_from_slice(&((cpus + 1) as u16).to_le_bytes());
    t[36..40].copy_from_slice(&LAPIC_BASE.to_le_bytes());
    for cpu in 0..cpus {
        let e = &mut t[HEADER + cpu * PROCESSOR..HEADER + (cpu + 1) * PROCESSOR];
        e[0] = 0; // processor
        e[1] = cpu as u8;
        e[2] = APIC_VERSION;
        e[3] = if cpu == 0 { 0b11 } else { 0b01 }; // enabled, bootstrap processor
        e[4..8].copy_from_slice(&cpu_signature.to_le_bytes());
        e[8..12].copy_from_slice(&features.to_le_bytes());
    }
    let b = &mut t[HEADER + cpus * PROCESSOR..len];
    b[0] = 1; // bus
    b[1] = 0;
    b[2..8].copy_from_slice(b"ISA   ");
    t[7] = checksum(t);
    // The floating pointer.
    let f = &mut out[..FLOATING];
    f[0..4].copy_from_slice(b"_MP_");
    f[4..8].copy_from_slice(&(table as u32).to_le_bytes());
    f[8] = 1; // length in 16-byte units
    f[9] = 4;
    // Feature bytes 0: a configuration table is present; IMCR absent (virtual wire).
    f[10] = checksum(f);
    FLOATING + len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, x| s.wrapping_add(*x))
    }

    #[test]
    fn two_processors_a_bus_and_checksums_that_add_up() {
        let mut out = [0u8; SIZE];
        let n = write(&mut out, 2, 0x00a0_0f11, 0x0789_3bff);
        assert_eq!(n, 16 + 44 + 2 * 20 + 8);
        assert_eq!(&out[..4], b"_MP_");
        assert_eq!(sum(&out[..16]), 0, "floating pointer checksum");
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 0xf_0010);
        let t = &out[16..n];
        assert_eq!(&t[..4], b"PCMP");
        assert_eq!(sum(t), 0, "configuration table checksum");
        assert_eq!(u16::from_le_bytes([t[4], t[5]]) as usize, t.len());
        assert_eq!(u16::from_le_bytes([t[34], t[35]]), 3, "entries");
        assert_eq!(
            u32::from_le_bytes(t[36..40].try_into().unwrap()),
            0xfee0_0000
        );
        // Processor entries: APIC ids 0 and 1, only the first the BSP.
        assert_eq!((t[44], t[45], t[47]), (0, 0, 3));
        assert_eq!((t[64], t[65], t[67]), (0, 1, 1));
        assert_eq!((t[84], &t[86..92]), (1, &b"ISA   "[..]));
        // Clamped: at least one CPU, at most MAX_VCPUS.
        assert_eq!(write(&mut out, 0, 0, 0), 16 + 44 + 20 + 8);
        assert_eq!(write(&mut out, 99, 0, 0), SIZE);
    }
}
