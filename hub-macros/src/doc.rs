//! Doc comments become the method's help text.

use syn::{Attribute, Expr, ExprLit, Lit, Meta};

/// The `///` lines joined with newlines, with the single leading space that
/// `/// text` leaves removed, and blank lines at either end trimmed.
pub(crate) fn collect(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(lit), ..
                }) => Some(lit.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|chunk| {
            // `split`, not `lines`: an empty `///` line must stay a blank line.
            chunk
                .split('\n')
                .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.join("\n").trim_matches('\n').to_owned()
}
