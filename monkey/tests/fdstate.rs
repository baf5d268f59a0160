//! The per-fd state behind the hooks: flags the user sees, dup'd and reused fd numbers,
//! and an unpatched process left alone.

mod common;
use common::pipe;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenweave_monkey::Area;
use greenweave_runtime::{JoinHandle, sleep, spawn, yield_now};

const CHILD_ENV: &str = "GREENWEAVE_MONKEY_UNPATCHED_CHILD";

fn read_fd(fd: RawFd, buf: &mut [u8]) -> isize {
    // SAFETY: a valid buffer of the length given.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn write_fd(fd: RawFd, buf: &[u8]) -> isize {
    // SAFETY: a valid buffer of the length given.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

fn nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}

/// Writes `data` to `fd` from a greenlet after `delay`.
fn write_later(fd: RawFd, delay: Duration, data: &'static [u8]) -> JoinHandle<isize> {
    spawn(move || {
        sleep(delay);
        write_fd(fd, data)
    })
}

#[test]
fn f_getfl_shows_o_nonblock_only_when_the_user_set_it() {
    greenweave_monkey::patch_all();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        assert!(!nonblocking(conn.as_raw_fd()));
        sleep(Duration::from_millis(20));
        (&conn).write_all(b"hi").unwrap();
        conn
    });
    let conn = TcpStream::connect(addr).unwrap(); // the hook made it non-blocking briefly
    assert!(!nonblocking(conn.as_raw_fd()));
    let mut buf = [0; 2];
    (&conn).read_exact(&mut buf).unwrap(); // parked
    assert!(!nonblocking(conn.as_raw_fd()));
    conn.set_nonblocking(true).unwrap();
    assert!(nonblocking(conn.as_raw_fd()));
    assert_eq!(
        (&conn).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    conn.set_nonblocking(false).unwrap();
    assert!(!nonblocking(conn.as_raw_fd()));
    drop(server.join().unwrap());

    // fcntl(F_SETFL) on a pipe: seen at once by the next read.
    let (r, _w) = pipe();
    // SAFETY: F_SETFL with an int argument on our own fd.
    let rc = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    assert_eq!(rc, 0);
    assert!(nonblocking(r.as_raw_fd()));
    assert_eq!(read_fd(r.as_raw_fd(), &mut buf), -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EAGAIN)
    );
}

#[test]
fn dup_dup2_and_f_dupfd_fds_work_like_the_original() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    // SAFETY: plain fd arguments; the copies are closed below.
    let (a, b, c) = unsafe {
        (
            libc::dup(r.as_raw_fd()),
            libc::fcntl(r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100),
            libc::dup3(r.as_raw_fd(), 4_321, libc::O_CLOEXEC),
        )
    };
    assert!(a >= 0 && b >= 100 && c == 4_321);
    for fd in [a, b, c] {
        let writer = write_later(w.as_raw_fd(), Duration::from_millis(5), b"z");
        let start = Instant::now();
        assert_eq!(read_fd(fd, &mut [0; 4]), 1); // parks on the copy
        assert!(start.elapsed() >= Duration::from_millis(3));
        assert_eq!(writer.join().unwrap(), 1);
        // SAFETY: closing our own copy.
        unsafe { libc::close(fd) };
    }
}

#[test]
fn dup2_over_an_fd_wakes_its_waiter_with_ebadf() {
    greenweave_monkey::patch_all();
    let (r, _w) = pipe();
    let (other, _ow) = pipe();
    // SAFETY: a plain fd argument; the copy is closed below.
    let target = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
    let waiter = spawn(move || {
        let n = read_fd(target, &mut [0; 4]);
        (n, std::io::Error::last_os_error().raw_os_error())
    });
    yield_now();
    // SAFETY: replacing our own copy.
    assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), target) }, target);
    assert_eq!(waiter.join().unwrap(), (-1, Some(libc::EBADF)));
    // SAFETY: closing our own copy.
    unsafe { libc::close(target) };
}

