//! `sendfile` and `splice` (and so `std::io::copy` between files, pipes and sockets) in
//! greenlets: parking on the socket or pipe side, whole sends, one-transfer splices,
//! offsets advanced by exactly what moved, files passed through.

mod common;
use common::{pipe, ticker};

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use greenweave_runtime::{JoinError, sleep, spawn, yield_now};

/// A file in memory (a regular file to the kernel) holding `len` patterned bytes.
fn file_of(len: usize) -> (File, Vec<u8>) {
    // SAFETY: a NUL-terminated name; the fd is new and owned by the File.
    let mut f =
        unsafe { File::from_raw_fd(libc::memfd_create(c"data".as_ptr(), libc::MFD_CLOEXEC)) };
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    f.write_all(&data).unwrap();
    f.rewind().unwrap();
    (f, data)
}

fn sendfile(out: RawFd, input: RawFd, offset: Option<&mut libc::off_t>, count: usize) -> isize {
    let off = offset.map_or(std::ptr::null_mut(), |o| o as *mut _);
    // SAFETY: open fds; a valid or null offset.
    unsafe { libc::sendfile(out, input, off, count) }
}

fn splice(input: RawFd, out: RawFd, len: usize) -> isize {
    let null = std::ptr::null_mut();
    // SAFETY: open fds, no offsets.
    unsafe { libc::splice(input, null, out, null, len, 0) }
}

fn errno() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

/// A greenlet reading `len` bytes from `from`, yielding between reads.
fn read_len(mut from: impl Read + 'static, len: usize) -> greenweave_runtime::JoinHandle<Vec<u8>> {
    spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0_u8; 16 * 1024];
        while got.len() < len {
            let n = from.read(&mut buf).unwrap();
            assert_ne!(n, 0, "early end of file after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
            yield_now();
        }
        got
    })
}

#[test]
fn sendfile_of_4_mib_to_a_socket_sends_it_all_while_the_reader_runs() {
    greenweave_monkey::patch_all();
    const LEN: usize = 4 << 20;
    let (file, data) = file_of(LEN);
    let (a, b) = UnixStream::pair().unwrap();
    // 4 MiB is far more than the socket holds: only a parked sendfile lets this finish.
    let reader = read_len(b, LEN);
    let mut offset: libc::off_t = 0;
    assert_eq!(
        sendfile(a.as_raw_fd(), file.as_raw_fd(), Some(&mut offset), LEN),
        LEN as isize
    );
    assert_eq!(offset, LEN as libc::off_t);
    assert_eq!(
        (&file).stream_position().unwrap(),
        0,
        "an explicit offset leaves the position"
    );
    assert!(reader.join().unwrap() == data, "bytes lost or reordered");
}

#[test]
fn sendfile_of_8_mib_to_a_tcp_stream_is_cooperative() {
    greenweave_monkey::patch_all();
    const LEN: usize = 8 << 20;
    let (file, data) = file_of(LEN);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        read_len(conn, LEN).join().unwrap()
    });
    // The server greenlet reads on this thread: the send can only finish if it parks.
    let conn = TcpStream::connect(addr).unwrap();
    // (std's io::copy sends File -> TcpStream by read/send; sendfile is for C code.)
    assert_eq!(
        sendfile(conn.as_raw_fd(), file.as_raw_fd(), None, LEN),
        LEN as isize
    );
    assert_eq!(
        (&file).stream_position().unwrap(),
        LEN as u64,
        "the position advanced"
    );
    assert!(server.join().unwrap() == data, "bytes lost or reordered");
}

