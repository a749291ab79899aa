//! Layer ids and link ids: validated newtypes. An id is one safe path component, so joining it
//! to the home can never leave the home. This module never touches the filesystem.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Longest layer id accepted (a path component on Linux is at most 255 bytes; leave room for
/// the suffixes strata appends in its staging names).
pub const MAX_ID_LEN: usize = 200;

/// A layer id: an opaque string that is a single safe path component.
///
/// Accepted: Docker's 64-hex ids, `<cid>-init`, BuildKit's 25-char base36 ids and any other
/// name of ASCII letters, digits, `-`, `_` and `.` that does not start with `.` and is not a
/// name the home uses itself (`l`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayerId(String);

impl LayerId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LayerId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |reason: &'static str| Error::InvalidId {
            id: s.escape_debug().to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(invalid("the id is empty"));
        }
        if s.len() > MAX_ID_LEN {
            return Err(invalid("the id is longer than 200 bytes"));
        }
        if s.starts_with('.') {
            return Err(invalid("an id may not start with '.'"));
        }
        if s == crate::layout::LINK_DIR {
            return Err(invalid("'l' is the home's link directory"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(invalid(
                "an id may hold only ASCII letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(LayerId(s.to_owned()))
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LayerId({})", self.0)
    }
}

/// Length of a link id. As moby overlay2 (`idLength`): 26 characters keep `l/<id>:` short
/// enough that 128 lowers fit in one page of legacy mount data.
pub const LINK_ID_LEN: usize = 26;

/// The short name of a layer under `l/`: 26 characters of `A-Z0-9`, as Docker generates them.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LinkId(String);

impl LinkId {
    /// A fresh random link id.
    pub fn generate() -> LinkId {
        use rand::Rng;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = rand::thread_rng();
        let s: String = (0..LINK_ID_LEN)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        LinkId(s)
    }

    /// Parses the content of a `link` file. Docker writes exactly the id, with no newline;
    /// surrounding whitespace is tolerated.
    ///
    /// # Errors
    /// The content is empty or not a safe path component.
    pub fn parse(s: &str) -> Result<LinkId, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the link id is empty".into());
        }
        if s.len() > 255 || s.starts_with('.') || s.contains('/') || s.contains('\0') {
            return Err(format!("{:?} is not a valid link id", s));
        }
        Ok(LinkId(s.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_id_docker_forms_are_accepted() {
        for ok in [
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-init",
            "abcdefghijklmnopqrstuvwxy",
            "base",
            "a.b_c-d",
        ] {
            assert_eq!(ok.parse::<LayerId>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn layer_id_unsafe_forms_are_rejected_with_reason() {
        for bad in [
            "", ".", "..", "a/b", "/abs", ".hidden", "l", "a b", "a\0b", "é",
        ] {
            let err = bad.parse::<LayerId>().unwrap_err();
            assert!(err.to_string().contains("invalid layer id"), "{err}");
        }
        let long = "a".repeat(201);
        assert!(long.parse::<LayerId>().is_err());
    }

    #[test]
    fn link_id_generate_has_docker_shape() {
        let a = LinkId::generate();
        assert_eq!(a.as_str().len(), LINK_ID_LEN);
        assert!(a
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_ne!(a, LinkId::generate());
    }

    #[test]
    fn link_id_parse_rejects_paths() {
        assert!(LinkId::parse("../x").is_err());
        assert!(LinkId::parse("").is_err());
        assert_eq!(LinkId::parse("ABC\n").unwrap().as_str(), "ABC");
    }
}
