//! The global allocator: mimalloc, entered through its plain `malloc` for the usual alignment.
//!
//! Why not `mimalloc::MiMalloc` as it is: it sends every allocation through
//! `mi_malloc_aligned`, whose fast path serves a block only from a small-size page that
//! already has one free. Everything else — any block over 1 KiB (hyper's 8 KiB read buffers,
//! the scanner's window), or a small size class whose page just ran empty — takes the aligned
//! slow path, which over-allocates and re-aligns: about 200 instructions more per allocation,
//! six of them per proxied request (callgrind, `benches/load/README.md`). Rust's own `System`
//! allocator makes the same split: an alignment `malloc` guarantees anyway (16 bytes on
//! 64-bit targets, and never more than the size) needs no aligned entry point.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned};
use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};

/// The alignment every mimalloc block of at least this size has (`MI_MAX_ALIGN_SIZE`).
const MALLOC_ALIGN: usize = 16;

/// mimalloc as the global allocator (`#[global_allocator] static A: Mimalloc = Mimalloc;`).
pub struct Mimalloc;

/// Whether plain `malloc(size)` returns memory aligned for `align`: mimalloc aligns a block to
/// 16 bytes, and a smaller block to its size class, which is at least `size` rounded up to a
/// multiple of 8 — so any `align` up to 16 that is no larger than `size`.
#[inline]
fn malloc_aligns(align: usize, size: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

// SAFETY: every path returns memory from mimalloc with at least the layout's size and
// alignment (see `malloc_aligns`), or null; `mi_free` and `mi_realloc*` accept any block
// mimalloc returned, aligned or not.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if malloc_aligns(layout.align(), layout.size()) {
            mi_malloc(layout.size()).cast()
        } else {
            mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if malloc_aligns(layout.align(), layout.size()) {
            mi_zalloc(layout.size()).cast()
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if malloc_aligns(layout.align(), new_size) {
            mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alignment up to a page, at sizes around each size-class edge, comes back aligned
    /// and writable over its whole size, zeroed when asked, and keeps its contents when it
    /// grows and shrinks.
    #[test]
    fn blocks_are_aligned_whole_and_keep_their_bytes_across_realloc() {
        let a = Mimalloc;
        let sizes: [usize; 16] = [
            1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 33, 100, 1024, 1025, 8192, 70_000,
        ];
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in sizes {
                for zeroed in [false, true] {
                    for new_size in [size * 3, size.div_ceil(2)] {
                        let layout = Layout::from_size_align(size, align).unwrap();
                        let grown = Layout::from_size_align(new_size, align).unwrap();
                        let what = format!("size {size} align {align} → {new_size}");
                        // SAFETY: non-zero sizes; each block is only touched within its
                        // current size and freed once, with the layout it has then.
                        unsafe {
                            let p = if zeroed {
                                a.alloc_zeroed(layout)
                            } else {
                                a.alloc(layout)
                            };
                            assert!(!p.is_null(), "{what}");
                            assert_eq!(p as usize % align, 0, "{what}");
                            if zeroed {
                                assert!((0..size).all(|i| *p.add(i) == 0), "{what}: zeroed");
                            }
                            for i in 0..size {
                                *p.add(i) = i as u8;
                            }
                            let q = a.realloc(p, layout, new_size);
                            assert!(!q.is_null(), "{what}");
                            assert_eq!(q as usize % align, 0, "{what}: realloc aligned");
                            let kept = size.min(new_size);
                            assert!((0..kept).all(|i| *q.add(i) == i as u8), "{what}: kept");
                            for i in 0..new_size {
                                *q.add(i) = !(i as u8);
                            }
                            let back = a.realloc(q, grown, size);
                            assert!(!back.is_null(), "{what}");
                            assert_eq!(back as usize % align, 0, "{what}: back aligned");
                            assert!((0..kept).all(|i| *back.add(i) == !(i as u8)), "{what}");
                            a.dealloc(back, layout);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn plain_malloc_only_where_it_aligns() {
        assert!(malloc_aligns(1, 1));
        assert!(malloc_aligns(8, 8));
        assert!(malloc_aligns(16, 16));
        assert!(malloc_aligns(16, 4096));
        assert!(!malloc_aligns(16, 8), "a block smaller than its alignment");
        assert!(!malloc_aligns(32, 64));
        assert!(!malloc_aligns(128, 4096));
    }
}
