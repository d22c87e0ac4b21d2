//! Driver-level tests of the IOCP driver.
