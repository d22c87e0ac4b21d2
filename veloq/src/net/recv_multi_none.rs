//! Where no driver has multishot receive (Windows): a
//! [`RecvStream`](super::RecvStream) always takes the portable path.
//! `MultiRecv` has no values.

use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::socket::Socket;
use crate::buf::PooledBuf;
use crate::io::buf::RingShared;

/// No multishot receive exists on this platform.
pub(crate) enum MultiRecv {}

impl MultiRecv {
    /// Always `None`: the portable path serves the stream.
    pub(crate) fn new(_socket: &Socket, _ring: &Rc<RingShared>) -> Option<MultiRecv> {
        None
    }

    pub(crate) fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<PooledBuf>>> {
        match *self {}
    }

    pub(crate) fn arms(&self) -> u64 {
        match *self {}
    }
}
