//! Thin typed wrappers over the kernel calls strata needs; the only crate allowed `unsafe`.
//! No policy lives here: one function is one kernel operation.
#![allow(unsafe_code)]

pub mod fs;
pub mod mount;
pub mod mountinfo;
pub mod quota;
