//! `iovec` arrays for the vectored hooks: their total length, and a cursor that
//! continues a transfer where a partial one stopped.

use libc::{c_int, iovec};

/// The total length of `cnt` iovecs, or `None` if the count is out of range or the
/// lengths overflow (the kernel answers `EINVAL` then, so the hooks pass such calls
/// through).
///
/// # Safety
///
/// `iov` points to `cnt` readable iovecs when `cnt` is in range.
pub(crate) unsafe fn total(iov: *const iovec, cnt: c_int) -> Option<usize> {
    let count = usize::try_from(cnt)
        .ok()
        .filter(|&n| n <= libc::UIO_MAXIOV as usize)?;
    if count == 0 {
        return Some(0);
    }
    if iov.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `count` readable iovecs.
    let iovs = unsafe { std::slice::from_raw_parts(iov, count) };
    iovs.iter()
        .try_fold(0_usize, |sum, v| sum.checked_add(v.iov_len))
        .filter(|&sum| sum <= isize::MAX as usize)
}

/// The part of a caller's iovec array not yet transferred.
pub(crate) struct Cursor {
    base: *const iovec,
    cnt: c_int,
    /// A copy, made on the first partial transfer; the caller's array is never changed.
    copy: Vec<iovec>,
    /// Index of the first iovec of `copy` still to transfer.
    first: usize,
    /// Bytes of the caller's array transferred so far.
    at: usize,
}

impl Cursor {
    /// A cursor at the start of the caller's `cnt` iovecs.
    pub(crate) fn new(base: *const iovec, cnt: c_int) -> Cursor {
        Cursor {
            base,
            cnt,
            copy: Vec::new(),
            first: 0,
            at: 0,
        }
    }

    /// The iovecs from byte `done` on (`done` never goes backwards).
    ///
    /// # Safety
    ///
    /// The caller's array is readable, as for [`total`], and `done` is at most its total.
    pub(crate) unsafe fn at(&mut self, done: usize) -> (*const iovec, c_int) {
        if done == 0 {
            return (self.base, self.cnt);
        }
        // SAFETY: forwarded from the caller.
        let rest = unsafe { self.rest(done) };
        (rest.as_ptr(), rest.len() as c_int)
    }

    /// At most `limit` bytes of the iovecs from byte `done` on, the last one cut short
    /// in `scratch` (for pipe writes of at most `PIPE_BUF` bytes).
    ///
    /// # Safety
    ///
    /// As for [`at`](Self::at).
    pub(crate) unsafe fn limited(
        &mut self,
        done: usize,
        limit: usize,
        scratch: &mut Vec<iovec>,
    ) -> (*const iovec, c_int) {
        // SAFETY: forwarded from the caller.
        let rest = unsafe { self.rest(done) };
        scratch.clear();
        let mut left = limit;
        for v in rest {
            if left == 0 {
                break;
            }
            let len = v.iov_len.min(left);
            scratch.push(iovec {
                iov_base: v.iov_base,
                iov_len: len,
            });
            left -= len;
        }
        (scratch.as_ptr(), scratch.len() as c_int)
    }

    /// The not yet transferred iovecs, advanced to byte `done`.
    ///
    /// # Safety
    ///
    /// As for [`at`](Self::at).
    unsafe fn rest(&mut self, done: usize) -> &[iovec] {
        if self.at == 0 && self.copy.is_empty() && self.cnt > 0 {
            // SAFETY: the caller guarantees `cnt` readable iovecs.
            let all = unsafe { std::slice::from_raw_parts(self.base, self.cnt as usize) };
            self.copy = all.to_vec();
        }
        let mut skip = done - self.at;
        self.at = done;
        while self.first < self.copy.len() {
            let v = &mut self.copy[self.first];
            let step = skip.min(v.iov_len);
            // SAFETY: `step <= iov_len`: still within the caller's buffer.
            v.iov_base = unsafe { v.iov_base.cast::<u8>().add(step) }.cast();
            v.iov_len -= step;
            skip -= step;
            if v.iov_len > 0 {
                break;
            }
            self.first += 1;
        }
        &self.copy[self.first..]
    }
}
