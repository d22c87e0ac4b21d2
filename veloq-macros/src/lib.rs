//! Attribute macros for the veloq runtime: `#[veloq::main]` and
//! `#[veloq::test]`.
//!
//! Both turn an `async fn` into a plain `fn` that runs the original body
//! on a fresh runtime with `veloq::block_on`. The body becomes an inner
//! `async fn` with the same return type, so `?` and `return` in it behave
//! exactly as in the original function.
//!
//! They expand to paths under `::veloq`, so the crate using them must
//! depend on `veloq` under that name.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{parse_macro_input, Error, ItemFn};

/// Runs `async fn main` on a veloq runtime.
///
/// ```ignore
/// #[veloq::main]
/// async fn main() -> std::io::Result<()> {
///     let listener = veloq::net::TcpListener::bind("127.0.0.1:0")?;
///     println!("listening on {}", listener.local_addr()?);
///     Ok(())
/// }
/// ```
///
/// expands to (roughly)
///
/// ```ignore
/// fn main() -> std::io::Result<()> {
///     async fn __veloq_body() -> std::io::Result<()> { /* the body */ }
///     ::veloq::block_on(__veloq_body())
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = parse_macro_input!(item as ItemFn);
    expand(args.into(), item, Kind::Main)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// Runs an `async fn` test on a fresh veloq runtime.
///
/// ```ignore
/// #[veloq::test]
/// async fn sleeps() {
///     veloq::time::sleep(std::time::Duration::from_millis(1)).await;
/// }
/// ```
///
/// expands to a `#[test]` function whose body is run by
/// `::veloq::block_on`. Other attributes (`#[should_panic]`, `#[ignore]`)
/// stay on the generated test function; a test may return a `Result`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = parse_macro_input!(item as ItemFn);
    expand(args.into(), item, Kind::Test)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Main => "#[veloq::main]",
            Kind::Test => "#[veloq::test]",
        }
    }
}

fn expand(args: TokenStream2, item: ItemFn, kind: Kind) -> syn::Result<TokenStream2> {
    let attr = kind.attr();
    if !args.is_empty() {
        return Err(Error::new(
            args.span(),
            format!("{attr} takes no arguments"),
        ));
    }
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            format!("{attr} must be put on an `async fn`: the `async` keyword is missing"),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(Error::new_spanned(
            &sig.inputs,
            format!("{attr} functions take no arguments"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            &sig.generics,
            format!("{attr} functions cannot be generic"),
        ));
    }
    if let Some(c) = &sig.constness {
        return Err(Error::new(
            c.span(),
            format!("{attr} functions cannot be `const`"),
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(Error::new(
            u.span(),
            format!("{attr} functions cannot be `unsafe`"),
        ));
    }
    if kind == Kind::Test {
        if let Some(dup) = item.attrs.iter().find(|a| is_test_attr(a)) {
            return Err(Error::new(
                dup.span(),
                "#[veloq::test] already makes this a test; remove the second test attribute",
            ));
        }
    }

    let attrs = &item.attrs;
    let vis = &item.vis;
    let name = &sig.ident;
    let output = &sig.output;
    let body = &item.block;
    let inner = syn::Ident::new("__veloq_body", Span::mixed_site());
    let test_attr = match kind {
        Kind::Test => quote!(#[::core::prelude::v1::test]),
        Kind::Main => quote!(),
    };
    // The call carries the body's span, so type errors in the output point
    // at the user's code.
    let call = quote_spanned!(body.span()=> ::veloq::block_on(#inner()));
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis fn #name() #output {
            async fn #inner() #output #body
            #call
        }
    })
}

/// `#[test]` or `#[…::test]` (e.g. `#[tokio::test]`, `#[core::prelude::v1::test]`).
fn is_test_attr(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "test")
}
