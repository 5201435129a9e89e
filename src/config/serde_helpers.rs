//! Serde adapters for configuration values: human-readable durations and scalar-tolerant strings.

use std::fmt;
use std::net::SocketAddr;

use serde::de::{self, Visitor};

/// Accepts a string or any scalar (`3306`, `true`) as a string.
///
/// Environment variables are parsed into typed values before deserialization, so
/// `STOWAGE_STORAGE__MYSQL__PASSWORD=12345` would otherwise be rejected as "not a string".
pub fn lenient_string<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(LenientString)
}

struct LenientString;

impl Visitor<'_> for LenientString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A TCP port: an integer from 1 to 65535.
pub fn port<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let value = <u64 as serde::Deserialize>::deserialize(deserializer)?;
    u16::try_from(value)
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| {
            de::Error::custom(format_args!("must be between 1 and 65535, found {value}"))
        })
}

/// A socket address such as `0.0.0.0:8080`, with a message that shows the expected form.
pub fn socket_addr<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = lenient_string(deserializer)?;
    text.trim().parse().map_err(|_| {
        de::Error::custom(format_args!(
            "invalid address {text:?}; expected IP:PORT such as \"0.0.0.0:8080\" or \"127.0.0.1:8080\""
        ))
    })
}

/// Durations written the way people write them: `5s`, `500ms`, `1m 30s`.
pub mod duration {
    use std::fmt;
    use std::time::Duration;

    use humantime_serde::re::humantime;
    use serde::de::{self, Visitor};

    pub const EXPECTED: &str = "a duration such as \"5s\", \"500ms\" or \"1m30s\"";

    pub fn serialize<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: de::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            humantime::parse_duration(v.trim()).map_err(|err| {
                E::custom(format_args!(
                    "invalid duration {v:?} ({err}); use {EXPECTED}"
                ))
            })
        }
    }
}

/// An optional duration: `null` (or absent, with `#[serde(default)]`) is `None`.
pub mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, de};

    pub fn serialize<S: serde::Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::duration::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: de::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::duration")] Duration);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(value)| value))
    }
}
