//! A fast hash for map keys that no client chooses.
//!
//! The std `HashMap` hashes with SipHash, keyed per process, so that keys chosen to collide
//! cannot flood a map. Where every key comes from the configuration, the clock, or a keyed
//! PRF (uniform and unpredictable without its key), there is nothing to defend and SipHash
//! is only cost: these maps use [`Fast`] (multiply-rotate, eight bytes at a time). A map
//! keyed by request data (host names, header values) keeps the std hasher.

use std::hash::{BuildHasherDefault, Hasher};

/// `BuildHasher` of [`FastHasher`], for `HashMap<K, V, Fast>`.
pub type Fast = BuildHasherDefault<FastHasher>;

/// Multiply-rotate over eight-byte words; see the module documentation for where it is used.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
