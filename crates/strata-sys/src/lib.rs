//! Thin typed wrappers over the kernel calls strata needs; the only crate allowed `unsafe`.
//! No policy lives here: one function is one kernel operation.

pub mod mount;
