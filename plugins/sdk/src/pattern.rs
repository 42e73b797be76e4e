//! Tag patterns: `245`, `9XX` (`X` matches any character), `*` (every tag); the same
//! language as the host's merge rules.

/// A parsed tag pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagPattern {
    /// `None` = any tag.
    positions: Option<[Option<u8>; 3]>,
}

impl TagPattern {
    /// Parses `*` or three ASCII letters or digits, `X` being a wildcard; `None` otherwise.
    pub fn new(text: &str) -> Option<TagPattern> {
        if text == "*" {
            return Some(TagPattern { positions: None });
        }
        let bytes = text.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let mut positions = [None; 3];
        for (slot, byte) in positions.iter_mut().zip(bytes) {
            *slot = (*byte != b'X').then_some(*byte);
        }
        Some(TagPattern {
            positions: Some(positions),
        })
    }

    /// True when `tag` matches.
    pub fn matches(&self, tag: &str) -> bool {
        let Some(positions) = self.positions else {
            return true;
        };
        let bytes = tag.as_bytes();
        bytes.len() == 3
            && positions
                .iter()
                .zip(bytes)
                .all(|(want, got)| want.is_none_or(|w| w == *got))
    }
}

/// True when `tag` matches any of `patterns` (invalid patterns match nothing).
pub fn matches_any<S: AsRef<str>>(patterns: &[S], tag: &str) -> bool {
    patterns
        .iter()
        .filter_map(|p| TagPattern::new(p.as_ref()))
        .any(|p| p.matches(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let local = TagPattern::new("9XX").unwrap();
        assert!(local.matches("945") && local.matches("9AB") && !local.matches("590"));
        assert!(TagPattern::new("*").unwrap().matches("001"));
        assert!(TagPattern::new("69X").unwrap().matches("690"));
        assert!(TagPattern::new("59").is_none() && TagPattern::new("5-0").is_none());
        assert!(matches_any(&["590", "69X"], "691"));
    }
}
