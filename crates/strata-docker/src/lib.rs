//! Docker graphdriver plugin (landing).
