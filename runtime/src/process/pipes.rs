//! Reading a child's stdout and stderr to their ends at once, in one greenlet.
//!
//! Both pipes are made non-blocking (only the parent's ends: the child's are separate
//! open files) and registered, edge-triggered, with a private `mio::Poll`, whose epoll
//! fd becomes readable when either pipe has data or hangs up; the greenlet parks on
//! that one fd in the hub. Each round drains every open pipe until it would block, so
//! a child that fills one pipe while the other is quiet never deadlocks, whatever the
//! amounts, and one that closes a stream early simply finishes that stream early.

use std::io::{self, ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::process::{ChildStderr, ChildStdout};
use std::time::Duration;

use mio::unix::pipe::Receiver;
use mio::{Events, Interest, Poll, Token};

use crate::io::{Direction, Keep};
use crate::park::raise;

/// One pipe being read to its end.
struct Stream {
    pipe: Receiver,
    data: Vec<u8>,
    open: bool,
}

impl Stream {
    fn new(pipe: Receiver, poll: &Poll, token: usize) -> io::Result<Stream> {
        pipe.set_nonblocking(true)?;
        let mut stream = Stream {
            pipe,
            data: Vec::new(),
            open: true,
        };
        poll.registry()
            .register(&mut stream.pipe, Token(token), Interest::READABLE)?;
        Ok(stream)
    }

    /// Reads what the pipe holds now; notes the end of file.
    fn drain(&mut self) -> io::Result<()> {
        while self.open {
            match self.pipe.read_to_end(&mut self.data) {
                Ok(_) => self.open = false,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// Reads `stdout` and `stderr` (those given) to their ends concurrently, parking the
/// greenlet while neither has data. Returns what each held (empty if not given).
///
/// # Panics
///
/// Unwinds with `GreenletExit` or a `Timeout`'s payload if interrupted while parked
/// (the pipes are closed on the way out).
#[track_caller]
pub(super) fn read_both(
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut poll = Poll::new()?;
    let mut streams = [
        stdout
            .map(|p| Stream::new(Receiver::from(p), &poll, 0))
            .transpose()?,
        stderr
            .map(|p| Stream::new(Receiver::from(p), &poll, 1))
            .transpose()?,
    ];
    let mut events = Events::with_capacity(2);
    loop {
        for stream in streams.iter_mut().flatten() {
            stream.drain()?;
        }
        if !streams.iter().flatten().any(|s| s.open) {
            break;
        }
        let ready = crate::io::wait(poll.as_raw_fd(), Direction::Read, None, Keep::Once);
        ready.unwrap_or_else(|interrupt| raise(interrupt))?;
        // Consume the events (which pipe does not matter: every open one is drained).
        match poll.poll(&mut events, Some(Duration::ZERO)) {
            Err(err) if err.kind() != ErrorKind::Interrupted => return Err(err),
            _ => {}
        }
    }
    let [stdout, stderr] = streams.map(|s| s.map(|s| s.data).unwrap_or_default());
    Ok((stdout, stderr))
}
