//! What a publish is answered with: one JSON document of a fixed size, success or
//! error, sent as is to plain-JSON clients and sealed to sealed ones.

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::{Map, Value, json};

use crate::error::AppError;

/// Size of every publish answer, success or error, in bytes.
pub const RESPONSE_LEN: usize = 512;

/// The answer to a publish that stored (or, for chaff, would have stored) `inserted` keys.
pub fn accepted(inserted: usize) -> Value {
    json!({"insertedExposures": inserted})
}

/// The answer to a refused publish.
pub fn refused(error: &AppError) -> Value {
    let body = error.body();
    let mut value = json!({"error": body.error, "message": body.message});
    if let Some(seconds) = error.retry_after_seconds() {
        value["retryAfter"] = json!(seconds);
    }
    value
}

/// `value` (an object) with a `padding` member that makes it exactly [`RESPONSE_LEN`]
/// bytes of JSON; a long `message` is cut to fit.
pub fn padded(value: Value) -> String {
    let mut object = match value {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    object.insert("padding".into(), Value::String(String::new()));
    let mut unpadded = Value::Object(object.clone()).to_string().len();
    // A message quoting a long client input must not make this answer longer.
    while unpadded > RESPONSE_LEN {
        let Some(Value::String(message)) = object.get_mut("message") else {
            break;
        };
        let mut cut = message.len() / 2;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        unpadded = Value::Object(object.clone()).to_string().len();
    }
    let filler: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(RESPONSE_LEN.saturating_sub(unpadded))
        .map(char::from)
        .collect();
    object.insert("padding".into(), Value::String(filler));
    Value::Object(object).to_string()
}

/// `value` with the HTTP status it stands for, for answers sealed inside a 200.
pub fn with_status(mut value: Value, status: u16) -> Value {
    value["status"] = json!(status);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_answers_have_one_size() {
        for value in [
            accepted(1),
            with_status(accepted(30), 200),
            json!({"error": "invalid_key", "message": "x".repeat(300)}),
            json!({"error": "invalid_json", "message": "\u{1}é".repeat(900)}),
            refused(&AppError::TooManyGuesses {
                retry_after_seconds: 86_399,
            }),
        ] {
            let text = padded(value);
            assert_eq!(text.len(), RESPONSE_LEN, "{text}");
            let parsed: Value = serde_json::from_str(&text).unwrap();
            assert!(parsed["padding"].is_string());
        }
        let parsed: Value = serde_json::from_str(&padded(refused(&AppError::StorageFull))).unwrap();
        assert_eq!(parsed["error"], "storage_full");
        assert_eq!(parsed["retryAfter"], 60);
    }
}
