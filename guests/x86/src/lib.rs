//! Placeholder: the shared x86-64 guest programs land here.
#![no_std]
