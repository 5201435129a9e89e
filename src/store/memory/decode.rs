//! Reads a stored object back into a [`Value`], building every array and map at its final size.
//! serde_json's own reader grows them entry by entry; for objects of a few KiB the reallocations
//! (and the allocator work they cause) cost more than the parsing itself.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses one JSON document; the same result as `serde_json::from_slice::<Value>`.
pub(super) fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            let value = read(bytes, &mut scratch);
            scratch.trim();
            value
        }
        Err(_) => read(bytes, &mut Scratch::default()),
    })
}

fn read(bytes: &[u8], scratch: &mut Scratch) -> serde_json::Result<Value> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = Seed(scratch).deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

thread_local! {
    /// Kept between reads, so the buffers stop growing after the first few objects.
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Entries a buffer may keep room for between reads.
const SCRATCH_KEPT: usize = 1024;

/// Buffers the entries of the arrays and maps being read, one per nesting level.
#[derive(Default)]
struct Scratch {
    maps: Vec<Vec<(String, Value)>>,
    arrays: Vec<Vec<Value>>,
}

impl Scratch {
    /// Frees buffers a very large document left behind.
    fn trim(&mut self) {
        self.maps.retain(|m| m.capacity() <= SCRATCH_KEPT);
        self.arrays.retain(|a| a.capacity() <= SCRATCH_KEPT);
    }
}

struct Seed<'s>(&'s mut Scratch);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = self.0.arrays.pop().unwrap_or_default();
        let read = (|| {
            while let Some(item) = seq.next_element_seed(Seed(&mut *self.0))? {
                items.push(item);
            }
            Ok(())
        })();
        let mut array = Vec::with_capacity(items.len());
        array.append(&mut items);
        self.0.arrays.push(items);
        read.map(|()| Value::Array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = self.0.maps.pop().unwrap_or_default();
        let read = (|| {
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value_seed(Seed(&mut *self.0))?;
                entries.push((key, value));
            }
            Ok(())
        })();
        let object: Map<String, Value> = entries.drain(..).collect();
        self.0.maps.push(entries);
        read.map(|()| Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let documents = [
            json!(null),
            json!(true),
            json!("text \"quoted\" \\ ünï 🚀"),
            json!(-7),
            json!(u64::MAX),
            json!(1.5e300),
            json!([]),
            json!({}),
            json!({ "z": 1, "a": [1, { "b": null, "a": [[], {}] }], "m": { "k": "v" } }),
        ];
        for document in documents {
            let bytes = serde_json::to_vec(&document).expect("serialise");
            let read = from_slice(&bytes).expect("read");
            assert_eq!(read, document);
            let order = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
            assert_eq!(order(&read), order(&document), "key order kept");
        }
        let duplicated = from_slice(br#"{"a": 1, "b": 2, "a": 3}"#).expect("read");
        let reference: Value = serde_json::from_str(r#"{"a": 1, "b": 2, "a": 3}"#).expect("read");
        assert_eq!(duplicated, reference);
        assert!(from_slice(b"{\"a\": 1} trailing").is_err());
        assert!(from_slice(b"[1, 2").is_err());
    }
}
