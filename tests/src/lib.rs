//! Helpers for the end-to-end tests: building and running the real binaries.
