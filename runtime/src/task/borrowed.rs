//! [`TaskRef`]: a task borrowed for a frame, with its reference count untouched.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::rc::Rc;

use super::Task;

/// A task borrowed for `'a` without touching its reference count: it derefs to the
/// task's `Rc` (clone that to keep the task) and so to the [`Task`].
///
/// The running greenlet's own task is handed out this way ([`Task::current_borrowed`]),
/// for as long as the frame that asked borrows its [`Here`](crate::hub::Here): the
/// greenlet's body (or, for an adopted greenlet, its context) owns the task for longer
/// than any frame of the greenlet, so the borrow needs no count of its own, and the
/// compiler keeps it inside that frame.
pub(crate) struct TaskRef<'a> {
    /// An `Rc` that does not own its count: it is never dropped or moved out.
    task: ManuallyDrop<Rc<Task>>,
    _borrow: PhantomData<&'a Rc<Task>>,
}

impl<'a> TaskRef<'a> {
    /// Borrows the task at `task`.
    ///
    /// # Safety
    ///
    /// `task` points at the `Task` of an `Rc` allocation (`Rc::as_ptr`) that some owner
    /// keeps alive for all of `'a`.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(task: NonNull<Task>) -> TaskRef<'a> {
        TaskRef {
            // SAFETY: the caller's contract; `ManuallyDrop` never gives back the count
            // this `Rc` does not own.
            task: ManuallyDrop::new(unsafe { Rc::from_raw(task.as_ptr()) }),
            _borrow: PhantomData,
        }
    }

    /// Another borrow of the same task, for as long.
    #[inline(always)]
    pub(crate) fn reborrow(&self) -> TaskRef<'a> {
        // SAFETY: the task is alive for `'a`, as `self` says.
        unsafe { TaskRef::from_raw(self.as_ptr()) }
    }

    /// The task's address, for [`from_raw`](Self::from_raw).
    #[inline(always)]
    pub(crate) fn as_ptr(&self) -> NonNull<Task> {
        NonNull::from(&**self.task)
    }
}

impl Deref for TaskRef<'_> {
    type Target = Rc<Task>;

    #[inline(always)]
    fn deref(&self) -> &Rc<Task> {
        &self.task
    }
}
