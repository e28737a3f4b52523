//! The `#[rpc_method]` attribute of `hub`.
//!
//! Use it through the `hub` crate (`hub::rpc_method`): the generated code names
//! `::hub::__private`, so this crate is not meant to be depended on directly.
//! The attribute's behaviour is documented on the re-export in `hub`.

mod attr;
mod doc;
mod errors;
mod expand;
mod signature;

use proc_macro::TokenStream;
use quote::quote;

use crate::errors::Errors;

/// Turns a free `fn` or `async fn` into an XML-RPC method registered at link time.
///
/// See the `hub` crate's documentation of `rpc_method` for the full contract.
#[proc_macro_attribute]
pub fn rpc_method(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = proc_macro2::TokenStream::from(item);
    let function: syn::ItemFn = match syn::parse2(item2.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[rpc_method] goes on a free `fn` or `async fn`",
            )
            .into_compile_error();
            return quote!(#error #item2).into();
        }
    };
    let mut errors = Errors::default();
    let mut args = attr::parse(args.into(), &mut errors);
    attr::check_aliases(
        &mut args,
        &syn::ext::IdentExt::unraw(&function.sig.ident).to_string(),
        &mut errors,
    );
    attr::check_default_name(&args, &function.sig.ident, &mut errors);
    let sig = signature::analyze(&function.sig, &mut errors);
    match errors.finish() {
        Err(error) => {
            let error = error.into_compile_error();
            // The function is still emitted, so that its uses add no unrelated
            // errors; except a variadic one, which rustc would refuse again.
            if function.sig.variadic.is_some() {
                error.into()
            } else {
                quote!(#error #function).into()
            }
        }
        Ok(()) => expand::expand(expand::Method {
            item: &function,
            args,
            sig,
            doc: doc::collect(&function.attrs),
        })
        .into(),
    }
}