#[test]
fn sendfile_into_a_pipe_is_one_transfer_and_parks_while_the_pipe_is_full() {
    greenweave_monkey::patch_all();
    const LEN: usize = 1 << 20;
    let (file, data) = file_of(LEN);
    let (r, w) = pipe();
    // An empty pipe: one transfer of what fits (64 KiB), at once, as the kernel gives.
    let first = sendfile(w.as_raw_fd(), file.as_raw_fd(), None, LEN);
    assert!(first > 0 && (first as usize) < LEN, "{first}");
    // The pipe is full now: each call parks until the reader greenlet (on this thread)
    // makes room; blocking the thread instead would never finish.
    let reader = read_len(File::from(r), LEN);
    let mut sent = first as usize;
    while sent < LEN {
        let n = sendfile(w.as_raw_fd(), file.as_raw_fd(), None, LEN - sent);
        assert!(n > 0, "{n} {:?}", errno());
        sent += n as usize;
    }
    assert_eq!((&file).stream_position().unwrap(), LEN as u64);
    assert!(reader.join().unwrap() == data, "bytes lost or reordered");
}

#[test]
fn splice_from_a_socket_parks_until_data_comes() {
    greenweave_monkey::patch_all();
    let (a, b) = UnixStream::pair().unwrap();
    let (r, w) = pipe();
    let (ticks, t) = ticker();
    spawn(move || {
        sleep(Duration::from_millis(30));
        (&a).write_all(b"hello").unwrap();
    });
    assert_eq!(splice(b.as_raw_fd(), w.as_raw_fd(), 65536), 5);
    let mut buf = [0_u8; 8];
    assert_eq!(File::from(r).read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    common::assert_ticked(&ticks, 10, "splice waited for data");
    t.kill();
}

#[test]
fn std_io_copy_from_a_pipe_to_a_full_socket_parks_on_both_sides() {
    greenweave_monkey::patch_all();
    const LEN: usize = 2 << 20;
    let (r, w) = pipe();
    let (a, b) = UnixStream::pair().unwrap();
    let (_, data) = file_of(LEN);
    let payload = data.clone();
    // The writer fills the pipe bit by bit; the reader drains the socket. Between
    // them io::copy splices pipe -> socket, and must park whenever the pipe is empty
    // or the socket full.
    let writer = spawn(move || {
        let mut w = File::from(w);
        for chunk in payload.chunks(100_000) {
            w.write_all(chunk).unwrap();
            sleep(Duration::from_millis(1));
        }
    });
    let reader = read_len(b, LEN);
    let mut from = File::from(r);
    let mut to = a;
    assert_eq!(std::io::copy(&mut from, &mut to).unwrap(), LEN as u64);
    writer.join().unwrap();
    assert!(reader.join().unwrap() == data, "bytes lost or reordered");
}

#[test]
fn a_killed_sendfile_returns_what_it_sent_and_the_offset_agrees() {
    greenweave_monkey::patch_all();
    const LEN: usize = 4 << 20;
    let (file, _) = file_of(LEN);
    let (a, b) = UnixStream::pair().unwrap();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let (out, input) = (a.as_raw_fd(), file.as_raw_fd());
    let h = spawn(move || {
        let mut offset: libc::off_t = 0;
        let n = sendfile(out, input, Some(&mut offset), LEN); // nobody reads: parks
        s.set(Some((n, offset)));
        sleep(Duration::from_millis(1)); // unwinds: the kill was put back, pending
    });
    yield_now();
    h.kill();
    assert!(matches!(h.join(), Err(JoinError::Killed)));
    let (n, offset) = seen.get().unwrap();
    assert!(n > 0 && (n as usize) < LEN, "{n}");
    assert_eq!(offset, n as libc::off_t);
    let mut queued = 0;
    b.set_nonblocking(true).unwrap();
    let mut buf = vec![0_u8; 1 << 20];
    while let Ok(k) = (&b).read(&mut buf) {
        queued += k;
    }
    assert_eq!(queued, n as usize, "the count is what the peer can read");
}

#[test]
fn file_to_file_sendfile_passes_through() {
    greenweave_monkey::patch_all();
    let (src, data) = file_of(100_000);
    let (dst, _) = file_of(0);
    assert_eq!(
        sendfile(dst.as_raw_fd(), src.as_raw_fd(), None, 1 << 20),
        100_000
    );
    let mut back = Vec::new();
    let mut dst = dst;
    dst.rewind().unwrap();
    dst.read_to_end(&mut back).unwrap();
    assert!(back == data);
}