#[test]
fn a_reused_fd_number_is_not_mistaken_for_the_old_file() {
    greenweave_monkey::patch_all();
    const N: RawFd = 7_777;
    // A pipe at N, used cooperatively (so its kind is known), closed by the hook.
    let (r, w) = pipe();
    // SAFETY: plain fd arguments.
    assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), N) }, N);
    let writer = write_later(w.as_raw_fd(), Duration::from_millis(5), b"p");
    assert_eq!(read_fd(N, &mut [0; 4]), 1);
    writer.join().unwrap();
    // SAFETY: closing our own fd.
    unsafe { libc::close(N) };

    // Now a socket at N: reads park and get the socket's data.
    let (s1, s2) = UnixStream::pair().unwrap();
    // SAFETY: plain fd arguments.
    assert_eq!(unsafe { libc::dup2(s1.as_raw_fd(), N) }, N);
    let writer = write_later(s2.as_raw_fd(), Duration::from_millis(5), b"sock");
    let mut buf = [0; 8];
    assert_eq!(read_fd(N, &mut buf), 4);
    assert_eq!(&buf[..4], b"sock");
    writer.join().unwrap();

    // Closed behind the hooks' back (a raw syscall) and replaced, also behind their
    // back, by a regular file: the stale socket entry still reads the file right.
    let path = std::env::temp_dir().join(format!("greenweave-reuse-{}", std::process::id()));
    std::fs::write(&path, b"file contents").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: raw syscalls on our own fds.
    unsafe {
        assert_eq!(libc::syscall(libc::SYS_close, N), 0);
        assert_eq!(
            libc::syscall(libc::SYS_dup3, file.as_raw_fd(), N, libc::O_CLOEXEC),
            N as i64
        );
    }
    let mut buf = [0; 64];
    assert_eq!(read_fd(N, &mut buf), 13);
    assert_eq!(&buf[..13], b"file contents");
    // A pipe's entry (set by the dup2 hook), then the file again behind the hooks'
    // back: read with the pipe's non-blocking method, still the file's bytes.
    // SAFETY: plain fd arguments.
    assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), N) }, N);
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_dup3, file.as_raw_fd(), N, libc::O_CLOEXEC),
            N as i64
        );
        assert_eq!(libc::lseek(N, 0, libc::SEEK_SET), 0);
    }
    assert_eq!(read_fd(N, &mut buf), 13);
    assert_eq!(&buf[..13], b"file contents");
    // SAFETY: closing our own fd.
    unsafe { libc::close(N) };
    std::fs::remove_file(&path).unwrap();
}

/// In a child process that never patches: blocking calls block the thread.
fn unpatched_child() {
    assert!(!greenweave_monkey::is_patched(Area::Socket));
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let ticker = spawn(move || {
        loop {
            sleep(Duration::from_millis(1));
            t.set(t.get() + 1);
        }
    });
    yield_now(); // the ticker is now sleeping; main can park
    let (r, w) = pipe();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        write_fd(w.as_raw_fd(), b"late")
    });
    let start = Instant::now();
    let mut buf = [0; 8];
    // The real read: the whole thread waits, so the ticker cannot tick.
    assert_eq!(read_fd(r.as_raw_fd(), &mut buf), 4);
    assert!(start.elapsed() >= Duration::from_millis(40));
    assert_eq!(ticks.get(), 0, "the read parked in an unpatched process");
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    assert_eq!(
        (&a).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(ticks.get(), 0, "the recv parked in an unpatched process");
    assert_eq!(writer.join().unwrap(), 4);
    ticker.kill();
}

#[test]
fn without_patching_nothing_changes() {
    if std::env::var_os(CHILD_ENV).is_some() {
        unpatched_child();
        return;
    }
    greenweave_monkey::patch_all();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .env(CHILD_ENV, "1")
        .args([
            "--exact",
            "without_patching_nothing_changes",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the unpatched child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[test]
fn a_forked_child_leaves_the_parents_waits_alone() {
    greenweave_monkey::patch_all();
    let (r, w) = pipe();
    let fd = r.as_raw_fd();
    let reader = spawn(move || {
        let mut buf = [0; 8];
        let n = read_fd(fd, &mut buf); // parks, registered with the hub's epoll
        (n, buf)
    });
    yield_now();
    // SAFETY: the child only calls async-signal-safe functions (close, write, _exit)
    // through the hooks, which pass straight through in a forked child.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // The hub here is a copy sharing the parent's epoll instance: closing the fd
        // must not unregister the parent's waiter.
        // SAFETY: as above.
        unsafe {
            libc::close(fd);
            libc::_exit(0);
        }
    }
    assert!(child > 0);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert_eq!(write_fd(w.as_raw_fd(), b"after"), 5);
    let (n, buf) = reader
        .join_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("the parent's waiter was not woken"));
    assert_eq!((n, &buf[..5]), (5, &b"after"[..]));
    drop(r);
}
