//! The harness shared by boxfs's own integration tests: the emulator harness of
//! `box_emulator::testing`, and real mounts of the built binary (`mount`).
#![allow(dead_code, unused_imports)]

pub use box_emulator::testing::*;

pub mod mount;
