//! `recvmmsg`/`sendmmsg` in greenlets: whole batches as the kernel's blocking calls give
//! them, `MSG_WAITFORONE`, the after-each-message timeout, user-non-blocking sockets,
//! socket timeouts, partial counts on interrupts, stream messages sent whole.

mod common;
use common::ticker;

use std::cell::Cell;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_runtime::{JoinError, sleep, spawn, yield_now};

/// `count` receive buffers of `size` bytes and the headers (with iovecs) over them.
struct Batch {
    bufs: Vec<Vec<u8>>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(bufs: Vec<Vec<u8>>) -> Box<Batch> {
        let mut b = Box::new(Batch {
            bufs,
            iovs: Vec::new(),
            hdrs: Vec::new(),
        });
        let Batch { bufs, iovs, hdrs } = &mut *b;
        for buf in bufs.iter_mut() {
            iovs.push(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            });
        }
        for iov in iovs.iter_mut() {
            // SAFETY: an all-zero mmsghdr is valid (no name, no control).
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            hdrs.push(h);
        }
        b
    }

    fn empty(count: usize, size: usize) -> Box<Batch> {
        Batch::new(vec![vec![0; size]; count])
    }

    /// The first `n` messages received, as text.
    fn texts(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| String::from_utf8_lossy(&self.bufs[i][..self.hdrs[i].msg_len as usize]).into())
            .collect()
    }

    fn recv(&mut self, fd: RawFd, flags: i32, timeout: Option<&mut libc::timespec>) -> i32 {
        let t = timeout.map_or(std::ptr::null_mut(), |t| t as *mut _);
        // SAFETY: valid headers over live buffers; a valid or null timeout.
        unsafe { libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), self.hdrs.len() as u32, flags, t) }
    }

    fn send(&mut self, fd: RawFd) -> i32 {
        // SAFETY: valid headers over live buffers.
        unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr(), self.hdrs.len() as u32, 0) }
    }
}

fn errno() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

/// A greenlet sending `msgs` on `a`, `gap` apart (the first after `gap`).
fn send_later(a: UnixDatagram, msgs: &'static [&'static str], gap: Duration) {
    spawn(move || {
        for m in msgs {
            sleep(gap);
            a.send(m.as_bytes()).unwrap();
        }
    });
}

#[test]
fn recvmmsg_waits_for_all_vlen_messages_while_others_run() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixDatagram::pair().unwrap();
    let (ticks, t) = ticker();
    send_later(a, &["m0", "m1", "m2", "m3"], Duration::from_millis(20));
    let mut batch = Batch::empty(4, 16);
    assert_eq!(batch.recv(b.as_raw_fd(), 0, None), 4);
    assert_eq!(batch.texts(4), ["m0", "m1", "m2", "m3"]);
    common::assert_ticked(&ticks, 10, "recvmmsg waited for all its messages");
    t.kill();
}

#[test]
fn msg_waitforone_returns_with_what_the_first_wake_finds() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixDatagram::pair().unwrap();
    spawn(move || {
        sleep(Duration::from_millis(20));
        a.send(b"x").unwrap(); // both go before the receiver runs again
        a.send(b"y").unwrap();
    });
    let mut batch = Batch::empty(4, 16);
    assert_eq!(batch.recv(b.as_raw_fd(), libc::MSG_WAITFORONE, None), 2);
    assert_eq!(batch.texts(2), ["x", "y"]);
}

#[test]
fn the_timeout_is_checked_after_each_message_and_written_back() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixDatagram::pair().unwrap();
    // Expired by the time the first message comes: that one is the answer.
    send_later(a.try_clone().unwrap(), &["late"], Duration::from_millis(80));
    let mut timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 30_000_000,
    };
    let mut batch = Batch::empty(4, 16);
    assert_eq!(batch.recv(b.as_raw_fd(), 0, Some(&mut timeout)), 1);
    assert_eq!(batch.texts(1), ["late"]);
    assert_eq!((timeout.tv_sec, timeout.tv_nsec), (0, 0));
    // Not expired: all four, and the time left comes back.
    send_later(a, &["a", "b", "c", "d"], Duration::from_millis(5));
    let mut timeout = libc::timespec {
        tv_sec: 5,
        tv_nsec: 0,
    };
    assert_eq!(batch.recv(b.as_raw_fd(), 0, Some(&mut timeout)), 4);
    assert_eq!(batch.texts(4), ["a", "b", "c", "d"]);
    assert!(
        timeout.tv_sec >= 3 && timeout.tv_sec < 5,
        "{}",
        timeout.tv_sec
    );
}

