//! A greenlet's stack as a list of frames, symbolized with the `backtrace` crate.

use std::fmt;
use std::path::PathBuf;

/// A stack, innermost frame first, as in std's backtraces. `Display` prints one
/// numbered line per function (inlined functions get a line each) with its source
/// location when the binary has debug info.
#[derive(Clone, Debug, Default)]
pub struct Backtrace {
    frames: Vec<Frame>,
}

/// One frame of a [`Backtrace`].
#[derive(Clone, Debug)]
pub struct Frame {
    /// The frame's instruction pointer.
    pub ip: usize,
    /// The functions at that address, innermost (inlined) first; empty if unknown.
    pub symbols: Vec<Symbol>,
}

impl Frame {
    /// Whether one of its functions' names satisfies `pred`.
    fn is_in(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.symbols
            .iter()
            .any(|s| s.name.as_deref().is_some_and(&pred))
    }
}

/// A function a [`Frame`] is in.
#[derive(Clone, Debug)]
pub struct Symbol {
    /// Demangled name, without the hash (`my_crate::module::function`).
    pub name: Option<String>,
    /// Source file, if the binary has debug info.
    pub file: Option<PathBuf>,
    /// Line in `file`.
    pub line: Option<u32>,
}

/// Frames kept at most (deeper stacks are cut).
const MAX_FRAMES: usize = 128;

impl Backtrace {
    /// The frames, innermost first.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Whether some frame is in a function whose name contains `name`.
    pub fn mentions(&self, name: &str) -> bool {
        self.frames
            .iter()
            .flat_map(|f| &f.symbols)
            .any(|s| s.name.as_deref().is_some_and(|n| n.contains(name)))
    }

    /// The calling thread's stack, from the caller of the function that calls this
    /// (frames of greenweave's own dump code are left out).
    pub(crate) fn here() -> Backtrace {
        let mut ips = Vec::new();
        backtrace::trace(|frame| {
            ips.push(frame.ip() as usize);
            ips.len() < MAX_FRAMES
        });
        let mut trace = Backtrace::resolve(&ips, false);
        // Our own frames come first; start after the last of them.
        let ours = trace.frames.iter().rposition(|f| {
            f.symbols.iter().any(|s| {
                s.name.as_deref().is_some_and(|n| {
                    n.starts_with("backtrace::") || n.starts_with("greenweave_runtime::dump::")
                })
            })
        });
        if let Some(last) = ours {
            trace.frames.drain(..=last);
        }
        trace
    }

    /// Symbolizes instruction pointers; `exact_first` says the first is the address
    /// of an interrupted instruction rather than a return address.
    pub(crate) fn resolve(ips: &[usize], exact_first: bool) -> Backtrace {
        let frames = ips
            .iter()
            .take(MAX_FRAMES)
            .enumerate()
            .map(|(i, &ip)| {
                // `resolve` looks up `address - 1`, the call instruction of a return
                // address; an interrupted instruction is looked up as itself.
                let lookup = if i == 0 && exact_first { ip + 1 } else { ip };
                let mut symbols = Vec::new();
                backtrace::resolve(lookup as *mut std::ffi::c_void, |symbol| {
                    symbols.push(Symbol {
                        name: symbol.name().map(|n| format!("{n:#}")),
                        file: symbol.filename().map(|p| p.to_path_buf()),
                        line: symbol.lineno(),
                    });
                });
                Frame { ip, symbols }
            })
            .collect();
        let mut trace = Backtrace { frames };
        trace.cut_at_greenlet_root();
        trace
    }

    /// Ends a greenlet's stack at its own first frame. Below it come the runtime's
    /// start of a greenlet and, as corosensei links stacks for unwinding, the frames of
    /// the greenlets that resumed it, which belong to them rather than to it.
    fn cut_at_greenlet_root(&mut self) {
        let is_root = |name: &str| {
            name.starts_with("greenweave_runtime::spawn::run_task")
                || name.starts_with("greenweave_greenlet::switch::new_coroutine")
        };
        let Some(root) = self.frames.iter().position(|f| f.is_in(is_root)) else {
            return;
        };
        self.frames.truncate(root);
        // The `catch_unwind` around the greenlet's function.
        let is_wrapper = |name: &str| {
            name.starts_with("std::panicking::")
                || name.starts_with("std::panic::")
                || name.starts_with("__rust_try")
                || name.starts_with("<core::panic::unwind_safe::AssertUnwindSafe")
        };
        while self.frames.last().is_some_and(|f| f.is_in(is_wrapper)) {
            self.frames.pop();
        }
    }
}

impl fmt::Display for Backtrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indent = f.width().unwrap_or(0);
        let pad = "";
        for (i, frame) in self.frames.iter().enumerate() {
            if frame.symbols.is_empty() {
                writeln!(f, "{pad:indent$}{i:>4}: {:#x} - <unknown>", frame.ip)?;
                continue;
            }
            for (j, symbol) in frame.symbols.iter().enumerate() {
                let name = symbol.name.as_deref().unwrap_or("<unknown>");
                if j == 0 {
                    writeln!(f, "{pad:indent$}{i:>4}: {name}")?;
                } else {
                    writeln!(f, "{pad:indent$}      {name}")?;
                }
                if let (Some(file), Some(line)) = (&symbol.file, symbol.line) {
                    writeln!(f, "{pad:indent$}            at {}:{line}", file.display())?;
                }
            }
        }
        Ok(())
    }
}
