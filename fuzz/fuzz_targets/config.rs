//! Fuzz target: configuration parsing and everything built from a configuration without I/O
//! (validation with line numbers, the policy, the classifier's options and detectors).
//! Arbitrary bytes must give a located error or a configuration, never a panic or a hang.
//!
//! With nightly: `cd fuzz && cargo +nightly fuzz run config -- -max_total_time=60`.
//! On stable the same body runs under proptest (`cargo test --test hostile fuzz_config`).
// `fuzzing` is set by cargo-fuzz; the normal build does not know it.
#![allow(unexpected_cfgs)]
#![cfg_attr(fuzzing, no_main)]

use std::path::Path;

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

/// The body of the fuzz target.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match chujing::config::parse(text, path) {
        Ok(config) => {
            // A configuration that validated must build: a panic here would be a crash
            // at startup or on reload.
            if let Ok(options) = chujing::classify::ClassifierOptions::from_config(&config) {
                let _ = chujing::classify::Classifier::new(options);
            }
            let _ = chujing::policy::Policy::from_config(&config);
        }
        Err(e) => {
            // Errors are `file:line: message` (or a read error), and name the file.
            let message = e.to_string();
            assert!(
                message.starts_with("fuzz.toml"),
                "unlocated error: {message}"
            );
        }
    }
}

#[cfg(not(fuzzing))]
#[allow(dead_code)]
fn main() {
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).expect("stdin");
    check(&data);
}
