// The README's "Use it" program: a hosted guest with an MMIO device. `tests/readme.rs`
// checks the README shows exactly this file and runs it.
//
// `cargo run -p axvcpu-kvm --example hosted`

use axvcpu_kvm::{AccessWidth, AxVCpuExitReason, HostedVm, Port};

/// The guest: x86-64 machine code, started in 64-bit mode.
const GUEST: [u8; 17] = [
    0xbf, 0x00, 0x00, 0x00, 0xd0, //       mov edi, 0xd0000000   (the device)
    0xc7, 0x07, 0x15, 0x00, 0x00, 0x00, // mov dword [rdi], 21     -> MmioWrite
    0x8b, 0x47, 0x04, //                   mov eax, [rdi + 4]      -> MmioRead
    0xe6, 0x80, //                         out 0x80, al            -> IoWrite
    0xf4, //                               hlt                     -> Halt
];
const DEVICE: usize = 0xd000_0000; // unmapped: accesses exit to us

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 256 KiB of RAM at guest-physical 0x10000; the boot tables take its first pages.
    let vm = HostedVm::new(0x1_0000, 0x4_0000)?;
    vm.load(0x2_0000, &GUEST)?;
    // vCPU 0 starts at the guest, its stack at the top of RAM.
    let mut vcpu = vm.new_vcpu(0, 0x2_0000, 0x5_0000)?;
    vcpu.bind()?; // to this thread, which runs it

    let mut register = 0; // the device: reads at +4 return twice what was written at +0
    let mut said = Vec::new();
    loop {
        match vcpu.run()? {
            AxVCpuExitReason::MmioWrite { addr, data, .. } if addr.as_usize() == DEVICE => {
                register = data;
            }
            AxVCpuExitReason::MmioRead {
                addr,
                width: AccessWidth::Dword,
                ..
            } if addr.as_usize() == DEVICE + 4 => {
                vcpu.complete_read(register * 2)?;
            }
            AxVCpuExitReason::IoWrite {
                port: Port(0x80),
                data,
                ..
            } => said.push(data),
            AxVCpuExitReason::Halt => break,
            other => return Err(format!("unexpected exit {other:?}").into()),
        }
    }
    vcpu.unbind()?;
    assert_eq!(said, [42]);
    println!("the guest said {said:?}");
    Ok(())
}
