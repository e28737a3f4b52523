//! Reading the annotated function's signature: which parameter is the context,
//! which are decoded from the call, what is returned; and refusing, with a span on
//! the offending token, every shape the hub cannot call.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type};

use crate::errors::Errors;

/// What the generated wrapper needs to know about the function.
pub(crate) struct MethodSig {
    /// `true` if the first parameter is `&Context`.
    pub takes_context: bool,
    /// The parameters decoded from the call, in order.
    pub params: Vec<Param>,
    /// How the result becomes a value or a fault.
    pub output: Output,
    /// `async fn`?
    pub is_async: bool,
}

/// One parameter decoded from the call.
pub(crate) struct Param {
    /// The binding name (without `mut`); also the keyword-argument name.
    pub ident: Ident,
    /// The declared type.
    pub ty: Type,
    /// A trailing `Option<T>`: may be omitted by the caller.
    pub optional: bool,
}

/// The shape of the return type.
pub(crate) enum Output {
    /// No return type, or `()`: the call answers nil.
    Unit(Span),
    /// `T`: encoded with serde.
    Value(Type),
    /// `Result<T, E>`: `T` encoded, `E` turned into a fault. `err` is `None` when
    /// the error type is hidden behind an alias such as `io::Result<T>`.
    Result {
        whole: Box<Type>,
        ok: Box<Type>,
        err: Option<Box<Type>>,
    },
}

/// Checks the signature, recording every problem in `errors`.
pub(crate) fn analyze(sig: &Signature, errors: &mut Errors) -> MethodSig {
    check_qualifiers(sig, errors);
    let mut takes_context = false;
    let mut params = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(
                    receiver,
                    "#[rpc_method] goes on free functions, not methods: \
                     remove the `self` parameter and reach shared state through `&Context`",
                ));
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        for attr in &typed.attrs {
            let which = if attr.path().is_ident("cfg") {
                "`#[cfg]` cannot go on a parameter of an RPC method"
            } else if attr.path().is_ident("cfg_attr") {
                "`#[cfg_attr]` cannot go on a parameter of an RPC method (it may hold a `cfg`)"
            } else {
                continue;
            };
            errors.push(syn::Error::new_spanned(
                attr,
                format!(
                    "{which}: the hub decodes every parameter the function declares; write a \
                     separate function for each configuration, or take an `Option<T>` parameter"
                ),
            ));
        }
        match classify(&typed.ty) {
            Kind::Context { mutable } => {
                if let Some(token) = mutable {
                    errors.push(syn::Error::new(
                        token,
                        "the context is shared with the hub: take `&Context`, not `&mut Context`",
                    ));
                } else if index != 0 {
                    errors.push(syn::Error::new_spanned(
                        &typed.ty,
                        "`&Context` must be the first parameter",
                    ));
                } else {
                    takes_context = true;
                }
            }
            Kind::ContextByValue => errors.push(syn::Error::new_spanned(
                &typed.ty,
                "take the context by reference: `&Context`; the hub recognises its context \
                 by the type name `Context`, so a type of your own named `Context` must be \
                 imported under another name (`use build::Context as BuildContext;`)",
            )),
            Kind::Borrowed(advice) => errors.push(syn::Error::new_spanned(
                &typed.ty,
                format!("{BORROWED}: {advice}"),
            )),
            Kind::ImplTrait => errors.push(syn::Error::new_spanned(&typed.ty, IMPL_TRAIT_PARAM)),
            Kind::Decoded => {
                let nested = nested_problems(&typed.ty);
                for inner in &nested {
                    errors.push(nested_param_error(inner, &typed.ty));
                }
                match param_ident(&typed.pat) {
                    Ok(ident) if nested.is_empty() => params.push(Param {
                        ident,
                        ty: (*typed.ty).clone(),
                        optional: false,
                    }),
                    Ok(_) => {}
                    Err(err) => errors.push(err),
                }
            }
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "variadic parameters cannot be called over XML-RPC: \
             take a `Vec<T>` for a variable number of values",
        ));
    }
    mark_optional_tail(&mut params);
    MethodSig {
        takes_context,
        params,
        output: output(&sig.output, errors),
        is_async: sig.asyncness.is_some(),
    }
}

/// `const`, `unsafe`, `extern` and generics: nothing the hub could honour.
fn check_qualifiers(sig: &Signature, errors: &mut Errors) {
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            token,
            "an RPC method cannot be a `const fn`: remove `const`",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            token,
            "an RPC method cannot be `unsafe`: a remote caller cannot uphold its safety \
             contract; remove `unsafe` and keep `unsafe` blocks inside the body",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "an RPC method cannot declare an ABI: remove the `extern`; \
             the hub calls it as a Rust function",
        ));
    }
    let generics = &sig.generics.params;
    if !generics.is_empty()
        && generics
            .iter()
            .all(|param| matches!(param, syn::GenericParam::Lifetime(_)))
    {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "an RPC method cannot have lifetime parameters: the hub calls it with values \
             that live for the one call; remove the lifetime parameter and write `&Context`",
        ));
    } else if !generics.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "an RPC method cannot be generic: the hub must know the concrete type of every \
             parameter to decode it; remove the generic parameters",
        ));
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "an RPC method cannot have a `where` clause: remove it",
        ));
    }
}