#[test]
fn user_non_blocking_sockets_and_socket_timeouts_are_honoured() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixDatagram::pair().unwrap();
    let mut batch = Batch::empty(4, 16);
    b.set_nonblocking(true).unwrap();
    assert_eq!(
        (batch.recv(b.as_raw_fd(), 0, None), errno()),
        (-1, Some(libc::EAGAIN))
    );
    a.send(b"one").unwrap();
    assert_eq!(batch.recv(b.as_raw_fd(), 0, None), 1);
    b.set_nonblocking(false).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let start = Instant::now();
    assert_eq!(
        (batch.recv(b.as_raw_fd(), 0, None), errno()),
        (-1, Some(libc::EAGAIN))
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
    a.send(b"two").unwrap();
    assert_eq!(
        batch.recv(b.as_raw_fd(), 0, None),
        1,
        "the count after some"
    );
    assert_eq!(batch.texts(1), ["two"]);
}

#[test]
fn a_kill_mid_batch_returns_the_count_so_far_or_ecanceled() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixDatagram::pair().unwrap();
    let fd = b.as_raw_fd();
    let seen = Rc::new(Cell::new(None));
    for queued in [0, 2] {
        for _ in 0..queued {
            a.send(b"q").unwrap();
        }
        let s = seen.clone();
        let h = spawn(move || {
            let rc = Batch::empty(4, 16).recv(fd, 0, None);
            s.set(Some((rc, errno())));
            // Unwinds if the kill is still pending (not reported by the batch).
            sleep(Duration::from_millis(1));
        });
        yield_now();
        h.kill();
        let joined = h.join();
        let (rc, err) = seen.get().unwrap();
        if queued == 0 {
            assert_eq!((rc, err), (-1, Some(libc::ECANCELED)));
            assert!(joined.is_ok(), "the errno delivered the kill");
        } else {
            assert_eq!(rc, 2, "the count so far");
            assert!(
                matches!(joined, Err(JoinError::Killed)),
                "the count was the answer: the kill stayed pending"
            );
        }
    }
}

#[test]
fn sendmmsg_into_a_full_stream_sends_every_message_whole() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixStream::pair().unwrap();
    // 512 KiB is more than the socket holds: the call can only finish if the reader
    // greenlet runs while it is parked.
    let msgs: Vec<Vec<u8>> = (0..8_u8).map(|i| vec![i; 64 * 1024]).collect();
    let expected: Vec<u8> = msgs.concat();
    let reader = spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0_u8; 4096];
        while got.len() < 8 * 64 * 1024 {
            let n = (&b).read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            yield_now();
        }
        got
    });
    let mut batch = Batch::new(msgs);
    assert_eq!(batch.send(a.as_raw_fd()), 8);
    assert!(batch.hdrs.iter().all(|h| h.msg_len == 64 * 1024));
    assert!(
        reader.join().unwrap() == expected,
        "bytes lost or reordered"
    );
}

#[test]
fn sendmmsg_on_a_full_datagram_socket_parks_until_the_reader_drains() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixDatagram::pair().unwrap();
    let reader = spawn(move || {
        sleep(Duration::from_millis(30));
        let mut got = Vec::new();
        let mut buf = [0_u8; 4096];
        while got.len() < 200 {
            let n = b.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    });
    // 200 datagrams of 2 KiB: more than the sender's socket buffer holds.
    let names: Vec<String> = (0..200)
        .map(|i| format!("d{i:04}{}", ".".repeat(2048)))
        .collect();
    let mut batch = Batch::new(names.iter().map(|n| n.clone().into_bytes()).collect());
    let start = Instant::now();
    assert_eq!(batch.send(a.as_raw_fd()), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "never waited for the reader"
    );
    assert_eq!(reader.join().unwrap(), names);
}

#[test]
fn empty_batches_and_non_sockets_pass_through() {
    greenweave_monkey::patch_all();
    let (_a, b) = UnixDatagram::pair().unwrap();
    let mut batch = Batch::empty(0, 0);
    assert_eq!(batch.recv(b.as_raw_fd(), 0, None), 0);
    let (r, _w) = common::pipe();
    let mut batch = Batch::empty(1, 4);
    assert_eq!(
        (batch.recv(r.as_raw_fd(), 0, None), errno()),
        (-1, Some(libc::ENOTSOCK))
    );
    assert_eq!((batch.send(-1), errno()), (-1, Some(libc::EBADF)));
}
