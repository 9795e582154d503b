//! The AArch64 test hypervisor: not written yet.
#![no_std]
