//! Starting a vCPU in 64-bit long mode: the GDT and identity page tables a hypervisor puts
//! in guest RAM, described by [`LongModeBoot`] for [`SvmSetupConfig`](crate::SvmSetupConfig).
//! The layout is shared with the hosted KVM backend (`axvcpu_x86::boot`), so guest
//! programs written for one run on the other.

pub use axvcpu_x86::boot::{
    long_mode_tables_size, write_long_mode_tables, LongModeBoot, CODE_SELECTOR, DATA_SELECTOR,
};
