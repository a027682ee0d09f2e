//! Payload codecs. Payloads are plain JSON by default, as the AWS wire and the conformance
//! suite require; [`Postcard`] is a compact binary codec for the self-hosted stores.

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Turns values into checkpoint payloads (text) and back.
///
/// A codec must be deterministic: replay compares nothing by payload, but the engine
/// round-trips every first-run value through the codec so first run and replay return
/// the same value.
pub trait Serdes<T>: Send + Sync {
    /// Encodes a value.
    fn serialize(&self, value: &T) -> Result<String, Error>;
    /// Decodes a payload.
    fn deserialize(&self, payload: &str) -> Result<T, Error>;
}

/// Plain JSON through `serde_json` (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + DeserializeOwned> Serdes<T> for Json {
    fn serialize(&self, value: &T) -> Result<String, Error> {
        serde_json::to_string(value).map_err(|e| Error::serdes(format!("cannot serialise value as JSON: {e}")))
    }

    fn deserialize(&self, payload: &str) -> Result<T, Error> {
        serde_json::from_str(payload).map_err(|e| {
            Error::serdes(format!(
                "cannot deserialise {} from the recorded JSON payload: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// postcard (compact binary), carried as standard base64 text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl<T: Serialize + DeserializeOwned> Serdes<T> for Postcard {
    fn serialize(&self, value: &T) -> Result<String, Error> {
        let bytes = postcard::to_stdvec(value)
            .map_err(|e| Error::serdes(format!("cannot serialise value as postcard: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    fn deserialize(&self, payload: &str) -> Result<T, Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|e| Error::serdes(format!("recorded postcard payload is not base64: {e}")))?;
        postcard::from_bytes(&bytes).map_err(|e| {
            Error::serdes(format!(
                "cannot deserialise {} from the recorded postcard payload: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A codec from two closures.
pub struct FnSerdes<S, D> {
    ser: S,
    de: D,
}

impl<S, D> FnSerdes<S, D> {
    /// A codec that encodes with `ser` and decodes with `de`.
    pub fn new(ser: S, de: D) -> Self {
        FnSerdes { ser, de }
    }
}

impl<T, S, D> Serdes<T> for FnSerdes<S, D>
where
    S: Fn(&T) -> Result<String, Error> + Send + Sync,
    D: Fn(&str) -> Result<T, Error> + Send + Sync,
{
    fn serialize(&self, value: &T) -> Result<String, Error> {
        (self.ser)(value)
    }

    fn deserialize(&self, payload: &str) -> Result<T, Error> {
        (self.de)(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Order {
        id: u32,
        items: Vec<String>,
    }

    #[test]
    fn json_and_postcard_round_trip() {
        let o = Order { id: 7, items: vec!["a".into(), "b".into()] };
        let j = Json.serialize(&o).unwrap();
        assert_eq!(j, r#"{"id":7,"items":["a","b"]}"#);
        assert_eq!(Serdes::<Order>::deserialize(&Json, &j).unwrap(), o);
        let p = Postcard.serialize(&o).unwrap();
        assert!(p.len() < j.len());
        assert_eq!(Serdes::<Order>::deserialize(&Postcard, &p).unwrap(), o);
    }

    #[test]
    fn wrong_types_are_serdes_errors() {
        let e = Serdes::<Order>::deserialize(&Json, "\"a string\"").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Serdes);
        assert!(e.message().unwrap().contains("Order"), "{e}");
        assert!(Serdes::<Order>::deserialize(&Postcard, "%%%").is_err());
    }
}
