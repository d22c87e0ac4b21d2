//! The I/O core: owned buffers, platform-neutral op descriptions and the
//! drivers that carry them out.

pub mod buf;
pub(crate) mod driver;
pub(crate) mod op;
