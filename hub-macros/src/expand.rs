//! Code generation: the original function, untouched, followed by an anonymous
//! `const _: () = { ... };` holding the wrapper, the parameter table and the
//! `inventory` submission. Everything generated reaches the runtime through
//! `::hub::__private`, so user crates depend on `hub` alone.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr, Type};

use crate::attr::MethodArgs;
use crate::signature::{option_inner, strip_groups, MethodSig, Output};

/// Everything the expansion needs, already validated.
pub(crate) struct Method<'a> {
    pub item: &'a ItemFn,
    pub args: MethodArgs,
    pub sig: MethodSig,
    pub doc: TokenStream,
}

pub(crate) fn expand(method: Method<'_>) -> TokenStream {
    let item = method.item;
    let fn_ident = &item.sig.ident;
    let rpc_name = method
        .args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&fn_ident.unraw().to_string(), fn_ident.span()));
    let aliases = method.args.aliases.as_deref().unwrap_or_default();
    let perm = match &method.args.perm {
        Some(perm) => quote!(::core::option::Option::Some(#perm)),
        None => quote!(::core::option::Option::None),
    };
    let doc = &method.doc;
    let sensitive = method.args.sensitive.is_some();
    let max_in_flight = match method.args.max_in_flight {
        Some(calls) => {
            let calls = calls as usize;
            quote!(::core::option::Option::Some(#calls))
        }
        None => quote!(::core::option::Option::None),
    };
    let timeout_ms = match &method.args.timeout_ms {
        Some(millis) => quote!(::core::option::Option::Some(#millis)),
        None => quote!(::core::option::Option::None),
    };

    let param_defs = param_defs(&method.sig);
    let param_count = method.sig.params.len();
    let handler = handler_fn(&method);
    let returns = returns_fn(&method.sig.output);
    let handler_kind = if method.sig.is_async {
        quote!(Async)
    } else {
        quote!(Blocking)
    };
    // `file!()`/`line!()` spanned on the function name point at the declaration,
    // which is what a duplicate-name error should name.
    let location = fn_ident.span();
    let file = quote_spanned!(location=> ::core::file!());
    let line = quote_spanned!(location=> ::core::line!());

    // A `#[cfg]` below `#[rpc_method]` removes the function: the registration goes with it.
    let cfgs = item.attrs.iter().filter(|attr| attr.path().is_ident("cfg"));

    quote! {
        #item

        #(#cfgs)*
        // `deprecated`: the wrapper's call of a `#[deprecated]` method is the hub's own,
        // not a use the user should be warned about.
        #[doc(hidden)]
        #[allow(non_upper_case_globals, deprecated, clippy::all, clippy::pedantic)]
        const _: () = {
            use ::hub::__private as __hub;

            static __HUB_RPC_METHOD_PARAMS: [__hub::ParamDef; #param_count] = [#(#param_defs),*];

            #handler
            #returns

            __hub::inventory::submit! {
                __hub::MethodDef {
                    name: #rpc_name,
                    aliases: &[#(#aliases),*],
                    doc: #doc,
                    params: &__HUB_RPC_METHOD_PARAMS,
                    returns: __hub_rpc_method_returns,
                    perm: #perm,
                    sensitive: #sensitive,
                    timeout_ms: #timeout_ms,
                    max_in_flight: #max_in_flight,
                    handler: __hub::Handler::#handler_kind(__hub_rpc_method_handler),
                    file: #file,
                    line: #line,
                }
            }
        };
    }
}

/// One `ParamDef` per decoded parameter. The type is probed without a trait bound,
/// so that an undecodable type is reported once, by the decoding call.
fn param_defs(sig: &MethodSig) -> Vec<TokenStream> {
    sig.params
        .iter()
        .map(|param| {
            // `r#type` is called `type` by callers.
            let name = param.ident.unraw().to_string();
            let ty = &param.ty;
            let rust_type = type_text(ty);
            let optional = param.optional;
            let xmlrpc_type = probe(ty);
            quote! {
                __hub::ParamDef {
                    name: #name,
                    rust_type: #rust_type,
                    optional: #optional,
                    xmlrpc_type: #xmlrpc_type,
                }
            }
        })
        .collect()
}

/// The block that checks the call's shape against the table, then decodes each
/// parameter in order: `(T0, T1, ..)` or an early return of the `RpcError`. It is
/// written inline, not as a function, so that the parameter types appear only where
/// their lifetimes are inferred: `Cow<'_, str>` (or `Cow<str>`) in a function's return
/// type would need a named lifetime.
fn decode_block(sig: &MethodSig) -> TokenStream {
    let takes = sig.params.iter().enumerate().map(|(index, param)| {
        let ty = &param.ty;
        quote_spanned!(ty.span()=> __args.take::<#ty>(#index)?)
    });
    quote! {
        {
            #[allow(unused_mut)]
            let mut __args = __hub::Args::new(__hub_rpc_method_params, &__HUB_RPC_METHOD_PARAMS)?;
            (#(#takes,)*)
        }
    }
}

/// The wrapper with the shape of `Handler::Blocking` or `Handler::Async`.
fn handler_fn(method: &Method<'_>) -> TokenStream {
    let fn_ident = &method.item.sig.ident;
    let args: Vec<_> = (0..method.sig.params.len())
        .map(|index| format_ident!("__hub_rpc_method_arg{}", index))
        .collect();
    let encode = encode_output(&method.sig.output);
    let decode = decode_block(&method.sig);
    if method.sig.is_async {
        let ctx_arg = method
            .sig
            .takes_context
            .then(|| quote!(&__hub_rpc_method_ctx,));
        // The user's future is checked for `Send` at the function's name: the hub
        // runs async methods on a multi-threaded runtime.
        let call = quote_spanned! {fn_ident.span()=>
            __hub::require_send(#fn_ident(#ctx_arg #(#args),*)).await
        };
        quote! {
            fn __hub_rpc_method_handler(
                __hub_rpc_method_ctx: __hub::Arc<__hub::Context>,
                __hub_rpc_method_params: __hub::Params,
            ) -> __hub::BoxFuture<::core::result::Result<__hub::Value, __hub::RpcError>> {
                ::std::boxed::Box::pin(async move {
                    let (#(#args,)*) = #decode;
                    let __out = #call;
                    #encode
                })
            }
        }
    } else {
        let ctx_arg = method
            .sig
            .takes_context
            .then(|| quote!(__hub_rpc_method_ctx,));
        quote! {
            fn __hub_rpc_method_handler(
                __hub_rpc_method_ctx: &__hub::Context,
                __hub_rpc_method_params: __hub::Params,
            ) -> ::core::result::Result<__hub::Value, __hub::RpcError> {
                let (#(#args,)*) = #decode;
                let __out = #fn_ident(#ctx_arg #(#args),*);
                #encode
            }
        }
    }
}

/// Turns `__out` into `Result<Value, RpcError>`; bound checks are spanned on the
/// user's return type (or its `Ok`/`Err` halves).
fn encode_output(output: &Output) -> TokenStream {
    match output {
        Output::Unit(span) => quote_spanned! {*span=>
            let () = __out;
            ::core::result::Result::Ok(__hub::Value::Nil)
        },
        Output::Value(ty) => quote_spanned! {ty.span()=>
            <#ty as __hub::EncodeReturn>::encode_return(__out)
        },
        Output::Result { whole, ok, err } => {
            let encode_ok = quote_spanned! {ok.span()=>
                <#ok as __hub::EncodeReturn>::encode_return(__value)
            };
            let convert_err = match err {
                Some(err) => quote_spanned! {err.span()=>
                    <#err as __hub::IntoRpcError>::into_rpc_error(__error)
                },
                None => quote_spanned! {whole.span()=>
                    __hub::IntoRpcError::into_rpc_error(__error)
                },
            };
            quote! {
                match __out {
                    ::core::result::Result::Ok(__value) => #encode_ok,
                    ::core::result::Result::Err(__error) => ::core::result::Result::Err(#convert_err),
                }
            }
        }
    }
}

/// `fn __hub_rpc_method_returns() -> &'static str`: the result's XML-RPC type. Known
/// shapes are named from the syntax; anything else is probed at run time.
fn returns_fn(output: &Output) -> TokenStream {
    let ty = match output {
        Output::Unit(_) => None,
        Output::Value(ty) => Some(ty),
        Output::Result { ok, .. } => Some(&**ok),
    };
    let body = match ty {
        None => quote!("nil"),
        Some(ty) => match syntactic_type_name(ty) {
            Some(name) => quote!(#name),
            None => {
                let probe = probe(ty);
                quote!((#probe)())
            }
        },
    };
    quote! {
        fn __hub_rpc_method_returns() -> &'static str {
            #body
        }
    }
}

/// A `fn() -> &'static str` naming `ty`'s XML-RPC type: precise for types that
/// implement `Deserialize`, `"any"` for the others (see `hub_core::params::TypeProbe`).
fn probe(ty: &Type) -> TokenStream {
    quote! {
        || {
            #[allow(unused_imports)]
            use __hub::{ProbeByDeserialize as _, ProbeFallback as _};
            (&__hub::TypeProbe::<#ty>::new()).xmlrpc_type()
        }
    }
}

/// The XML-RPC type of a type whose name says it all, `None` for the rest.
fn syntactic_type_name(ty: &Type) -> Option<&'static str> {
    if let Some(inner) = option_inner(ty) {
        return syntactic_type_name(&inner);
    }
    match strip_groups(ty) {
        Type::Tuple(tuple) if tuple.elems.is_empty() => Some("nil"),
        Type::Tuple(_) | Type::Slice(_) | Type::Array(_) => Some("array"),
        Type::Reference(reference) => syntactic_type_name(&reference.elem),
        Type::Path(path) if path.qself.is_none() => {
            let segment = path.path.segments.last()?;
            let name = segment.ident.to_string();
            Some(match name.as_str() {
                "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" => "int",
                "bool" => "boolean",
                "f32" | "f64" => "double",
                "String" | "str" | "char" => "string",
                "Vec" | "VecDeque" | "HashSet" | "BTreeSet" => "array",
                "HashMap" | "BTreeMap" | "Struct" => "struct",
                "Box" | "Arc" | "Rc" | "Cow" => {
                    let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
                        return None;
                    };
                    let inner = args.args.iter().find_map(|arg| match arg {
                        syn::GenericArgument::Type(ty) => Some(ty),
                        _ => None,
                    })?;
                    return syntactic_type_name(inner);
                }
                _ => return None,
            })
        }
        _ => None,
    }
}

/// The type as written, for help text.
fn type_text(ty: &Type) -> String {
    quote!(#ty)
        .to_string()
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(" :: ", "::")
}
