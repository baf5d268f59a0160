//! Helpers shared by the greenlet test files.
#![allow(dead_code)]

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

/// An ordered record of what the greenlets did.
pub type Log = Rc<RefCell<Vec<String>>>;

/// Appends `entry` to `log`.
pub fn push(log: &Log, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

/// The text of a panic payload (`<not a string>` for other payloads).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<not a string>")
    }
}
