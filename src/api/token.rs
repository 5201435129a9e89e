//! `continue` tokens for keyset paging: base64url of a small JSON document holding the store's
//! [`Cursor`], the page number the token leads to and a fingerprint of the filters, so a token
//! replayed with other filters or another sort is refused instead of returning a wrong page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::store::Cursor;

/// Why a token was refused; both are a 400 naming `continue`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed continue token")]
    Malformed,
    #[error("continue token was issued for different filters or sort; start again without it")]
    OtherFilters,
}

/// What a token carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Token {
    #[serde(rename = "c")]
    cursor: Cursor,
    /// Page number of the page the token leads to.
    #[serde(rename = "p")]
    page: usize,
    /// [`fingerprint`] of the filters and sort the token belongs to.
    #[serde(rename = "f")]
    filters: u64,
}

/// Encodes the token for the page after `cursor`.
pub fn encode(cursor: &Cursor, page: usize, filters: u64) -> String {
    let token = Token {
        cursor: cursor.clone(),
        page,
        filters,
    };
    // Serializing a struct of strings, numbers and a JSON value cannot fail.
    let json = serde_json::to_vec(&token).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a token, checking it belongs to `filters`; returns the cursor and its page number.
pub fn decode(token: &str, filters: u64) -> Result<(Cursor, usize), TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if token.page < 1 {
        return Err(TokenError::Malformed);
    }
    if token.filters != filters {
        return Err(TokenError::OtherFilters);
    }
    Ok((token.cursor, token.page))
}

/// A stable 64-bit FNV-1a hash of `parts`, each terminated so `["ab", "c"]` ≠ `["a", "bc"]`.
/// Stable across processes and Rust releases, unlike `DefaultHasher`.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            value: json!("Running"),
            namespace: "shop".into(),
            name: "web-1".into(),
        }
    }

    #[test]
    fn round_trips_cursor_and_page() {
        let token = encode(&cursor(), 3, 42);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert_eq!(decode(&token, 42), Ok((cursor(), 3)));
    }

    #[test]
    fn refuses_tokens_from_other_filters() {
        let token = encode(&cursor(), 2, 42);
        assert_eq!(decode(&token, 43), Err(TokenError::OtherFilters));
    }

    #[test]
    fn refuses_garbage_and_tampering() {
        assert_eq!(decode("not base64!", 1), Err(TokenError::Malformed));
        assert_eq!(
            decode(&URL_SAFE_NO_PAD.encode(b"{\"x\":1}"), 1),
            Err(TokenError::Malformed)
        );
        let zero_page = URL_SAFE_NO_PAD.encode(
            json!({"c": {"value": null, "namespace": "", "name": "a"}, "p": 0, "f": 1}).to_string(),
        );
        assert_eq!(decode(&zero_page, 1), Err(TokenError::Malformed));

        // Flip one character in the middle: either undecodable or a different document.
        let token = encode(&cursor(), 2, 42);
        let mut bytes = token.into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert_ne!(decode(&tampered, 42), Ok((cursor(), 2)));
    }

    #[test]
    fn fingerprint_separates_parts() {
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
        assert_eq!(fingerprint(["pods", "shop"]), fingerprint(["pods", "shop"]));
        assert_ne!(fingerprint(["pods", "shop"]), fingerprint(["pods", ""]));
    }
}
