//! The `chujing` command line: `run`, `check`, `scan`, `explain`. No logic lives here.

fn main() {}
