//! STUB (owned by the runtime helper).
use proc_macro::TokenStream;

/// Runs `async fn main` on a veloq runtime.
#[proc_macro_attribute]
pub fn main(_a: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Runs an `async fn` test on a veloq runtime.
#[proc_macro_attribute]
pub fn test(_a: TokenStream, item: TokenStream) -> TokenStream {
    item
}
