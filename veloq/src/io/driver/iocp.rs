//! STUB (being replaced by the IOCP driver).

use std::any::Any;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{Driver, DriverConfig, DriverStats, OpKey, TimerWheel, WakeHandle};
use crate::io::op::OpOutput;
use crate::sys::RawFd;

/// The IOCP driver.
pub(crate) struct IocpDriver {}

/// The IOCP op stored in the registry.
pub(crate) enum IocpOp {}

impl Driver for IocpDriver {
    type Op = IocpOp;
    fn new(_config: &DriverConfig) -> io::Result<Self> {
        todo!()
    }
    fn reserve(&mut self) -> io::Result<OpKey> {
        todo!()
    }
    fn submit(&mut self, _key: OpKey, _op: IocpOp) -> io::Result<()> {
        todo!()
    }
    fn poll_op(&mut self, _key: OpKey, _cx: &mut Context<'_>) -> Poll<OpOutput> {
        todo!()
    }
    fn cancel(&mut self, _key: OpKey, _keep_alive: Option<Box<dyn Any>>) {
        todo!()
    }
    fn flush(&mut self) -> io::Result<()> {
        todo!()
    }
    fn wait(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        todo!()
    }
    fn process_completions(&mut self) -> usize {
        todo!()
    }
    fn wake_handle(&self) -> WakeHandle {
        todo!()
    }
    fn register_handle(&mut self, _fd: RawFd) -> io::Result<()> {
        Ok(())
    }
    unsafe fn register_buffers(&mut self, _bufs: &[(*mut u8, usize)]) -> io::Result<Option<u16>> {
        todo!()
    }
    fn unregister_buffers(&mut self, _first: u16, _count: u16) {
        todo!()
    }
    fn timers(&mut self) -> &mut TimerWheel {
        todo!()
    }
    fn stats(&self) -> DriverStats {
        todo!()
    }
}
