//! A greenlet's stack as a list of frames, symbolized with the `backtrace` crate when
//! first looked at (symbolizing reads the binary's debug info, which takes long the
//! first time: a dump that is never printed does not pay for it).

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A stack, innermost frame first, as in std's backtraces. `Display` prints one
/// numbered line per function (inlined functions get a line each) with its source
/// location when the binary has debug info. Only the greenlet's own frames are kept:
/// it ends where the greenlet (or the thread's `main`) begins.
#[derive(Clone, Debug, Default)]
pub struct Backtrace {
    /// Instruction pointers, innermost first.
    ips: Vec<usize>,
    /// The first is the address of an interrupted instruction rather than a return
    /// address.
    exact_first: bool,
    /// Leave out the frames of the `backtrace` crate and of greenweave's dump code
    /// that took it.
    skip_own: bool,
    frames: OnceLock<Vec<Frame>>,
}

/// One frame of a [`Backtrace`].
#[derive(Clone, Debug)]
pub struct Frame {
    /// The frame's instruction pointer.
    pub ip: usize,
    /// The functions at that address, innermost (inlined) first; empty if unknown.
    pub symbols: Vec<Symbol>,
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

impl Frame {
    /// Whether one of its functions' names satisfies `pred`.
    fn is_in(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.symbols
            .iter()
            .any(|s| s.name.as_deref().is_some_and(&pred))
    }
}

/// Frames kept at most (deeper stacks are cut).
const MAX_FRAMES: usize = 128;

impl Backtrace {
    /// The frames, innermost first (symbolized on the first call).
    pub fn frames(&self) -> &[Frame] {
        self.frames.get_or_init(|| self.resolve())
    }

    /// Whether some frame is in a function whose name contains `name`.
    pub fn mentions(&self, name: &str) -> bool {
        self.frames().iter().any(|f| f.is_in(|n| n.contains(name)))
    }

