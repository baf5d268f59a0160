//! The one client driver every echo server is measured with.

use super::*;

// ---------------------------------------------------------------------------------
// The client driver.

/// A request to the client driver's thread; each carries where to send its answer.
pub(super) enum Command {
    /// Open `conns` connections to `addr` (closing any left open).
    Connect {
        addr: SocketAddr,
        conns: usize,
        done: mpsc::Sender<()>,
    },
    /// `rounds` round trips of `size` bytes spread over the open connections.
    Echo {
        rounds: u64,
        size: usize,
        done: mpsc::Sender<Duration>,
    },
    /// Close the open connections.
    Disconnect { done: mpsc::Sender<()> },
    /// Open and close `count` connections to `addr`, `ACCEPT_CONCURRENCY` at once.
    Accept {
        addr: SocketAddr,
        count: u64,
        done: mpsc::Sender<Duration>,
    },
}

/// The client side of every bench: a greenweave hub on its own thread.
pub(super) struct ClientDriver {
    pub(super) commands: Option<mpsc::Sender<Command>>,
    pub(super) thread: Option<thread::JoinHandle<()>>,
}

impl ClientDriver {
    pub(super) fn start() -> ClientDriver {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("echo-client-driver".into())
            .spawn(move || driver_main(&rx))
            .expect("start the client driver");
        ClientDriver {
            commands: Some(tx),
            thread: Some(thread),
        }
    }

    /// Sends a command made with a fresh answer channel and waits for the answer.
    pub(super) fn call<T>(&self, command: impl FnOnce(mpsc::Sender<T>) -> Command) -> T {
        let (tx, rx) = mpsc::channel();
        self.commands
            .as_ref()
            .expect("driver running")
            .send(command(tx))
            .expect("the client driver is alive");
        rx.recv().expect("the client driver answers")
    }

    pub(super) fn connect(&self, addr: SocketAddr, conns: usize) {
        self.call(|done| Command::Connect { addr, conns, done });
    }

    pub(super) fn echo(&self, rounds: u64, size: usize) -> Duration {
        self.call(|done| Command::Echo { rounds, size, done })
    }

    pub(super) fn disconnect(&self) {
        self.call(|done| Command::Disconnect { done });
    }

    pub(super) fn accept(&self, addr: SocketAddr, count: u64) -> Duration {
        self.call(|done| Command::Accept { addr, count, done })
    }
}

impl Drop for ClientDriver {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The driver thread: runs commands until the sender is dropped. It blocks its OS
/// thread in `recv` between commands, when none of its greenlets has work.
pub(super) fn driver_main(commands: &mpsc::Receiver<Command>) {
    let mut conns: Vec<Rc<TcpStream>> = Vec::new();
    while let Ok(command) = commands.recv() {
        match command {
            Command::Connect {
                addr,
                conns: n,
                done,
            } => {
                conns.clear();
                conns = open_connections(addr, n);
                let _ = done.send(());
            }
            Command::Echo { rounds, size, done } => {
                let _ = done.send(echo_rounds(&conns, rounds, size));
            }
            Command::Disconnect { done } => {
                for c in conns.drain(..) {
                    let _ = c.shutdown(Shutdown::Both);
                }
                let _ = done.send(());
            }
            Command::Accept { addr, count, done } => {
                let _ = done.send(connect_close(addr, count));
            }
        }
    }
}

pub(super) fn open_connections(addr: SocketAddr, n: usize) -> Vec<Rc<TcpStream>> {
    reqresp::connect_in_greenlets(addr, n, reqresp::greenweave_connect)
}

/// `rounds` round trips spread over `conns` (all at once); the time they took.
pub(super) fn echo_rounds(conns: &[Rc<TcpStream>], rounds: u64, size: usize) -> Duration {
    let n = conns.len() as u64;
    let (per, extra) = (rounds / n, rounds % n);
    let msg: Rc<[u8]> = (0..size).map(|i| (i * 7 + 1) as u8).collect();
    let start = Instant::now();
    let jobs: Vec<_> = conns
        .iter()
        .enumerate()
        .filter_map(|(i, conn)| {
            let k = per + u64::from((i as u64) < extra);
            (k > 0).then(|| {
                let (conn, msg) = (conn.clone(), msg.clone());
                greenweave::spawn(move || -> io::Result<()> {
                    let mut buf = vec![0; msg.len()];
                    for _ in 0..k {
                        (&*conn).write_all(&msg)?;
                        (&*conn).read_exact(&mut buf)?;
                        assert!(buf[..] == msg[..], "the server echoed other bytes");
                    }
                    Ok(())
                })
            })
        })
        .collect();
    for result in greenweave::joinall(jobs) {
        result
            .expect("client greenlets do not panic")
            .expect("echo round trip");
    }
    start.elapsed()
}

/// Opens and closes `count` connections, `ACCEPT_CONCURRENCY` at a time.
pub(super) fn connect_close(addr: SocketAddr, count: u64) -> Duration {
    let left = Rc::new(Cell::new(count));
    let start = Instant::now();
    let jobs: Vec<_> = (0..ACCEPT_CONCURRENCY.min(count as usize))
        .map(|_| {
            let left = left.clone();
            greenweave::spawn(move || -> io::Result<()> {
                while left.get() > 0 {
                    left.set(left.get() - 1);
                    let c = TcpStream::connect(addr)?;
                    // End-of-file (or a reset): the server accepted and closed it.
                    let _ = (&c).read(&mut [0; 1]);
                    c.set_linger(Some(Duration::ZERO))?;
                }
                Ok(())
            })
        })
        .collect();
    for result in greenweave::joinall(jobs) {
        result
            .expect("client greenlets do not panic")
            .expect("connect");
    }
    start.elapsed()
}
