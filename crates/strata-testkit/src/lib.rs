//! Test kit (landing).
