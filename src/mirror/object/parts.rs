//! [`Parts`]: an object read off the wire in one pass as its members, values unparsed, with the
//! members of `metadata` split out the same way. Every later step works on these pieces, so the
//! object's bytes (most of them in `managedFields` and data) are scanned once, not once per step.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Visitor methods answering `$value` for every JSON scalar.
macro_rules! forward_scalars {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// A member's value.
#[derive(Debug, Clone)]
pub enum Member {
    Raw(Box<RawValue>),
    /// `metadata`: its members, or `None` when it is not a JSON object.
    Metadata(Option<Members>),
}

/// Members in order; a repeated key keeps its first position and its last value, as serde_json's
/// order-preserving maps do.
pub type Members = Vec<(String, Box<RawValue>)>;

/// An object's members, or `None` when the JSON is not an object.
#[derive(Debug, Clone)]
pub struct Parts(pub Option<Vec<(String, Member)>>);

impl Parts {
    /// The members of `metadata` (`None`: absent or not an object).
    pub fn metadata(&self) -> Option<&Members> {
        self.0
            .as_ref()?
            .iter()
            .find_map(|(_, member)| match member {
                Member::Metadata(members) => members.as_ref(),
                Member::Raw(_) => None,
            })
    }

    /// The object as one JSON text again.
    pub fn to_json(&self) -> Option<String> {
        let members = self.0.as_ref()?;
        let mut out = String::from("{");
        for (key, member) in members {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(key).ok()?);
            out.push(':');
            match member {
                Member::Raw(raw) => out.push_str(raw.get()),
                Member::Metadata(Some(members)) => {
                    out.push('{');
                    for (i, (key, raw)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&serde_json::to_string(key).ok()?);
                        out.push(':');
                        out.push_str(raw.get());
                    }
                    out.push('}');
                }
                Member::Metadata(None) => return None,
            }
        }
        out.push('}');
        Some(out)
    }
}

fn put<V>(members: &mut Vec<(String, V)>, key: String, value: V) {
    match members.iter_mut().find(|(k, _)| *k == key) {
        Some((_, old)) => *old = value,
        None => members.push((key, value)),
    }
}

impl<'de> Deserialize<'de> for Parts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PartsVisitor;
        impl<'de> Visitor<'de> for PartsVisitor {
            type Value = Parts;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parts, A::Error> {
                let mut members = Vec::with_capacity(8);
                while let Some(key) = map.next_key::<String>()? {
                    let member = if key == "metadata" {
                        Member::Metadata(map.next_value_seed(MetadataSeed)?)
                    } else {
                        Member::Raw(map.next_value()?)
                    };
                    put(&mut members, key, member);
                }
                Ok(Parts(Some(members)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Parts, A::Error> {
                drain(seq).map(|()| Parts(None))
            }

            forward_scalars!(Parts(None));
        }
        deserializer.deserialize_any(PartsVisitor)
    }
}

/// Reads `metadata` as its members, or `None` for anything but an object.
struct MetadataSeed;

impl<'de> DeserializeSeed<'de> for MetadataSeed {
    type Value = Option<Members>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        struct MetadataVisitor;
        impl<'de> Visitor<'de> for MetadataVisitor {
            type Value = Option<Members>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(12);
                while let Some(key) = map.next_key::<String>()? {
                    let value: Box<RawValue> = map.next_value()?;
                    put(&mut members, key, value);
                }
                Ok(Some(members))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain(seq).map(|()| None)
            }

            forward_scalars!(None);
        }
        deserializer.deserialize_any(MetadataVisitor)
    }
}

fn drain<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_metadata_are_split_in_one_pass() {
        let parts: Parts = serde_json::from_str(
            r#"{"kind": "A", "metadata": {"name": "n", "name": "m", "labels": {"a": "b"}}, "kind": "B", "data": [1]}"#,
        )
        .expect("parts");
        let members = parts.0.as_ref().expect("an object");
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["kind", "metadata", "data"], "first position kept");
        let metadata = parts.metadata().expect("metadata");
        assert_eq!(metadata[0].0, "name");
        assert_eq!(metadata[0].1.get(), r#""m""#, "last value kept");
        let json: serde_json::Value =
            serde_json::from_str(&parts.to_json().expect("json")).expect("valid");
        assert_eq!(
            json,
            serde_json::json!({"kind": "B", "metadata": {"name": "m", "labels": {"a": "b"}}, "data": [1]})
        );
    }

    #[test]
    fn anything_else_decodes_too() {
        for text in ["[1, {}]", "\"x\"", "3", "null", "true"] {
            let parts: Parts = serde_json::from_str(text).expect(text);
            assert!(parts.0.is_none(), "{text}");
        }
        let parts: Parts =
            serde_json::from_str(r#"{"metadata": [1], "a": 1}"#).expect("metadata not an object");
        assert!(parts.metadata().is_none());
        assert_eq!(parts.to_json(), None);
    }
}
