//! Values (pure): the pruned object JSON, exactly what `etcdctl get` shows. The store's other
//! fields (metadata, typed columns) are derived from it again on read. Only an object whose fields
//! are not what its JSON yields (never the case for the pipeline's objects, but allowed by the
//! store contract) is wrapped as `{"@stowage": <every field>}` so it reads back exactly as written.

use serde_json::Value;

use crate::mirror::kind::KindSpec;
use crate::mirror::object::Processor;
use crate::store::MirrorObject;

/// The only field of a wrapped value.
const WRAPPED: &str = "@stowage";

/// Why a stored value cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("value is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("value is not an object of the kind: {0}")]
    Object(#[from] crate::mirror::object::ObjectError),
}

/// A kind's paths, parsed once, for encoding and decoding its values.
#[derive(Debug, Clone)]
pub struct Codec {
    processor: Processor,
}

impl Codec {
    pub fn new(kind: &KindSpec) -> Result<Self, crate::mirror::object::ObjectError> {
        Ok(Self {
            processor: Processor::new(kind)?,
        })
    }

    /// The value stored for `object`.
    pub fn encode(&self, object: &MirrorObject) -> Vec<u8> {
        let encoded = if self.processor.yields(object) {
            match object.object.text() {
                Some(text) => Ok(text.as_bytes().to_vec()),
                None => serde_json::to_vec(&object.object),
            }
        } else {
            serde_json::to_vec(&serde_json::json!({ WRAPPED: object }))
        };
        // Serialising a `Value` or a struct of plain maps and strings cannot fail.
        encoded.unwrap_or_default()
    }

    /// The object a stored value holds.
    pub fn decode(&self, value: &[u8]) -> Result<MirrorObject, DecodeError> {
        let mut json: Value = serde_json::from_slice(value)?;
        if let Some(map) = json.as_object_mut()
            && map.len() == 1
            && let Some(wrapped) = map.remove(WRAPPED)
        {
            return Ok(serde_json::from_value(wrapped)?);
        }
        Ok(self.processor.process(json)?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mirror::object::to_mirror_object;
    use crate::store::conformance::{sample_kind, sample_object};

    fn pod_like() -> Value {
        json!({
            "apiVersion": "conformance.stowage.dev/v1",
            "kind": "ConfCodec",
            "metadata": {
                "namespace": "ns", "name": "a", "uid": "u-1", "resourceVersion": "7",
                "labels": {"app": "web"}, "creationTimestamp": "2024-01-01T00:00:00Z"
            },
            "spec": {"replicas": 3},
            "status": {"phase": "Running", "ready": true}
        })
    }

    #[test]
    fn pipeline_objects_are_stored_as_their_json() {
        let kind = sample_kind("ConfCodec");
        let codec = Codec::new(&kind).expect("codec");
        let object = to_mirror_object(&kind, pod_like()).expect("object");
        let value = codec.encode(&object);
        let stored: Value = serde_json::from_slice(&value).expect("json");
        assert_eq!(
            stored, object.object,
            "the value is the pruned object itself"
        );
        assert_eq!(codec.decode(&value).expect("decode"), object, "read back");
    }

    #[test]
    fn objects_not_derivable_from_their_json_are_wrapped() {
        let kind = sample_kind("ConfCodec");
        let codec = Codec::new(&kind).expect("codec");
        let mut object = to_mirror_object(&kind, pod_like()).expect("object");
        object.columns.insert("phase".into(), json!("Elsewhere"));
        let value = codec.encode(&object);
        let stored: Value = serde_json::from_slice(&value).expect("json");
        assert!(stored.get(WRAPPED).is_some(), "wrapped: {stored}");
        assert_eq!(codec.decode(&value).expect("decode"), object);

        // Whatever processing would still change is wrapped too.
        let mut unpruned = to_mirror_object(&kind, pod_like()).expect("object");
        unpruned.object["metadata"]["managedFields"] = json!([]);
        let stored: Value = serde_json::from_slice(&codec.encode(&unpruned)).expect("json");
        assert!(
            stored.get(WRAPPED).is_some(),
            "managedFields kept: {stored}"
        );
        assert_eq!(
            codec.decode(&codec.encode(&unpruned)).expect("decode"),
            unpruned
        );

        let sample = sample_object("ns", "b", "1");
        assert_eq!(
            codec.decode(&codec.encode(&sample)).expect("decode"),
            sample
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let codec = Codec::new(&sample_kind("ConfCodec")).expect("codec");
        assert!(matches!(
            codec.decode(b"not json"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(codec.decode(b"[1]"), Err(DecodeError::Object(_))));
    }
}
