//! Parsing of the attribute's arguments:
//! `#[rpc_method(name = "getBuild", aliases = ["get_build"], perm = "admin", sensitive,
//! timeout_ms = 60000, max_in_flight = 4)]`.

use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

use crate::errors::Errors;

/// The keys the attribute understands, in the order error messages list them.
const VALID_KEYS: &[&str] = &[
    "name",
    "aliases",
    "perm",
    "sensitive",
    "timeout_ms",
    "max_in_flight",
];

/// The parsed arguments; every field is optional.
#[derive(Default)]
pub(crate) struct MethodArgs {
    /// `name = "..."`: the XML-RPC method name.
    pub name: Option<LitStr>,
    /// `aliases = ["...", ...]`: more names the method answers to (old names kept for old
    /// clients); each checked like `name`, none twice.
    pub aliases: Option<Vec<LitStr>>,
    /// `perm = "..."`: the permission a caller needs.
    pub perm: Option<LitStr>,
    /// `sensitive`: the arguments carry secrets (a password) and are never logged.
    pub sensitive: Option<syn::Path>,
    /// `timeout_ms = N`: the method's own time budget (0: none), checked to fit a `u64`.
    pub timeout_ms: Option<u64>,
    /// `max_in_flight = N`: how many of its calls may run at once, at least 1.
    pub max_in_flight: Option<u32>,
}

/// Parses the attribute's token stream, recording every problem in `errors` and
/// keeping whatever was valid, so that all mistakes are reported in one compile.
pub(crate) fn parse(tokens: proc_macro2::TokenStream, errors: &mut Errors) -> MethodArgs {
    let mut args = MethodArgs::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(metas) => metas,
        Err(err) => {
            errors.push(err);
            return args;
        }
    };
    for meta in metas {
        let key = match meta.path().get_ident() {
            Some(ident) => ident.to_string(),
            None => {
                errors.push(unknown_key(&meta, &path_text(meta.path())));
                continue;
            }
        };
        if key == "sensitive" {
            match (&meta, &args.sensitive) {
                (_, Some(_)) => errors.push(duplicate_key(meta.path(), &key)),
                (Meta::Path(path), None) => args.sensitive = Some(path.clone()),
                _ => errors.push(syn::Error::new_spanned(
                    &meta,
                    "`sensitive` takes no value: write `#[rpc_method(sensitive)]`",
                )),
            }
            continue;
        }
        if key == "aliases" {
            if args.aliases.is_some() {
                errors.push(duplicate_key(meta.path(), &key));
            } else {
                args.aliases = Some(alias_values(&meta, errors));
            }
            continue;
        }
        if key == "timeout_ms" {
            set_once(&mut args.timeout_ms, &meta, errors, millis_value);
            continue;
        }
        if key == "max_in_flight" {
            set_once(&mut args.max_in_flight, &meta, errors, in_flight_value);
            continue;
        }
        let slot = match key.as_str() {
            "name" => &mut args.name,
            "perm" => &mut args.perm,
            _ => {
                errors.push(unknown_key(meta.path(), &key));
                continue;
            }
        };
        if slot.is_some() {
            errors.push(duplicate_key(meta.path(), &key));
            continue;
        }
        match string_value(&meta, &key) {
            Ok(lit) => match validate(&key, &lit) {
                Ok(()) => *slot = Some(lit),
                Err(err) => errors.push(err),
            },
            Err(err) => errors.push(err),
        }
    }
    args
}

/// Reports (and drops) an alias that is the method's own name: `name`, or the function's.
pub(crate) fn check_aliases(args: &mut MethodArgs, fn_name: &str, errors: &mut Errors) {
    let name = args
        .name
        .as_ref()
        .map_or_else(|| fn_name.to_owned(), LitStr::value);
    if let Some(aliases) = &mut args.aliases {
        aliases.retain(|alias| {
            let same = alias.value() == name;
            if same {
                errors.push(syn::Error::new(
                    alias.span(),
                    format!("`{name}` is the method's own name: an alias is another name for it"),
                ));
            }
            !same
        });
    }
}

/// Sets `slot` from `meta` with `parse`, unless the key was given already (an error, as a
/// value that does not parse is).
fn set_once<T>(
    slot: &mut Option<T>,
    meta: &Meta,
    errors: &mut Errors,
    parse: impl FnOnce(&Meta) -> syn::Result<T>,
) {
    if slot.is_some() {
        errors.push(duplicate_key(meta.path(), &path_text(meta.path())));
        return;
    }
    match parse(meta) {
        Ok(value) => *slot = Some(value),
        Err(err) => errors.push(err),
    }
}

fn duplicate_key(path: &syn::Path, key: &str) -> syn::Error {
    syn::Error::new_spanned(path, format!("duplicate key `{key}`: give it once"))
}

fn unknown_key(tokens: impl quote::ToTokens, key: &str) -> syn::Error {
    let valid = VALID_KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    syn::Error::new_spanned(
        tokens,
        format!("unknown key `{key}` in #[rpc_method]; valid keys: {valid}"),
    )
}

fn path_text(path: &syn::Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}

/// Requires `key = "literal"`; the span of any error is the offending value (or the
/// key when there is no value at all).
fn string_value(meta: &Meta, key: &str) -> syn::Result<LitStr> {
    let example = match key {
        "name" => "name = \"getBuild\"",
        _ => "perm = \"admin\"",
    };
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => Ok(lit.clone()),
            other => Err(syn::Error::new_spanned(
                other,
                format!("`{key}` must be a string literal, e.g. `{example}`"),
            )),
        },
        _ => Err(syn::Error::new_spanned(
            meta,
            format!("expected `{example}`"),
        )),
    }
}

