//! Kubernetes resource quantities as whole bytes: exact parsing (no floats) and formatting.
//!
//! Written here rather than taken from crates.io: `kube_quantity` 0.9 parses through `f64` and its
//! `to_bytes_u128` drops the fraction before scaling (`1.5Gi` becomes 1Gi, `500m` becomes None);
//! `k8s_quantity_parser` is i64-only and unmaintained since 2022. Storage sizes must be exact.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// The resource name of storage sizes in requests, capacities and allocated resources.
pub const STORAGE: &str = "storage";

/// Why a quantity string is not a byte count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity: write a size such as 10Gi")]
    Empty,
    #[error(
        "`{value}` is not a Kubernetes quantity ({reason}); write a size such as 10Gi, 500M or 1.5Ti"
    )]
    Invalid { value: String, reason: &'static str },
    #[error("`{value}` is negative; a size must be zero or more")]
    Negative { value: String },
    #[error("`{value}` is too large to count in bytes")]
    TooLarge { value: String },
}

/// Parses a quantity (`10Gi`, `500M`, `1.5Gi`, `1e3`, `100m`, `+2k`) into bytes; fractions of a
/// byte round up, as `Quantity.Value()` does in apimachinery.
pub fn parse_bytes(quantity: &Quantity) -> Result<u128, QuantityError> {
    parse_str(&quantity.0)
}

/// [`parse_bytes`] on a plain string.
pub fn parse_str(value: &str) -> Result<u128, QuantityError> {
    let invalid = |reason| QuantityError::Invalid {
        value: value.to_string(),
        reason,
    };
    let too_large = || QuantityError::TooLarge {
        value: value.to_string(),
    };
    if let Some(bytes) = parse_plain(value) {
        return Ok(bytes);
    }
    if value.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, rest) = match value.as_bytes()[0] {
        b'+' => (false, &value[1..]),
        b'-' => (true, &value[1..]),
        _ => (false, value),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(invalid("no digits"));
    }
    if fraction.contains('.') {
        return Err(invalid("more than one decimal point"));
    }
    // Trailing zeros of the fraction carry no value; dropping them keeps long inputs exact.
    let fraction = fraction.trim_end_matches('0');
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| too_large())?
    };
    // value = mantissa * numerator / denominator
    let mut numerator: u128 = 1;
    let mut denominator: u128 = 10u128
        .checked_pow(u32::try_from(fraction.len()).map_err(|_| too_large())?)
        .ok_or_else(too_large)?;
    match suffix {
        "" => {}
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 1,
                "Mi" => 2,
                "Gi" => 3,
                "Ti" => 4,
                "Pi" => 5,
                _ => 6,
            };
            numerator = 1024u128.pow(power);
        }
        "n" => {
            denominator = denominator
                .checked_mul(1_000_000_000)
                .ok_or_else(too_large)?
        }
        "u" => denominator = denominator.checked_mul(1_000_000).ok_or_else(too_large)?,
        "m" => denominator = denominator.checked_mul(1_000).ok_or_else(too_large)?,
        "k" => numerator = 1_000,
        "M" => numerator = 1_000_000,
        "G" => numerator = 1_000_000_000,
        "T" => numerator = 1_000_000_000_000,
        "P" => numerator = 1_000_000_000_000_000,
        "E" => numerator = 1_000_000_000_000_000_000,
        _ if suffix.starts_with(['e', 'E']) => {
            let exponent = &suffix[1..];
            let (exp_negative, exp_digits) = match exponent.as_bytes().first() {
                Some(b'+') => (false, &exponent[1..]),
                Some(b'-') => (true, &exponent[1..]),
                _ => (false, exponent),
            };
            if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("the exponent must be whole digits, as in 1e3"));
            }
            let power: u32 = exp_digits.parse().map_err(|_| too_large())?;
            let scale = 10u128.checked_pow(power).ok_or_else(too_large)?;
            if exp_negative {
                denominator = denominator.checked_mul(scale).ok_or_else(too_large)?;
            } else {
                numerator = scale;
            }
        }
        _ => {
            return Err(invalid(
                "unknown suffix; use Ki Mi Gi Ti Pi Ei, k M G T P E, m or an exponent",
            ));
        }
    }
    if negative && mantissa != 0 {
        return Err(QuantityError::Negative {
            value: value.to_string(),
        });
    }
    let scaled = mantissa.checked_mul(numerator).ok_or_else(too_large)?;
    Ok(scaled.div_ceil(denominator))
}

