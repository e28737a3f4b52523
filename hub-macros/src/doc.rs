//! Doc comments become the method's help text.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Expr, ExprLit, Lit, Meta};

/// One piece of the help text.
enum Piece<'a> {
    /// A line of a literal doc attribute (`/// text`), already tidied.
    Line(String),
    /// A doc attribute whose value is an expression (`#[doc = include_str!("..")]`,
    /// `#[doc = concat!(..)]`): its text is known only to the compiler.
    Expr(&'a Expr),
}

/// The doc attributes joined with newlines (as rustdoc joins them), as a `&'static str`
/// expression. In `///` lines the single leading space that `/// text` leaves is removed,
/// and blank lines at either end are trimmed. A value that is not a string literal is put
/// in as written, through `::core::concat!`.
pub(crate) fn collect(attrs: &[Attribute]) -> TokenStream {
    let mut pieces: Vec<Piece<'_>> = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("doc")) {
        let Meta::NameValue(nv) = &attr.meta else {
            continue;
        };
        match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => {
                // `split`, not `lines`: an empty `///` line must stay a blank line.
                pieces.extend(lit.value().split('\n').map(|line| {
                    Piece::Line(line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned())
                }));
            }
            expr => pieces.push(Piece::Expr(expr)),
        }
    }
    let blank = |piece: &Piece<'_>| matches!(piece, Piece::Line(line) if line.is_empty());
    let start = pieces
        .iter()
        .position(|p| !blank(p))
        .unwrap_or(pieces.len());
    let end = pieces
        .iter()
        .rposition(|p| !blank(p))
        .map_or(start, |i| i + 1);
    let pieces = &pieces[start..end];

    if pieces.iter().all(|piece| matches!(piece, Piece::Line(_))) {
        let text = pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Line(line) => Some(line.as_str()),
                Piece::Expr(_) => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        return quote!(#text);
    }
    let mut parts: Vec<TokenStream> = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        if index > 0 {
            parts.push(quote!("\n"));
        }
        parts.push(match piece {
            Piece::Line(line) => quote!(#line),
            Piece::Expr(expr) => quote!(#expr),
        });
    }
    quote!(::core::concat!(#(#parts),*))
}
