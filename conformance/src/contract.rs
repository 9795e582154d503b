//! The contract between the scenarios and each platform's guest programs: what every guest
//! program does, with the exact constants the hypervisor side checks.
//!
//! Guests talk to the hypervisor through two hypercalls (see
//! [`AxVCpuExitReason::Hypercall`](axvcpu::AxVCpuExitReason::Hypercall) for each
//! architecture's calling convention):
//! - [`HC_REPORT`]`(value)`: "here is a value you must check" (`args[0]` = value).
//! - [`HC_DONE`]`()`: "this program finished". A guest that is resumed after `HC_DONE`
//!   repeats `HC_DONE` forever.
//!
//! Unless said otherwise a program runs with interrupts masked, on vCPU 0, and all its code
//! and data live in RAM (see [`Layout`](crate::Layout)).

/// Hypercall number: "check this value" (`args[0]`).
pub const HC_REPORT: u64 = 0x5250;
/// Hypercall number: "program finished".
pub const HC_DONE: u64 = 0x444f;
/// Hypercall number: "my interrupt handler is installed" (the `Irq` program; see there).
pub const HC_READY: u64 = 0x5244;

/// x86 port the `io-*` programs use; each width uses `IO_PORT + offset` as listed.
pub const IO_PORT: u16 = 0x00e0;
/// Data `io-out` writes: a byte to `IO_PORT`, a word to `IO_PORT + 2`, a dword to
/// `IO_PORT + 4`.
pub const IO_OUT_DATA: [u64; 3] = [0xa5, 0xbeef, 0xdead_beef];
/// The value `rax` holds before each `in` of `io-in`.
pub const IO_IN_RAX_BEFORE: u64 = 0x1111_1111_1111_1111;
/// The value the hypervisor answers every `in` with (wider than any access on purpose).
pub const IO_IN_VALUE: u64 = 0xa1b2_c3d4_e5f6_0718;

/// Data `mmio-write` stores: 1, 2, 4 and 8 bytes at `mmio_base + 0, 8, 16, 24`.
pub const MMIO_WRITE_DATA: [u64; 4] = [0xa5, 0xbeef, 0xdead_beef, 0x0123_4567_89ab_cdef];
/// The value the hypervisor answers every `mmio-read` load with (top bit of every width set,
/// so sign extension shows).
pub const MMIO_READ_VALUE: u64 = 0xf1e2_d3c4_b5a6_9788;
/// The loads `mmio-read` makes, in order: (offset from `mmio_base`, width in bytes, signed).
pub const MMIO_READS: [(usize, usize, bool); 7] = [
    (0x00, 1, false),
    (0x08, 2, false),
    (0x10, 4, false),
    (0x18, 8, false),
    (0x20, 1, true),
    (0x28, 2, true),
    (0x30, 4, true),
];

/// Hypercall number and arguments of `hypercall`.
pub const HYPERCALL_NR: u64 = 0x4143;
/// The six arguments of `hypercall`.
pub const HYPERCALL_ARGS: [u64; 6] = [
    0x1111_0001,
    0x2222_0002,
    0x3333_0003,
    0x4444_0004,
    0x5555_0005,
    0x6666_0006,
];
/// What the hypervisor returns to `hypercall`.
pub const HYPERCALL_RET: u64 = 0xc0ff_ee00_1234;

/// Offset in the read-only page `nested-page-fault` writes [`NPF_DATA`] (8 bytes) to.
pub const NPF_OFFSET: usize = 0x10;
/// The data `nested-page-fault` writes.
pub const NPF_DATA: u64 = 0x5a5a_0000_a5a5_1234;

/// The argument `cpu-up` hands the secondary CPU (0 is expected on x86, which has none).
pub const CPU_UP_ARG: u64 = 0x0a11_ce00;
/// The CPU `cpu-up` starts.
pub const CPU_UP_TARGET: u64 = 1;

/// The value the hypervisor answers the `sysreg` read with.
pub const SYSREG_READ_VALUE: u64 = 0x1234_5678_9abc_def0;
/// The value the `sysreg` program writes.
pub const SYSREG_WRITE_VALUE: u64 = 0x0fed_cba9_8765_4321;

/// Number of `HC_REPORT(vcpu_id)` calls each vCPU of `smp` makes before `HC_DONE`.
pub const SMP_ITERATIONS: u64 = 200;

/// How far ahead of its counter the [`HaltTimer`](GuestProgram::HaltTimer) program arms its
/// timer (AArch64: 0.3 ms at QEMU's 62.5 MHz; RISC-V: 2 ms at 10 MHz).
pub const HALT_TIMER_TICKS: u64 = 20_000;

/// Where the [`Signature`](GuestProgram::Signature) program keeps its 8-byte slot: this far
/// past its entry (the program's first 4 KiB hold its code).
pub const SIGNATURE_OFFSET: usize = 0x1000;

/// Where a chaos VM's code starts, past its entry ([`Platform::create_chaos_vm`](crate::Platform::create_chaos_vm)):
/// the runtime fits below.
pub const CHAOS_CODE_OFFSET: usize = 0x4000;
/// Bytes of code per chaos program.
pub const CHAOS_CODE_BYTES: usize = 0x1000;
/// Where a chaos VM's scratch page starts, past its entry: most of the programs' RAM
/// accesses aim there.
pub const CHAOS_DATA_OFFSET: usize = 0x5000;
/// The scratch page's size.
pub const CHAOS_DATA_BYTES: usize = 0x1000;
/// Where a chaos runtime counts, past its entry, the exceptions (8 bytes) and then the
/// interrupts (8 bytes) its handlers took.
pub const CHAOS_COUNTS_OFFSET: usize = 0x3ff0;

