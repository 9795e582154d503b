//! The conformance suite: the guest scenarios of the project's `conformance.md`, with the
//! hypervisor side written once against [`axvcpu::AxVCpu`] and run unchanged on every
//! backend.
//!
//! A backend's harness implements [`Platform`] (create VMs running the programs of
//! [`contract::GuestProgram`], run work on another CPU) and calls [`run_all`], which prints
//! one line per scenario (`PASS id`, `FAIL id: why`, `N/A id: why`) and the closing line
//! `N passed, N failed, N skipped`.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;

pub mod contract;
mod platform;
mod report;
mod scenarios;

pub use platform::{Isa, Join, Layout, Platform, PlatformInfo, TestVm};
pub use report::{Outcome, Summary};
pub use scenarios::garbage::{random_program, SEED as GARBAGE_SEED};
pub use scenarios::{run_all, run_selected, SCENARIOS};
