//! Pipe, FIFO, device and file hooks: `read`/`write`/`readv`/`writev` on non-sockets.

mod common;
use common::{pipe, ticker};

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use greenweave_runtime::{coop, sleep, spawn};

fn read_fd(fd: RawFd, buf: &mut [u8]) -> isize {
    // SAFETY: a valid buffer of the length given.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn write_fd(fd: RawFd, buf: &[u8]) -> isize {
    // SAFETY: a valid buffer of the length given.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

fn last_errno() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

#[test]
fn a_reader_parks_until_a_writer_greenlet_writes() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let (ticks, t) = ticker();
    let writer = spawn(move || {
        sleep(Duration::from_millis(50));
        assert_eq!(write_fd(w.as_raw_fd(), b"ping"), 4);
    });
    let mut buf = [0; 16];
    assert_eq!(read_fd(r.as_raw_fd(), &mut buf), 4);
    assert_eq!(&buf[..4], b"ping");
    common::assert_ticked(&ticks, 5, "reading");
    writer.join().unwrap();
    t.kill();
}

#[test]
fn one_big_blocking_write_to_a_pipe_writes_it_all() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let expected = big.clone();
    let reader = spawn(move || {
        let mut got = Vec::new();
        let mut f = std::fs::File::from(r);
        f.read_to_end(&mut got).unwrap(); // parks on every empty pipe, then EOF
        assert!(got == expected);
    });
    // The pipe holds 64 KiB: the hook parks and goes on until all 1 MiB is written.
    assert_eq!(write_fd(w.as_raw_fd(), &big), big.len() as isize);
    drop(w);
    reader.join().unwrap();
}

#[test]
fn vectored_pipe_calls() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let writer = spawn(move || {
        sleep(Duration::from_millis(10));
        let mut f = std::fs::File::from(w);
        let parts = [std::io::IoSlice::new(b"ab"), std::io::IoSlice::new(b"cde")];
        assert_eq!(f.write_vectored(&parts).unwrap(), 5);
    });
    let (mut x, mut y) = ([0_u8; 3], [0_u8; 2]);
    let mut f = std::fs::File::from(r);
    let mut parts = [
        std::io::IoSliceMut::new(&mut x),
        std::io::IoSliceMut::new(&mut y),
    ];
    assert_eq!(f.read_vectored(&mut parts).unwrap(), 5);
    assert_eq!((&x, &y), (b"abc", b"de"));
    writer.join().unwrap();
}

#[test]
fn a_user_nonblocking_pipe_says_eagain_at_once() {
    greenweave_monkey::patch_all();
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two fds.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
    assert_eq!(rc, 0);
    let (ticks, t) = ticker();
    assert_eq!(read_fd(fds[0], &mut [0; 4]), -1);
    assert_eq!(last_errno(), Some(libc::EAGAIN));
    assert_eq!(ticks.get(), 0, "the read parked");
    t.kill();
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

#[test]
fn a_plain_os_thread_blocks_in_read_as_usual() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let reader = std::thread::spawn(move || {
        let mut buf = [0; 8];
        let n = read_fd(r.as_raw_fd(), &mut buf);
        (n, buf, coop::can_park())
    });
    let (ticks, t) = ticker();
    // The greenlets of this thread keep running while the plain thread waits (waited
    // for rather than timed: a loaded machine may run the 1 ms ticker rarely).
    let start = std::time::Instant::now();
    while ticks.get() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the ticker stopped"
        );
        sleep(Duration::from_millis(5));
    }
    assert!(
        !reader.is_finished(),
        "the plain thread did not wait for data"
    );
    assert_eq!(write_fd(w.as_raw_fd(), b"data"), 4);
    let (n, buf, had_hub) = reader.join().unwrap();
    assert_eq!((n, &buf[..4]), (4, &b"data"[..]));
    assert!(!had_hub, "the hook gave the plain thread a hub");
    t.kill();
}

#[test]
fn a_named_fifo_without_rwf_nowait_still_cooperates() {
    greenweave_monkey::patch_all();
    let dir = std::env::temp_dir().join(format!("greenweave-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fifo");
    let _ = std::fs::remove_file(&path);
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // Open both ends without blocking, then make the read end blocking again.
    let r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // SAFETY: F_SETFL with an int argument on our own fd.
    assert_eq!(unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, 0) }, 0);
    let big: Vec<u8> = (0..300_000).map(|i: u32| (i % 241) as u8).collect();
    let expected = big.clone();
    let (ticks, t) = ticker();
    let reader = spawn(move || {
        let mut got = Vec::new();
        let mut r = r;
        r.read_to_end(&mut got).unwrap();
        assert!(got == expected);
    });
    let writer = spawn(move || {
        sleep(Duration::from_millis(20));
        // More than the FIFO holds, in one call: written whole, PIPE_BUF at a time.
        assert_eq!(write_fd(w.as_raw_fd(), &big), big.len() as isize);
    });
    writer.join().unwrap();
    reader.join().unwrap();
    common::assert_ticked(&ticks, 2, "the fifo was read and written");
    t.kill();
    std::fs::remove_dir_all(&dir).unwrap();
}

use std::os::unix::fs::OpenOptionsExt;

#[test]
fn an_eventfd_read_parks_until_it_is_signalled() {
    greenweave_monkey::patch_all();
    // SAFETY: plain arguments.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(efd >= 0);
    let (ticks, t) = ticker();
    let signaller = spawn(move || {
        sleep(Duration::from_millis(30));
        assert_eq!(write_fd(efd, &3_u64.to_ne_bytes()), 8);
    });
    let mut buf = [0; 8];
    assert_eq!(read_fd(efd, &mut buf), 8);
    assert_eq!(u64::from_ne_bytes(buf), 3);
    common::assert_ticked(&ticks, 3, "the eventfd read waited");
    signaller.join().unwrap();
    t.kill();
    // SAFETY: closing our own fd.
    unsafe { libc::close(efd) };
}

#[test]
fn regular_files_and_dev_null_pass_through() {
    greenweave_monkey::patch_all();
    let path = std::env::temp_dir().join(format!("greenweave-file-{}", std::process::id()));
    let data: Vec<u8> = (0..100_000).map(|i: u32| (i % 199) as u8).collect();
    let expected = data.clone();
    let p = path.clone();
    spawn(move || {
        std::fs::write(&p, &data).unwrap();
        assert!(std::fs::read(&p).unwrap() == expected);
        let mut null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(null.read(&mut [0; 8]).unwrap(), 0);
    })
    .join()
    .unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn errno_survives_a_call_that_parked() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let writer = spawn(move || {
        sleep(Duration::from_millis(10));
        write_fd(w.as_raw_fd(), b"x")
    });
    // SAFETY: the calling thread's errno slot.
    unsafe { *libc::__errno_location() = libc::EILSEQ };
    let start = Instant::now();
    assert_eq!(read_fd(r.as_raw_fd(), &mut [0; 4]), 1); // parks: EAGAIN on the way
    assert!(start.elapsed() >= Duration::from_millis(5));
    assert_eq!(last_errno(), Some(libc::EILSEQ));
    assert_eq!(writer.join().unwrap(), 1);
}