const BORROWED: &str = "parameters are decoded into owned values and cannot be borrowed";

const IMPL_TRAIT_PARAM: &str = "`impl Trait` parameters are generic: the hub needs one concrete \
                                type to decode into; name the type";

const IMPL_TRAIT_RETURN: &str = "name the return type: the hub needs a concrete type to describe \
                                 and encode the result";

/// The error for a `&` or `impl Trait` found inside a decoded parameter's type `whole`.
fn nested_param_error(inner: &Type, whole: &Type) -> syn::Error {
    let message = match strip_groups(inner) {
        Type::Reference(reference) if is_context(&reference.elem) => {
            "the context cannot be part of another type: take `&Context` as the first parameter"
                .to_owned()
        }
        Type::Reference(_) => {
            let mut owned = whole.clone();
            make_owned(&mut owned);
            format!(
                "{BORROWED}: take `{}` instead of `{}`",
                compact(&owned),
                compact(whole)
            )
        }
        _ => IMPL_TRAIT_PARAM.to_owned(),
    };
    syn::Error::new_spanned(inner, message)
}

/// Every `&` and `impl Trait` inside `ty` (in type arguments, tuples, arrays and slices),
/// outermost first; each is reported where it is written.
pub(crate) fn nested_problems(ty: &Type) -> Vec<&Type> {
    let mut found = Vec::new();
    match strip_groups(ty) {
        // The outermost `&` and `impl Trait` have their own messages.
        Type::Reference(_) | Type::ImplTrait(_) => {}
        outer => walk_inner(outer, &mut found),
    }
    found
}

fn walk_inner<'a>(ty: &'a Type, found: &mut Vec<&'a Type>) {
    for inner in inner_types(ty) {
        match strip_groups(inner) {
            Type::Reference(_) | Type::ImplTrait(_) => found.push(inner),
            _ => walk_inner(inner, found),
        }
    }
}

/// The types written directly inside `ty`. Function pointers and trait objects are not
/// looked into: they cannot be decoded anyway, and their `&` are not borrowed values.
fn inner_types(ty: &Type) -> Vec<&Type> {
    match ty {
        Type::Group(group) => vec![&*group.elem],
        Type::Paren(paren) => vec![&*paren.elem],
        Type::Slice(slice) => vec![&*slice.elem],
        Type::Array(array) => vec![&*array.elem],
        Type::Ptr(ptr) => vec![&*ptr.elem],
        Type::Reference(reference) => vec![&*reference.elem],
        Type::Tuple(tuple) => tuple.elems.iter().collect(),
        Type::Path(path) => {
            let mut inner: Vec<&Type> = path.qself.iter().map(|qself| &*qself.ty).collect();
            for segment in &path.path.segments {
                if let PathArguments::AngleBracketed(args) = &segment.arguments {
                    for arg in &args.args {
                        match arg {
                            GenericArgument::Type(ty) => inner.push(ty),
                            GenericArgument::AssocType(assoc) => inner.push(&assoc.ty),
                            _ => {}
                        }
                    }
                }
            }
            inner
        }
        _ => Vec::new(),
    }
}

