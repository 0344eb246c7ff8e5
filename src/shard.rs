//! Per-thread shard indices for state that every request writes (metric counters, the live
//! view's per-second counts): each connection worker writes its own copy, on cache lines no
//! other worker touches, and readers add the copies up. One shared copy, written by every
//! worker on every request, moved its cache lines between cores each time.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Copies kept of sharded state. Workers beyond this share copies (still correct, just
/// sharing lines again); threads outside the workers take the copies round robin.
pub const SHARDS: usize = 16;

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's shard, in `0..SHARDS`.
#[inline]
pub fn index() -> usize {
    INDEX.with(|i| match i.get() {
        Some(index) => index,
        None => {
            let index = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            i.set(Some(index));
            index
        }
    })
}

/// Pins this thread to shard `n % SHARDS` (connection worker `n` calls it at start, so the
/// workers of one process never share a copy while there are at most [`SHARDS`] of them).
pub fn pin(n: usize) {
    INDEX.with(|i| i.set(Some(n % SHARDS)));
}

/// A value alone on its cache lines (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_shard_and_pinned_threads_get_theirs() {
        let first = index();
        assert!(first < SHARDS);
        assert_eq!(index(), first);
        let pinned: Vec<usize> = (0..4)
            .map(|n| {
                std::thread::spawn(move || {
                    pin(n + SHARDS);
                    index()
                })
                .join()
                .unwrap()
            })
            .collect();
        assert_eq!(pinned, vec![0, 1, 2, 3]);
        assert_eq!(std::mem::align_of::<Padded<u8>>(), 128);
    }
}
