//! The forking thread's hub, rebuilt in place in a forked child (see the module docs of
//! `fork` for the semantics).
//!
//! The `Hub` value stays where it is, with its hub greenlet: frames suspended on the
//! hub greenlet (its loop, parked in the switch to the greenlet it ran last) find the
//! rebuilt state when they go on, and nothing that points at the hub dangles. What
//! names the parent's other greenlets (the task registry, the run queue, fd
//! registrations and their waits, timers, finished records) is kept for ever
//! (`kept::keep`), never dropped: dropping could run their destructors or unwind
//! their stacks.
//!
//! The fd table goes the same way, whole: its registrations are in the inherited
//! epoll instance, which is the parent's (the child only closes its copy of the fd,
//! never `EPOLL_CTL_DEL`s, which would remove the parent's registrations of the
//! shared files). The forking greenlet's sockets are then unknown to the new instance
//! and register with it at their next wait, their readiness unknown, so tried first:
//! data that arrived before the fork, or that the parent's hub was told about, is not
//! missed.

use std::io;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use mio::Poll;

use crate::hub::Hub;
use crate::remote::Shared;
use crate::task::Task;
use crate::timer::Action;

/// What the rebuilt hub replaced: the child's copies of the parent's epoll and waker
/// fds, closed when this is dropped (a plain `close`, never an `epoll_ctl`: the epoll
/// instance's interest list belongs to the parent, which goes on using it).
pub(super) struct Replaced {
    _poll: Poll,
    _remote: Arc<Shared>,
}

/// Rebuilds this thread's hub, if it has one, for the greenlet running now (the one
/// that called `fork`).
///
/// # Panics
///
/// If the child cannot make a new epoll instance or waker (out of fds or memory).
pub(super) fn rebuild() -> Option<Replaced> {
    crate::hub::try_with_existing(|hub| {
        let forking = Task::current_borrowed(hub).map(|task| Rc::clone(&task));
        rebuild_for(hub, forking).unwrap_or_else(|err| {
            panic!("greenweave: cannot make a new hub in a forked child: {err}")
        })
    })
}

fn rebuild_for(hub: &Hub, forking: Option<Rc<Task>>) -> io::Result<Replaced> {
    // Everything that can fail first, before anything changes.
    let poll = Poll::new()?;
    let remote = Arc::new(Shared::new(&poll)?);
    let is_forking = |task: &Rc<Task>| forking.as_ref().is_some_and(|f| Rc::ptr_eq(f, task));

    let old_tasks = std::mem::take(&mut *hub.tasks.borrow_mut());
    for (_, task) in &old_tasks {
        if !is_forking(task) {
            task.left_behind();
        }
    }
    crate::kept::keep(old_tasks);
    hub.ready.abandon();
    crate::kept::keep(std::mem::take(&mut *hub.spare_tasks.borrow_mut()));
    crate::io::reset_after_fork(hub);
    hub.timers.borrow_mut().keep_only(|action| match action {
        // The forking greenlet's `Timeout`s go on bounding its code.
        Action::Timeout { task, .. } => forking
            .as_ref()
            .is_some_and(|f| Weak::as_ptr(task) == Rc::as_ptr(f)),
        Action::Wake(_) => false,
    });
    hub.external_waits.set(0);
    hub.signal_waits.set(0);
    let root = match &forking {
        Some(task) => {
            // Greenlets of the parent waiting to join it are gone.
            task.joiners.forget_all();
            hub.register(task);
            // A spawned greenlet that forked plays the part of `main` in the child.
            if task.location.is_some() {
                task.id()
            } else {
                0
            }
        }
        None => 0,
    };
    hub.fork_root.set(root);
    // The hub is this process's now: its thread's exit may end its greenlets, and the
    // monitor and `dump_all` see it.
    hub.pid.set(std::process::id());
    crate::monitor::registry::adopt_in_child(&hub.stats.entry, remote.clone());
    Ok(Replaced {
        _poll: std::mem::replace(&mut *hub.poll.borrow_mut(), poll),
        _remote: std::mem::replace(&mut *hub.remote.borrow_mut(), remote),
    })
}
