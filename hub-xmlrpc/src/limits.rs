//! [`Limits`]: how much a parser accepts from a stranger.

/// Bounds the parser enforces while reading a document.
///
/// Both are checked before any work that could grow with them: the size before
/// the first byte is read, the depth before a nested array or struct is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest document accepted, in bytes (default 4 MiB, koji's `MaxRequestLength`).
    pub max_size: usize,
    /// The deepest nesting of arrays and structs accepted (default 64).
    pub max_depth: usize,
}

impl Limits {
    /// The default limits: 4 MiB and a depth of 64.
    pub const DEFAULT: Limits = Limits {
        max_size: 4 * 1024 * 1024,
        max_depth: 64,
    };

    /// No practical limit: for trusted input only (e.g. tests and benchmarks).
    pub const UNLIMITED: Limits = Limits {
        max_size: usize::MAX,
        max_depth: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
