//! The error type every fallible vCPU operation returns.
//!
//! `axerrno::AxError` is a bare error code: it cannot say *which* call was out of order or
//! *which* trap the guest took. Hypervisor authors need that reason, so [`VCpuError`] pairs
//! an [`AxErrorKind`] with a static reason and an optional value (a trap cause, a register
//! index, ...). It converts into `AxError`, so code written against the seed's `AxResult`
//! keeps working with `?`.

use core::fmt;

pub use axerrno::{AxError, AxErrorKind};

/// The seed's result type: code written against it keeps compiling, since every
/// [`VCpuError`] converts into an [`AxError`] with `?` (the reason is lost in that
/// conversion; prefer [`VCpuResult`], which keeps it).
pub type AxResult<T = ()> = Result<T, AxError>;

/// The result of a vCPU operation.
pub type VCpuResult<T = ()> = Result<T, VCpuError>;

/// Why a vCPU operation failed: a kind, a human-readable reason and an optional value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VCpuError {
    kind: AxErrorKind,
    reason: &'static str,
    value: Option<u64>,
}

impl VCpuError {
    /// An error of `kind` explained by `reason`.
    pub const fn new(kind: AxErrorKind, reason: &'static str) -> Self {
        Self {
            kind,
            reason,
            value: None,
        }
    }

    /// A call made in a state that does not allow it (`AxErrorKind::BadState`).
    pub const fn bad_state(reason: &'static str) -> Self {
        Self::new(AxErrorKind::BadState, reason)
    }

    /// An argument the callee cannot accept (`AxErrorKind::InvalidInput`).
    pub const fn invalid_input(reason: &'static str) -> Self {
        Self::new(AxErrorKind::InvalidInput, reason)
    }

    /// Something the backend or hardware does not support (`AxErrorKind::Unsupported`).
    pub const fn unsupported(reason: &'static str) -> Self {
        Self::new(AxErrorKind::Unsupported, reason)
    }

    /// Attaches a value that makes the reason concrete (a trap cause, an address, ...).
    pub const fn with_value(mut self, value: u64) -> Self {
        self.value = Some(value);
        self
    }

    /// The kind of error.
    pub const fn kind(&self) -> AxErrorKind {
        self.kind
    }

    /// Why the operation failed.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }

    /// The value attached with [`with_value`](Self::with_value), if any.
    pub const fn value(&self) -> Option<u64> {
        self.value
    }
}

impl fmt::Display for VCpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.reason)?;
        if let Some(v) = self.value {
            write!(f, " ({v:#x})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for VCpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VCpuError({self})")
    }
}

impl From<VCpuError> for AxError {
    fn from(e: VCpuError) -> Self {
        AxError::from(e.kind)
    }
}

impl core::error::Error for VCpuError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_reason_and_value() {
        let e = VCpuError::bad_state("run() before bind()").with_value(0x2a);
        let s = alloc::format!("{e}");
        assert!(s.contains("run() before bind()"), "{s}");
        assert!(s.contains("0x2a"), "{s}");
        assert_eq!(AxError::from(e), AxError::BadState);
    }
}
