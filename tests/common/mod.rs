//! The harness shared by boxfs's own integration tests: the emulator harness of
//! `box_emulator::testing`, a `BoxFs` without the kernel behind a fault wrapper (`fs`), and
//! real mounts of the built binary (`mount`).
#![allow(dead_code, unused_imports)]

pub use box_emulator::testing::*;

pub mod fs;
pub mod mount;