/// The guest programs a platform must provide. Each variant says what the guest does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestProgram {
    /// `HC_DONE` at once. Used by `lifecycle`.
    Done,
    /// x86: `out` [`IO_OUT_DATA`] (byte, word, dword to `IO_PORT`, `+2`, `+4`), then `HC_DONE`.
    IoOut,
    /// x86: for each of `in al, IO_PORT`; `in ax, IO_PORT+2`; `in eax, IO_PORT+4`: set `rax`
    /// to [`IO_IN_RAX_BEFORE`], execute the `in`, `HC_REPORT(rax)`. Then `HC_DONE`.
    IoIn,
    /// Store [`MMIO_WRITE_DATA`] (1, 2, 4, 8 bytes) to `mmio_base + 0, 8, 16, 24`, then
    /// `HC_DONE`.
    MmioWrite,
    /// For each of [`MMIO_READS`]: load from `mmio_base + offset` with that width and
    /// signedness into a different general-purpose register each time, then
    /// `HC_REPORT(that register)`. Then `HC_DONE`.
    MmioRead,
    /// Hypercall [`HYPERCALL_NR`] with [`HYPERCALL_ARGS`], then `HC_REPORT(return value)`,
    /// then `HC_DONE`.
    Hypercall,
    /// Halt once (`hlt` / `wfi`, interrupts masked), then `HC_DONE`.
    Halt,
    /// Ask the platform to power off (SBI SRST shutdown, PSCI SYSTEM_OFF, x86: write to the
    /// shutdown port). If resumed, loop on `HC_DONE`.
    SystemDown,
    /// Write [`NPF_DATA`] (8 bytes) to `ro_page + NPF_OFFSET`, then `HC_DONE`.
    NestedPageFault,
    /// vCPU 0: start CPU [`CPU_UP_TARGET`] at the program's label `secondary` with argument
    /// [`CPU_UP_ARG`] (x86: INIT-SIPI with the APIC ICR), then `HC_DONE`. `secondary`:
    /// `HC_REPORT(argument register)` (x86: `HC_REPORT(0)`), then `HC_DONE`.
    CpuUp,
    /// Stop the calling CPU (SBI HSM hart_stop, PSCI CPU_OFF).
    CpuDown,
    /// Interrupts, for `irq-inject`, `irq-queued` and `irq-merge`. With interrupts still
    /// masked: install a handler for `PlatformInfo::irq_vector` and
    /// `PlatformInfo::second_irq_vector` and enable both sources (x86: two IDT gates;
    /// RISC-V: `stvec` and `sie` bits 1 and 5; AArch64: `VBAR_EL1`, and with the vGIC the
    /// GIC CPU interface); `HC_READY`; `HC_READY` again, still masked. Then unmask
    /// interrupts and wait in a halt loop until `irq_vector` has been taken; then
    /// `HC_DONE` forever with interrupts still unmasked (so an interrupt delivered late is
    /// still taken, and reported).
    ///
    /// The handler, for each interrupt taken: `HC_REPORT(vector taken)` and acknowledge it
    /// (x86: nothing, the vector is the IDT entry; RISC-V: code 1 clears `sip.SSIP`, code
    /// 5 calls SBI `set_timer(u64::MAX)`; AArch64: `hvc #1`, which returns the INTID, or
    /// `GICC_IAR` then `GICC_EOIR`), then return to the interrupted code with every
    /// register it uses unchanged (a late interrupt may land inside the `HC_DONE` loop's
    /// hypercall sequence).
    Irq,
    /// Spin forever with interrupts masked (`jmp .` / `j .`).
    Spin,
    /// Read `PlatformInfo::sysreg_read` and `HC_REPORT` the value read (x86 `rdmsr`:
    /// `edx:eax` as one 64-bit value). Then, if `sysreg_write` is set, write
    /// [`SYSREG_WRITE_VALUE`] to it. Then `HC_DONE`.
    SysReg,
    /// Read then write 8 bytes at each of: the page just below RAM (if RAM does not start
    /// at 0) and the page just above RAM, each access followed by nothing; then `HC_DONE`.
    Isolation,
    /// `HC_REPORT(id)` [`SMP_ITERATIONS`] times, where `id` is the value the hypervisor put
    /// in register `PlatformInfo::smp_id_reg` before the first run; then `HC_DONE`. Both
    /// vCPUs start at the program entry.
    Smp,
    /// Halt, then `HC_DONE`. Registers must survive the halt exit unchanged.
    Regs,
    /// Forever: load the 8 bytes at `entry + `[`SIGNATURE_OFFSET`] (the program's own
    /// slot, 0 at the start), `HC_REPORT(what it loaded)`, then store there the signature
    /// the hypervisor put in register `PlatformInfo::smp_id_reg` before the first run. Code
    /// and slot are addressed relative to the program counter (`lea rip`, `lla`, `adr`), so
    /// the program runs wherever its entry is.
    Signature,
    /// The guest's own timer wakes it from a halt. Read the timer's counter (AArch64
    /// `CNTVCT_EL0`, RISC-V `time`), D = counter + [`HALT_TIMER_TICKS`]; arm the timer at
    /// D with its interrupt source enabled and interrupts still masked (AArch64:
    /// `CNTV_CVAL_EL0` = D, `CNTV_CTL_EL0` = 1; RISC-V: `sie.STIE`, SBI `set_timer(D)`);
    /// `HC_REPORT(D)`; halt (`wfi`) again and again until the counter reaches D; disarm the
    /// timer (`CNTV_CTL_EL0` = 0; `set_timer(u64::MAX)`); halt once more; `HC_DONE`. Not
    /// x86: its guest timers are devices the hypervisor emulates.
    HaltTimer,
}
