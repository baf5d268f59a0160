//! Platform layer. Only Linux is implemented; another platform provides the same
//! functions in a sibling module.

mod arch;
#[cfg(target_os = "linux")]
mod linux;

pub(crate) use arch::{prefetch, stack_pointer};
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("greenweave-greenlet supports Linux only for now: add a sibling of sys/linux.rs");
