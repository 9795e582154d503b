//! KVM errors as [`VCpuError`]s whose reason names the failed operation and the `errno`
//! (`"KVM_CREATE_VM: ENOMEM (Cannot allocate memory)"`); the value is the `errno` number.

use std::collections::HashSet;
use std::sync::Mutex;

use axvcpu::{AxErrorKind, VCpuError};

/// A KVM error as a [`VCpuError`] of kind `Io`: the reason is `"{op}: {NAME} ({description})"`,
/// the value the `errno`.
pub(crate) fn kvm_error(op: &'static str, e: kvm_ioctls::Error) -> VCpuError {
    let errno = e.errno();
    VCpuError::new(AxErrorKind::Io, reason(op, errno)).with_value(errno as u64)
}

/// `"{op}: {NAME} ({description})"`, as a `&'static str` (what [`VCpuError`] holds). Each
/// distinct text is allocated once and kept: there are only as many as (operation, errno)
/// pairs, a few dozen operations by a hundred-odd errnos at most.
pub(crate) fn reason(op: &'static str, errno: i32) -> &'static str {
    static REASONS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let text = format!("{op}: {}", describe(errno));
    let mut reasons = REASONS.lock().unwrap_or_else(|e| e.into_inner());
    let set = reasons.get_or_insert_with(HashSet::new);
    if let Some(&known) = set.get(text.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    set.insert(leaked);
    leaked
}

/// `"EEXIST (File exists)"`; an errno without a name here is `"errno 200 (...)"`.
pub(crate) fn describe(errno: i32) -> String {
    let description = std::io::Error::from_raw_os_error(errno).to_string();
    // `io::Error` appends " (os error N)": the name says it better.
    let description = match description.rfind(" (os error ") {
        Some(at) => &description[..at],
        None => &description[..],
    };
    match name(errno) {
        Some(name) => format!("{name} ({description})"),
        None => format!("errno {errno} ({description})"),
    }
}

/// The symbolic name of the errnos KVM and `/dev/kvm` return.
fn name(errno: i32) -> Option<&'static str> {
    use libc::*;
    Some(match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        E2BIG => "E2BIG",
        ENOEXEC => "ENOEXEC",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EINVAL => "EINVAL",
        ENFILE => "ENFILE",
        EMFILE => "EMFILE",
        ENOTTY => "ENOTTY",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        ESPIPE => "ESPIPE",
        EROFS => "EROFS",
        ERANGE => "ERANGE",
        ENOSYS => "ENOSYS",
        ENODATA => "ENODATA",
        EOVERFLOW => "EOVERFLOW",
        EOPNOTSUPP => "EOPNOTSUPP",
        ETIMEDOUT => "ETIMEDOUT",
        EHWPOISON => "EHWPOISON",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_errno_and_are_interned() {
        let e = kvm_error("KVM_CREATE_VCPU", kvm_ioctls::Error::new(libc::EEXIST));
        assert_eq!(e.reason(), "KVM_CREATE_VCPU: EEXIST (File exists)");
        assert_eq!(e.value(), Some(libc::EEXIST as u64));
        assert!(e.to_string().contains("EEXIST (File exists)"), "{e}");
        let again = reason("KVM_CREATE_VCPU", libc::EEXIST);
        assert!(std::ptr::eq(again, e.reason()), "one allocation per text");
        assert!(
            describe(4000).starts_with("errno 4000 ("),
            "{}",
            describe(4000)
        );
    }
}
