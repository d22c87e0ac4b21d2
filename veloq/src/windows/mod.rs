//! Windows-only I/O: [`named_pipe`].
//!
//! ```no_run
//! use veloq::windows::named_pipe::{ClientOptions, ServerOptions};
//!
//! veloq::block_on(async {
//!     let server = ServerOptions::new().create(r"\\.\pipe\veloq-doc-mod")?;
//!     let client = ClientOptions::new().open(r"\\.\pipe\veloq-doc-mod")?;
//!     server.connect().await?;
//!     let (res, _) = client.write_all(b"ping".to_vec()).await;
//!     res?;
//!     let (res, buf) = server.read_exact(vec![0u8; 4]).await;
//!     res?;
//!     assert_eq!(buf, b"ping");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```

pub mod named_pipe;