/// The usual form, whole digits and an optional unit (`1Gi`, `500M`, `1073741824`), parsed
/// without allocating: a binder decision reads the capacity of every candidate volume. Anything
/// else, and overflow, is left to the general parser (`None`).
fn parse_plain(value: &str) -> Option<u128> {
    let end = value
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    // 30 digits stay below u128::MAX (about 3.4e38).
    if end == 0 || end > 30 {
        return None;
    }
    let (digits, suffix) = value.split_at(end);
    let unit: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        _ => return None,
    };
    let mantissa = digits
        .bytes()
        .fold(0u128, |n, b| n * 10 + u128::from(b - b'0'));
    mantissa.checked_mul(unit)
}

/// Formats bytes as a quantity: the largest binary suffix that divides exactly, else plain bytes.
pub fn format_bytes(bytes: u128) -> Quantity {
    const SUFFIXES: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    if bytes != 0 {
        for (i, suffix) in SUFFIXES.iter().enumerate() {
            let unit = 1024u128.pow(6 - i as u32);
            if bytes.is_multiple_of(unit) {
                return Quantity(format!("{}{suffix}", bytes / unit));
            }
        }
    }
    Quantity(bytes.to_string())
}

/// Storage size in a resource map, `None` when absent or not a valid quantity.
pub fn storage_in(map: Option<&BTreeMap<String, Quantity>>) -> Option<u128> {
    map?.get(STORAGE).and_then(|q| parse_bytes(q).ok())
}

/// The claim's `spec.resources.requests.storage`.
pub fn claim_request(claim: &PersistentVolumeClaim) -> Option<u128> {
    let resources = claim.spec.as_ref()?.resources.as_ref()?;
    storage_in(resources.requests.as_ref())
}

/// The claim's `status.capacity.storage` (what it actually has).
pub fn claim_capacity(claim: &PersistentVolumeClaim) -> Option<u128> {
    storage_in(claim.status.as_ref()?.capacity.as_ref())
}

