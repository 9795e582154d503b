//! Not written yet (see the README).
#![no_std]
