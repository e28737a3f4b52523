//! Cutting a client's text short for a fault or a log line: by bytes, at a character
//! boundary (`str::floor_char_boundary` is newer than the crate's minimum Rust).

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
pub(crate) fn head(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_head_ends_on_a_character_boundary() {
        assert_eq!(super::head("abc", 5), "abc");
        assert_eq!(super::head("abc", 2), "ab");
        assert_eq!(super::head("ééé", 3), "é");
        assert_eq!(super::head("ééé", 4), "éé");
        assert_eq!(super::head("é", 0), "");
    }
}