/// Requires `aliases = ["name", ...]`: a list of string literals, each a valid method name and
/// none given twice. Bad entries are reported (on the entry) and left out.
fn alias_values(meta: &Meta, errors: &mut Errors) -> Vec<LitStr> {
    const EXAMPLE: &str = "`aliases = [\"get_build\", \"build.get\"]`";
    let Meta::NameValue(nv) = meta else {
        errors.push(syn::Error::new_spanned(meta, format!("expected {EXAMPLE}")));
        return Vec::new();
    };
    let Expr::Array(list) = &nv.value else {
        errors.push(syn::Error::new_spanned(
            &nv.value,
            format!("`aliases` must be a list of string literals, e.g. {EXAMPLE}"),
        ));
        return Vec::new();
    };
    let mut aliases: Vec<LitStr> = Vec::new();
    for elem in &list.elems {
        let Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) = elem
        else {
            errors.push(syn::Error::new_spanned(
                elem,
                format!("each alias must be a string literal, e.g. {EXAMPLE}"),
            ));
            continue;
        };
        if let Err(err) = validate("name", lit) {
            errors.push(err);
        } else if aliases.iter().any(|a| a.value() == lit.value()) {
            errors.push(syn::Error::new(
                lit.span(),
                format!("alias `{}` is given twice: give it once", lit.value()),
            ));
        } else {
            aliases.push(lit.clone());
        }
    }
    aliases
}

/// Requires `timeout_ms = <integer literal>` that fits a `u64`; the span of an error is the
/// offending value.
fn millis_value(meta: &Meta) -> syn::Result<u64> {
    const EXAMPLE: &str = "`timeout_ms = 60000` (0: no time budget)";
    let Meta::NameValue(nv) = meta else {
        return Err(syn::Error::new_spanned(meta, format!("expected {EXAMPLE}")));
    };
    match &nv.value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) if lit.suffix().is_empty() || lit.suffix() == "u64" => {
            lit.base10_parse::<u64>().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    format!("`timeout_ms` is too large: at most {} ms", u64::MAX),
                )
            })
        }
        other => Err(syn::Error::new_spanned(
            other,
            format!("`timeout_ms` must be an integer literal of milliseconds, e.g. {EXAMPLE}"),
        )),
    }
}

/// Requires `max_in_flight = <integer literal>` from 1 to `u32::MAX`; the span of an error is
/// the offending value.
fn in_flight_value(meta: &Meta) -> syn::Result<u32> {
    const EXAMPLE: &str = "`max_in_flight = 4` (omit it for no limit)";
    let Meta::NameValue(nv) = meta else {
        return Err(syn::Error::new_spanned(meta, format!("expected {EXAMPLE}")));
    };
    let Expr::Lit(ExprLit {
        lit: Lit::Int(lit), ..
    }) = &nv.value
    else {
        return Err(syn::Error::new_spanned(
            &nv.value,
            format!("`max_in_flight` must be an integer literal, e.g. {EXAMPLE}"),
        ));
    };
    match lit.base10_parse::<u32>() {
        Ok(0) => Err(syn::Error::new(
            lit.span(),
            format!(
                "`max_in_flight` must be at least 1 (0 would refuse every call), e.g. {EXAMPLE}"
            ),
        )),
        Ok(calls) => Ok(calls),
        Err(_) => Err(syn::Error::new(
            lit.span(),
            format!(
                "`max_in_flight` must be at most {}, e.g. {EXAMPLE}",
                u32::MAX
            ),
        )),
    }
}

/// Checks the method name taken from the function's name when there is no `name = "..."`,
/// as `name` is checked; the error is on the function's name.
pub(crate) fn check_default_name(args: &MethodArgs, fn_ident: &syn::Ident, errors: &mut Errors) {
    if args.name.is_some() {
        return;
    }
    let name = syn::ext::IdentExt::unraw(fn_ident).to_string();
    if let Some(bad) = name.chars().find(|c| !is_method_name_char(*c)) {
        errors.push(syn::Error::new(
            fn_ident.span(),
            format!(
                "`{bad}` cannot appear in an XML-RPC method name \
                 (allowed: letters, digits, `_`, `.`, `:`, `/`), and the method is named \
                 after the function: give it a valid name with `name = \"...\"`"
            ),
        ));
    }
}

/// Checks the literal's content: XML-RPC method names are restricted to a known
/// character set, and an empty permission would silently mean "anyone".
fn validate(key: &str, lit: &LitStr) -> syn::Result<()> {
    let value = lit.value();
    match key {
        "name" => {
            if value.is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    "the method name must not be empty",
                ));
            }
            if let Some(bad) = value.chars().find(|c| !is_method_name_char(*c)) {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "`{bad}` cannot appear in an XML-RPC method name \
                         (allowed: letters, digits, `_`, `.`, `:`, `/`)"
                    ),
                ));
            }
        }
        _ => {
            if value.trim().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    "the permission must not be empty; omit `perm` for a method anyone may call",
                ));
            }
            if value.trim() != value {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "the permission has leading or trailing whitespace, which no \
                         permission has: write `perm = \"{}\"`",
                        value.trim()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The characters the XML-RPC specification allows in a method name.
fn is_method_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/')
}