/// `ty` with every `&str` made `String`, every `&[T]` `Vec<T>` and every other `&T` `T`.
fn make_owned(ty: &mut Type) {
    if let Type::Reference(reference) = strip_groups(ty) {
        let owned: Type = match strip_groups(&reference.elem) {
            Type::Path(path) if path.path.is_ident("str") => syn::parse_quote!(String),
            Type::Slice(slice) => {
                let elem = &slice.elem;
                syn::parse_quote!(Vec<#elem>)
            }
            other => other.clone(),
        };
        *ty = owned;
    }
    match ty {
        Type::Group(group) => make_owned(&mut group.elem),
        Type::Paren(paren) => make_owned(&mut paren.elem),
        Type::Slice(slice) => make_owned(&mut slice.elem),
        Type::Array(array) => make_owned(&mut array.elem),
        Type::Ptr(ptr) => make_owned(&mut ptr.elem),
        Type::Tuple(tuple) => tuple.elems.iter_mut().for_each(make_owned),
        Type::Path(path) => {
            for segment in &mut path.path.segments {
                if let PathArguments::AngleBracketed(args) = &mut segment.arguments {
                    for arg in &mut args.args {
                        match arg {
                            GenericArgument::Type(ty) => make_owned(ty),
                            GenericArgument::AssocType(assoc) => make_owned(&mut assoc.ty),
                            _ => {}
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// A type as written, without most of the spaces `quote` puts between tokens.
fn compact(ty: &Type) -> String {
    let mut text = quote::quote!(#ty).to_string();
    for (spaced, tight) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (" ;", ";"),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

/// What a parameter's type means to the hub.
enum Kind {
    Context { mutable: Option<Span> },
    ContextByValue,
    Borrowed(String),
    ImplTrait,
    Decoded,
}

fn classify(ty: &Type) -> Kind {
    match strip_groups(ty) {
        Type::Reference(reference) => {
            if is_context(&reference.elem) {
                Kind::Context {
                    mutable: reference.mutability.map(|m| m.span()),
                }
            } else {
                Kind::Borrowed(owned_advice(&reference.elem))
            }
        }
        Type::ImplTrait(_) => Kind::ImplTrait,
        other if is_context(other) => Kind::ContextByValue,
        _ => Kind::Decoded,
    }
}

/// `Context`, `hub::Context`, or any path whose last segment is `Context`.
fn is_context(ty: &Type) -> bool {
    match strip_groups(ty) {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Context" && segment.arguments.is_empty()),
        _ => false,
    }
}

/// What to write instead of a borrowed parameter type.
fn owned_advice(referent: &Type) -> String {
    match strip_groups(referent) {
        Type::Path(path) if path.path.is_ident("str") => "take `String` instead of `&str`".into(),
        Type::Slice(slice) => {
            let elem = &slice.elem;
            format!(
                "take `Vec<{}>` instead of a slice",
                quote::quote!(#elem).to_string().replace(' ', "")
            )
        }
        Type::Path(path) if path.qself.is_none() => {
            let name = compact(referent);
            format!(
                "take `{name}` by value; if `{name}` is the hub's context, write `&Context` \
                 or `&hub::Context` (the hub recognises its context by the type name \
                 `Context`, not through a type alias or a `use .. as` rename)"
            )
        }
        other => format!("take `{}` by value", compact(other)),
    }
}

/// The parameter's name: only a plain identifier can be a keyword-argument name.
fn param_ident(pat: &Pat) -> syn::Result<Ident> {
    match pat {
        Pat::Ident(binding) if binding.by_ref.is_none() && binding.subpat.is_none() => {
            Ok(binding.ident.clone())
        }
        other => Err(syn::Error::new_spanned(
            other,
            "bind the parameter to a plain name (`build_id: i64`): the name is also the \
             keyword-argument name callers use; destructure inside the body",
        )),
    }
}

/// Only trailing `Option<T>` parameters may be omitted, so that positional calls
/// stay unambiguous (jsonrpsee and Python defaults follow the same rule).
fn mark_optional_tail(params: &mut [Param]) {
    for param in params.iter_mut().rev() {
        if option_inner(&param.ty).is_none() {
            break;
        }
        param.optional = true;
    }
}

fn output(ret: &ReturnType, errors: &mut Errors) -> Output {
    let ty = match ret {
        ReturnType::Default => return Output::Unit(Span::call_site()),
        ReturnType::Type(_, ty) => strip_groups(ty),
    };
    match ty {
        Type::Tuple(tuple) if tuple.elems.is_empty() => Output::Unit(tuple.span()),
        Type::ImplTrait(_) => {
            errors.push(syn::Error::new_spanned(ty, IMPL_TRAIT_RETURN));
            Output::Unit(ty.span())
        }
        _ if nested_impl_trait(ty, errors) => Output::Unit(ty.span()),
        _ => match result_args(ty) {
            Some((ok, err)) => Output::Result {
                whole: Box::new(ty.clone()),
                ok: Box::new(ok),
                err: err.map(Box::new),
            },
            None => Output::Value(ty.clone()),
        },
    }
}

/// Reports every `impl Trait` inside the return type (`Result<impl Serialize, Fault>`);
/// `true` if there was one.
fn nested_impl_trait(ty: &Type, errors: &mut Errors) -> bool {
    let mut found = false;
    for inner in nested_problems(ty) {
        if let Type::ImplTrait(_) = strip_groups(inner) {
            errors.push(syn::Error::new_spanned(inner, IMPL_TRAIT_RETURN));
            found = true;
        }
    }
    found
}

/// `Result<T, E>` (or an alias named `Result` with one argument) → `(T, Some(E))`.
fn result_args(ty: &Type) -> Option<(Type, Option<Type>)> {
    let args = last_segment_args(ty, "Result")?;
    let mut types = args.into_iter();
    let ok = types.next()?;
    Some((ok, types.next()))
}

/// `Option<T>` → `T`.
pub(crate) fn option_inner(ty: &Type) -> Option<Type> {
    let args = last_segment_args(ty, "Option")?;
    match args.as_slice() {
        [inner] => Some(inner.clone()),
        _ => None,
    }
}

/// The type arguments of a path type whose last segment is `name`.
fn last_segment_args(ty: &Type, name: &str) -> Option<Vec<Type>> {
    let Type::Path(path) = strip_groups(ty) else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let segment = path.path.segments.last()?;
    if segment.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty.clone()),
                _ => None,
            })
            .collect(),
    )
}

/// Invisible groups and parentheses appear when types come from `macro_rules!`.
pub(crate) fn strip_groups(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_groups(&group.elem),
        Type::Paren(paren) => strip_groups(&paren.elem),
        other => other,
    }
}
