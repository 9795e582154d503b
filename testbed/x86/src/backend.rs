//! Which backend the testbed runs, chosen at boot from CPUID: AMD SVM (QEMU TCG) or Intel
//! VMX (Bochs). Everything else in the testbed is generic over [`Backend`]: the
//! `TestbedArch` impl ([`X86<B>`](crate::arch::X86)), the self-tests and the boot flow's
//! `Cpus` are instantiated once per backend, and the one copy of the guest programs serves
//! both (see [`patch_hypercalls`]).

use core::sync::atomic::{AtomicU8, Ordering};

use axvcpu::{AxArchPerCpu, AxArchVCpu, AxVCpuHal};
use axvcpu_npt::PagingFormat;
use axvcpu_testbed::boot::Cpus;

use crate::arch::X86;
use crate::boot::MAX_CPUS;

/// Where a vCPU's GDT and page tables come from, and how it starts: one type for every x86
/// backend's setup config.
pub use axvcpu_x86::boot::{GuestBoot as Boot, LongModeSetup as Setup};

/// What differs between the x86 backends, as the testbed uses them.
pub trait Backend: Sized + Send + Sync + 'static {
    /// The backend's crate, for banner lines.
    #[cfg_attr(not(feature = "linux"), allow(dead_code))]
    const CRATE: &'static str;
    /// The backend as the banner line describes it.
    const DESCRIBE: &'static str;
    /// `PlatformInfo::name`.
    const PLATFORM: &'static str;
    /// The benchmark guest's loop, for the report.
    const BENCH_LOOP: &'static str;

    /// The vCPU over a HAL.
    /// (`Send`: the Linux hypervisor makes a secondary's vCPU on CPU 0 and runs it on its own.)
    type VCpu<H: AxVCpuHal>: AxArchVCpu<CreateConfig = (), SetupConfig = Setup, Hal = H> + Send;
    /// The per-CPU state over a HAL.
    type PerCpu<H: AxVCpuHal>: AxArchPerCpu;
    /// The nested page tables' format (AMD NPT: the host's own format; Intel: EPT).
    type Format: PagingFormat + 'static;

    /// The boot flow's CPU state of this backend.
    fn cpus() -> &'static Cpus<X86<Self>, MAX_CPUS>;
    /// Whether the guest's RFLAGS.IF is set (a `hlt` with it clear is the Linux guest's
    /// power-off).
    #[cfg_attr(not(feature = "linux"), allow(dead_code))]
    fn interrupts_enabled<H: AxVCpuHal>(vcpu: &Self::VCpu<H>) -> bool;
    /// Whether `reason`, the `FailEntry` reason of a guest state the hardware refuses
    /// (a CR3 beyond the physical-address width), is what this hardware reports.
    fn refused_entry(reason: u64) -> bool;
}

/// AMD SVM (`axvcpu-svm`).
#[derive(Debug)]
pub struct Svm;

/// The boot flow's CPUs when the testbed runs SVM.
pub static SVM_CPUS: Cpus<X86<Svm>, MAX_CPUS> = Cpus::new();

impl Backend for Svm {
    const CRATE: &'static str = "axvcpu-svm";
    const DESCRIBE: &'static str =
        "AMD SVM, 4-level NPT, long-mode or real-mode (start-up IPI) guests";
    const PLATFORM: &'static str = "x86_64-svm-qemu";
    const BENCH_LOOP: &'static str = "vmmcall; jmp";

    type VCpu<H: AxVCpuHal> = axvcpu_svm::SvmVCpu<H>;
    type PerCpu<H: AxVCpuHal> = axvcpu_svm::SvmPerCpu<H>;
    type Format = axvcpu_npt::X86Npt;

    fn cpus() -> &'static Cpus<X86<Self>, MAX_CPUS> {
        &SVM_CPUS
    }
    fn interrupts_enabled<H: AxVCpuHal>(vcpu: &Self::VCpu<H>) -> bool {
        vcpu.interrupts_enabled()
    }
    /// VMEXIT_INVALID, whose code reads as `0xffff_ffff` under TCG (low 32 bits compared).
    fn refused_entry(reason: u64) -> bool {
        reason as u32 == 0xffff_ffff
    }
}

/// Intel VMX (`axvcpu-vmx`).
#[derive(Debug)]
pub struct Vmx;

/// The boot flow's CPUs when the testbed runs VMX.
pub static VMX_CPUS: Cpus<X86<Vmx>, MAX_CPUS> = Cpus::new();

impl Backend for Vmx {
    const CRATE: &'static str = "axvcpu-vmx";
    const DESCRIBE: &'static str = "Intel VMX, 4-level EPT, VPID, long-mode or real-mode (start-up IPI, unrestricted guest) guests";
    const PLATFORM: &'static str = "x86_64-vmx-bochs";
    const BENCH_LOOP: &'static str = "vmcall; jmp";