/// The volume's `spec.capacity.storage`.
pub fn volume_capacity(volume: &PersistentVolume) -> Option<u128> {
    storage_in(volume.spec.as_ref()?.capacity.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
        VolumeResourceRequirements,
    };

    const KI: u128 = 1024;
    const MI: u128 = KI * 1024;
    const GI: u128 = MI * 1024;

    #[test]
    fn parses_every_form_exactly() {
        let cases: &[(&str, u128)] = &[
            ("0", 0),
            ("1", 1),
            ("+5", 5),
            ("-0", 0),
            ("1Ki", KI),
            ("1Mi", MI),
            ("10Gi", 10 * GI),
            ("1Ti", GI * 1024),
            ("1Pi", GI * 1024 * 1024),
            ("1Ei", GI * 1024 * 1024 * 1024),
            ("1k", 1_000),
            ("500M", 500_000_000),
            ("2G", 2_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1.5Gi", GI + GI / 2),
            ("0.5Ki", 512),
            (".5Ki", 512),
            ("5.Ki", 5 * KI),
            ("1.100000000000000000000000000000000000000000Ki", 1127), // 1126.4 rounds up
            ("1e3", 1_000),
            ("1E3", 1_000),
            ("1e+3", 1_000),
            ("2.5e2", 250),
            ("1e-3", 1), // a thousandth of a byte rounds up to one
            ("1500e-3", 2),
            ("100m", 1),
            ("1000m", 1),
            ("1001m", 2),
            ("0m", 0),
            ("1u", 1),
            ("1n", 1),
            ("0001Gi", GI),
            (
                "123456789012345678901234567890",
                123_456_789_012_345_678_901_234_567_890,
            ),
            ("340282366920938463463374607431768211455", u128::MAX),
            ("100000000000000000000E", 10u128.pow(38)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_str(input), Ok(*want), "parse {input}");
        }
    }

    #[test]
    fn the_plain_form_and_the_general_parser_agree_at_the_edges() {
        // 30 digits times the largest unit overflows: the general parser reports it.
        let big = format!("{}E", "9".repeat(30));
        assert_eq!(parse_plain(&big), None);
        assert_eq!(
            parse_str(&big),
            Err(QuantityError::TooLarge { value: big.clone() })
        );
        assert_eq!(parse_plain("1.5Gi"), None);
        assert_eq!(parse_plain("-1"), None);
        assert_eq!(parse_plain(""), None);
        assert_eq!(parse_plain("1Gi"), Some(GI));
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        let cases: &[(&str, QuantityError)] = &[
            ("", QuantityError::Empty),
            (
                "Gi",
                QuantityError::Invalid {
                    value: "Gi".into(),
                    reason: "no digits",
                },
            ),
            (
                "1.2.3Gi",
                QuantityError::Invalid {
                    value: "1.2.3Gi".into(),
                    reason: "more than one decimal point",
                },
            ),
            (
                "1GB",
                QuantityError::Invalid {
                    value: "1GB".into(),
                    reason: "unknown suffix; use Ki Mi Gi Ti Pi Ei, k M G T P E, m or an exponent",
                },
            ),
            (
                "1 Gi",
                QuantityError::Invalid {
                    value: "1 Gi".into(),
                    reason: "unknown suffix; use Ki Mi Gi Ti Pi Ei, k M G T P E, m or an exponent",
                },
            ),
            (
                "1e",
                QuantityError::Invalid {
                    value: "1e".into(),
                    reason: "the exponent must be whole digits, as in 1e3",
                },
            ),
            (
                "1e1.5",
                QuantityError::Invalid {
                    value: "1e1.5".into(),
                    reason: "the exponent must be whole digits, as in 1e3",
                },
            ),
            (
                "-1Gi",
                QuantityError::Negative {
                    value: "-1Gi".into(),
                },
            ),
            (
                "1e39",
                QuantityError::TooLarge {
                    value: "1e39".into(),
                },
            ),
            (
                "999999999999999999999999999999999999999999",
                QuantityError::TooLarge {
                    value: "999999999999999999999999999999999999999999".into(),
                },
            ),
            (
                "340282366920938463463374607431768211455Ki",
                QuantityError::TooLarge {
                    value: "340282366920938463463374607431768211455Ki".into(),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_str(input).as_ref(), Err(want), "parse {input:?}");
        }
        assert_eq!(
            parse_str("-1Gi").map_err(|e| e.to_string()),
            Err("`-1Gi` is negative; a size must be zero or more".to_string())
        );
    }

    #[test]
    fn formats_with_the_largest_exact_binary_suffix() {
        let cases: &[(u128, &str)] = &[
            (0, "0"),
            (1, "1"),
            (1000, "1000"),
            (KI, "1Ki"),
            (1536, "1536"),
            (3 * KI, "3Ki"),
            (MI + KI, "1025Ki"),
            (GI, "1Gi"),
            (10 * GI, "10Gi"),
            (GI + GI / 2, "1536Mi"),
            (GI * 1024, "1Ti"),
            (GI * 1024 * 1024 * 1024 * 3, "3Ei"),
            (1_000_000_000, "1000000000"),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                format_bytes(*bytes),
                Quantity(want.to_string()),
                "format {bytes}"
            );
            assert_eq!(
                parse_bytes(&format_bytes(*bytes)),
                Ok(*bytes),
                "round trip {bytes}"
            );
        }
    }

    fn map(value: &str) -> Option<BTreeMap<String, Quantity>> {
        Some(BTreeMap::from([(
            STORAGE.to_string(),
            Quantity(value.to_string()),
        )]))
    }

    #[test]
    fn reads_sizes_from_claims_and_volumes() {
        let claim = PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                resources: Some(VolumeResourceRequirements {
                    requests: map("2Gi"),
                    limits: None,
                }),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                capacity: map("1Gi"),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(claim_request(&claim), Some(2 * GI));
        assert_eq!(claim_capacity(&claim), Some(GI));
        assert_eq!(claim_request(&PersistentVolumeClaim::default()), None);
        assert_eq!(claim_capacity(&PersistentVolumeClaim::default()), None);

        let volume = PersistentVolume {
            spec: Some(PersistentVolumeSpec {
                capacity: map("5Gi"),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(volume_capacity(&volume), Some(5 * GI));
        assert_eq!(volume_capacity(&PersistentVolume::default()), None);
        let broken = PersistentVolume {
            spec: Some(PersistentVolumeSpec {
                capacity: map("lots"),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(volume_capacity(&broken), None);
    }
}