    /// The calling thread's stack, from the caller of greenweave's dump code.
    pub(crate) fn here() -> Backtrace {
        let mut ips = Vec::new();
        // Not `backtrace::trace`: it takes the crate's global lock, which a thread
        // symbolizing another stack (the monitor's reporter, for seconds the first
        // time) holds, and the hub would wait for it.
        // SAFETY: the lock serializes walks for Windows' dbghelp; on Linux a walk is
        // `_Unwind_Backtrace`, which is thread-safe, and the closure does not panic
        // (a `Vec` push aborts rather than unwinds when out of memory).
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                ips.push(frame.ip() as usize);
                ips.len() < MAX_FRAMES
            });
        }
        Backtrace {
            ips,
            exact_first: false,
            skip_own: true,
            frames: OnceLock::new(),
        }
    }

    /// A stack walked elsewhere (a signal handler); `exact_first` says the first
    /// address is that of an interrupted instruction rather than a return address.
    pub(crate) fn from_ips(ips: &[usize], exact_first: bool) -> Backtrace {
        Backtrace {
            ips: ips.iter().copied().take(MAX_FRAMES).collect(),
            exact_first,
            skip_own: false,
            frames: OnceLock::new(),
        }
    }

    fn resolve(&self) -> Vec<Frame> {
        let mut frames: Vec<Frame> = self
            .ips
            .iter()
            .enumerate()
            .map(|(i, &ip)| {
                // `resolve` looks up `address - 1`, the call instruction of a return
                // address; an interrupted instruction is looked up as itself.
                let lookup = if i == 0 && self.exact_first {
                    ip + 1
                } else {
                    ip
                };
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
        if self.skip_own {
            skip_own_frames(&mut frames);
        }
        cut_at_root(&mut frames);
        frames
    }
}

/// Leaves out the frames of the `backtrace` crate and of greenweave's dump code. In
/// the outermost of them, the functions its code was inlined into (listed after it,
/// with debug info) are the caller's and stay.
fn skip_own_frames(frames: &mut Vec<Frame>) {
    let own = |n: &str| n.starts_with("backtrace::") || n.starts_with("greenweave_runtime::dump::");
    let Some(last) = frames.iter().rposition(|f| f.is_in(own)) else {
        return;
    };
    let symbols = &frames[last].symbols;
    let outermost_own = symbols
        .iter()
        .rposition(|s| s.name.as_deref().is_some_and(own))
        .expect("the frame is in one of ours");
    let callers = symbols[outermost_own + 1..].to_vec();
    if callers.is_empty() {
        frames.drain(..=last);
    } else {
        frames[last].symbols = callers;
        frames.drain(..last);
    }
}

/// Ends a stack at the greenlet's (or the thread's) own first frame. Below it come
/// the runtime's start of a greenlet and, as corosensei links stacks for unwinding,
/// the frames of the greenlets that resumed it, which belong to them rather than to
/// it; or std's start of a thread, which its backtraces leave out too. The
/// `catch_unwind` and closure calls around the greenlet's function go as well.
fn cut_at_root(frames: &mut Vec<Frame>) {
    let is_root = |name: &str| {
        name.starts_with("greenweave_runtime::spawn::run_task")
            || name.starts_with("greenweave_greenlet::switch::new_coroutine")
            || name.contains("__rust_begin_short_backtrace")
    };
    let is_wrapper = |name: &str| {
        name.starts_with("std::panicking::")
            || name.starts_with("std::panic::")
            || name.starts_with("__rust_try")
            || name.starts_with("<core::panic::unwind_safe::AssertUnwindSafe")
            || name.starts_with("core::ops::function::FnOnce::call_once")
    };
    let Some(root) = frames.iter().position(|f| f.is_in(is_root)) else {
        return;
    };
    // Functions of the greenlet inlined into the root's frame come before the root's
    // symbol (innermost first, shown with debug info only): they stay, up to the
    // first wrapper.
    let inlined: Vec<Symbol> = frames[root]
        .symbols
        .iter()
        .take_while(|s| {
            !s.name
                .as_deref()
                .is_some_and(|n| is_root(n) || is_wrapper(n))
        })
        .cloned()
        .collect();
    let root_ip = frames[root].ip;
    frames.truncate(root);
    while frames.last().is_some_and(|f| f.is_in(is_wrapper)) {
        frames.pop();
    }
    if !inlined.is_empty() {
        frames.push(Frame {
            ip: root_ip,
            symbols: inlined,
        });
    }
}

impl fmt::Display for Backtrace {
    /// With a width (`{:8}`), every line is indented by that many spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indent = f.width().unwrap_or(0);
        let pad = "";
        // Paths below the current directory are shown from it, as std's backtraces do.
        let cwd = std::env::current_dir().ok();
        let shown = |file: &std::path::Path| match cwd.as_deref().map(|d| file.strip_prefix(d)) {
            Some(Ok(relative)) => format!("./{}", relative.display()),
            _ => file.display().to_string(),
        };
        for (i, frame) in self.frames().iter().enumerate() {
            if frame.symbols.is_empty() {
                writeln!(f, "{pad:indent$}{i:>3}: {:#x} (no symbol)", frame.ip)?;
                continue;
            }
            for (j, symbol) in frame.symbols.iter().enumerate() {
                let name = symbol.name.as_deref().unwrap_or("<unknown>");
                if j == 0 {
                    writeln!(f, "{pad:indent$}{i:>3}: {name}")?;
                } else {
                    writeln!(f, "{pad:indent$}     {name}")?;
                }
                if let (Some(file), Some(line)) = (&symbol.file, symbol.line) {
                    writeln!(f, "{pad:indent$}         at {}:{line}", shown(file))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with these functions, innermost (inlined) first.
    fn frame(ip: usize, names: &[&str]) -> Frame {
        let symbols = names
            .iter()
            .map(|n| Symbol {
                name: Some(n.to_string()),
                file: None,
                line: None,
            })
            .collect();
        Frame { ip, symbols }
    }

    fn names(frames: &[Frame]) -> Vec<Vec<&str>> {
        frames
            .iter()
            .map(|f| {
                f.symbols
                    .iter()
                    .map(|s| s.name.as_deref().unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_callers_inlined_around_the_dump_code_stay() {
        let mut frames = vec![
            frame(1, &["backtrace::trace_unsynchronized"]),
            frame(
                2,
                &[
                    "greenweave_runtime::dump::dump",
                    "app::report",
                    "app::handler",
                ],
            ),
            frame(3, &["app::main"]),
        ];
        skip_own_frames(&mut frames);
        assert_eq!(
            names(&frames),
            [vec!["app::report", "app::handler"], vec!["app::main"]]
        );
        assert_eq!(frames[0].ip, 2);

        let mut frames = vec![
            frame(1, &["greenweave_runtime::dump::dump"]),
            frame(2, &["app::main"]),
        ];
        skip_own_frames(&mut frames);
        assert_eq!(names(&frames), [vec!["app::main"]]);
    }

    #[test]
    fn a_stack_ends_with_the_greenlets_function_even_when_inlined_into_its_start() {
        let start = "greenweave_runtime::spawn::run_task";
        let call_once = "core::ops::function::FnOnce::call_once";
        let mut frames = vec![
            frame(1, &["app::spin"]),
            frame(
                2,
                &[
                    "app::worker::{{closure}}",
                    call_once,
                    "std::panicking::try",
                    start,
                ],
            ),
            frame(3, &["app::other_greenlet"]),
        ];
        cut_at_root(&mut frames);
        assert_eq!(
            names(&frames),
            [vec!["app::spin"], vec!["app::worker::{{closure}}"]]
        );
        assert_eq!(frames[1].ip, 2);

        let mut frames = vec![
            frame(1, &["app::spin"]),
            frame(2, &["app::worker::{{closure}}"]),
            frame(3, &[call_once]),
            frame(4, &["std::panicking::try"]),
            frame(5, &[start]),
            frame(6, &["app::other_greenlet"]),
        ];
        cut_at_root(&mut frames);
        assert_eq!(
            names(&frames),
            [vec!["app::spin"], vec!["app::worker::{{closure}}"]]
        );
    }
}