    type VCpu<H: AxVCpuHal> = axvcpu_vmx::VmxVCpu<H>;
    type PerCpu<H: AxVCpuHal> = axvcpu_vmx::VmxPerCpu<H>;
    type Format = axvcpu_npt::Ept;

    fn cpus() -> &'static Cpus<X86<Self>, MAX_CPUS> {
        &VMX_CPUS
    }
    fn interrupts_enabled<H: AxVCpuHal>(vcpu: &Self::VCpu<H>) -> bool {
        vcpu.interrupts_enabled()
    }
    /// Exit reason 33 (invalid guest state) with the entry-failure bit 31.
    fn refused_entry(reason: u64) -> bool {
        reason as u32 == 0x8000_0021
    }
}

/// What CPUID offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// AMD with SVM (CPUID 0x8000_0001 ECX bit 2).
    Svm,
    /// Intel with VMX (CPUID 1 ECX bit 5).
    Vmx,
    /// Neither.
    Nothing,
}

impl Found {
    fn code(self) -> u8 {
        match self {
            Self::Svm => 1,
            Self::Vmx => 2,
            Self::Nothing => 3,
        }
    }
}

static FOUND: AtomicU8 = AtomicU8::new(0);

fn cpuid(leaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid(leaf)
}

/// Reads CPUID (boot CPU, once, before the other CPU starts) and remembers the answer.
pub fn detect() -> Found {
    let vendor = cpuid(0);
    let max_ext = cpuid(0x8000_0000).eax;
    let is = |name: &[u8; 12]| {
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&vendor.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&vendor.edx.to_le_bytes());
        v[8..].copy_from_slice(&vendor.ecx.to_le_bytes());
        &v == name
    };
    let found = if is(b"AuthenticAMD")
        && max_ext >= 0x8000_0001
        && cpuid(0x8000_0001).ecx & (1 << 2) != 0
    {
        Found::Svm
    } else if is(b"GenuineIntel") && cpuid(1).ecx & (1 << 5) != 0 {
        Found::Vmx
    } else {
        Found::Nothing
    };
    FOUND.store(found.code(), Ordering::Release);
    found
}

/// What [`detect`] found on the boot CPU.
pub fn found() -> Found {
    match FOUND.load(Ordering::Acquire) {
        1 => Found::Svm,
        2 => Found::Vmx,
        _ => Found::Nothing,
    }
}

/// Turns every hypercall of the guest programs into `vmcall` (Intel), boot CPU only, before
/// any guest runs.
///
/// The guest programs are assembled once, with `vmmcall` (AMD, `0f 01 d9`); the `hypercall`
/// macro records each site in the section `.hypercall_sites`. `vmcall` (`0f 01 c1`) has the
/// same length, so rewriting the third byte of every recorded site gives the Intel programs
/// without a second copy of them. Returns how many sites it rewrote.
pub fn patch_hypercalls() -> usize {
    extern "C" {
        static __hypercall_sites_start: u64;
        static __hypercall_sites_end: u64;
    }
    let start = core::ptr::addr_of!(__hypercall_sites_start);
    let end = core::ptr::addr_of!(__hypercall_sites_end);
    let count = (end as usize - start as usize) / 8;
    let mut patched = 0;
    for i in 0..count {
        // SAFETY: the linker script puts the table, one address a site, between the labels.
        let site = unsafe { start.add(i).read() } as *mut u8;
        // SAFETY: each entry is the address of a `vmmcall` in the image, which is
        // identity-mapped and writable, and no guest has run it yet.
        unsafe {
            if site.read() == 0x0f && site.add(1).read() == 0x01 && site.add(2).read() == 0xd9 {
                site.add(2).write_volatile(0xc1);
                patched += 1;
            }
        }
    }
    patched
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads an MSR CPUID said exists (the VMX capability MSRs with VMX, IA32_FEATURE_CONTROL).
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi,
            options(nomem, nostack))
    };
    u64::from(hi) << 32 | u64::from(lo)
}

/// What the VMX capability MSRs offer, as one line (CPUID said VMX): the VMCS revision,
/// IA32_FEATURE_CONTROL, the secondary controls' allowed-1 bits (EPT 1, VPID 5,
/// unrestricted guest 7), EPT/VPID capabilities.
pub fn vmx_caps() -> impl core::fmt::Display {
    struct Caps([u64; 4]);
    impl core::fmt::Display for Caps {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let [basic, feature, secondary, ept] = self.0;
            write!(
                f,
                "VMCS revision {:#x}, IA32_FEATURE_CONTROL {feature:#x}, secondary controls \
                 allowed-1 {:#x}, EPT/VPID caps {ept:#x}",
                basic & 0x7fff_ffff,
                secondary >> 32
            )
        }
    }
    Caps([rdmsr(0x480), rdmsr(0x3a), rdmsr(0x48b), rdmsr(0x48c)])
}
