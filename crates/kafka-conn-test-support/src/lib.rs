//! Test-only helpers shared by the kafka-conn crates, so that each piece of
//! test machinery exists once:
//!
//! - [`alloc`]: a global allocator that counts the allocations of the
//!   threads that ask for it (the zero-allocation tests of the core, the
//!   cluster policy and the drivers);
//! - [`fuzz_corpus`]: replaying the committed fuzz corpus and past crash
//!   inputs through a fuzz target's body on stable Rust.
//!
//! Not published; a dev-dependency only.

pub mod alloc;
pub mod fuzz_corpus;
