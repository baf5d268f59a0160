//! `pidfd_open(2)`: the one system call the process module needs that std does not
//! offer on stable Rust.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A pidfd for process `pid`: readable once the process has exited.
///
/// # Errors
///
/// The kernel's: `ESRCH` (no such process), `ENOSYS` (Linux before 5.3), `EMFILE`, …;
/// `EINVAL` for a pid out of range.
pub(super) fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: pidfd_open takes a pid and a flags word and touches no memory of ours;
    // it returns a new fd or -1 with errno set.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel has just made this fd (close-on-exec); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
