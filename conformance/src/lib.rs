//! The conformance suite: the guest scenarios every backend must pass, with the hypervisor
//! side written once against [`axvcpu::AxVCpu`] and run unchanged on every backend.
//!
//! [`Scenario`] is the table of what the suite proves: each variant says what its guest
//! does, what the hypervisor must see and what the guest must then see, and
//! [`Scenario::id`] is the one place each id is written. [`contract`] is what each
//! platform's guest programs do, with the exact values the scenarios check.
//!
//! A backend's harness implements [`Platform`] (create VMs running the programs of
//! [`contract::GuestProgram`], run work on another CPU) and calls [`run_all`], which prints
//! one line per scenario (`PASS id`, `FAIL id: why`, `N/A id: why`) and the closing line
//! `N passed, N failed, N skipped`. [`check_report`] checks such a report against the exact
//! set of scenarios a platform must report `N/A` (every other must pass), as `cargo xtask`
//! does for each bare-metal testbed:
//!
//! ```
//! use axvcpu_conformance::{check_report, Scenario};
//!
//! // The report of a platform without port I/O: every scenario passes but the two it
//! // cannot express.
//! let no_port_io = [Scenario::IoOut, Scenario::IoIn];
//! let mut report = String::new();
//! for s in Scenario::ALL {
//!     if no_port_io.contains(&s) {
//!         report += &format!("N/A {}: no port I/O\n", s.id());
//!     } else {
//!         report += &format!("PASS {}\n", s.id());
//!     }
//! }
//! report += &format!("{} passed, 0 failed, 2 skipped\n", Scenario::COUNT - 2);
//! assert_eq!(check_report(&report, "", &no_port_io), Ok(Scenario::COUNT - 2));
//!
//! // The same report from a platform that must pass everything is refused.
//! assert!(check_report(&report, "", &[]).is_err());
//! ```

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod alloc_fail;
pub mod contract;
#[cfg(feature = "std")]
pub mod heap_hal;
#[cfg(test)]
mod model;
mod platform;
mod report;
mod scenario;
mod scenarios;

pub use platform::{Isa, Join, Layout, Platform, PlatformInfo, TestVm};
pub use report::{check_report, Outcome, Summary};
pub use scenario::{Scenario, SCENARIOS};
pub use scenarios::chaos::{chaos_program, ChaosTarget, SEED as CHAOS_SEED};
pub use scenarios::garbage::{random_program, SEED as GARBAGE_SEED};
pub use scenarios::memory::TWO_VMS_COUNT;
pub use scenarios::{run_all, run_selected};
