//! The AArch64 backend: not written yet (see README.md).
#![no_std]
