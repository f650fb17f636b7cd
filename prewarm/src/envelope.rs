//! Turning a function's JSON result into an HTTP response (the AWS Lambda convention).
//!
//! A result that is an object with an integer `statusCode` is an envelope: `statusCode`, optional
//! `headers` (string values), optional `multiValueHeaders` (lists of strings: API Gateway REST's,
//! and how the adapters of other platforms' shapes pass repeated headers), optional `cookies`
//! (each a `Set-Cookie` value: payload format 2.0's), optional `body` (a string is sent as is,
//! anything else as JSON), and optional `isBase64Encoded`. Any other result is sent as a 200 JSON
//! body.

use serde_json::Value;

/// An HTTP response built from a function's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why an envelope could not be turned into a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("statusCode {0} is not a final HTTP status (200 to 599): a 1xx cannot end a call")]
    BadStatus(i64),
    #[error("header {0:?} must have a string value")]
    BadHeader(String),
    #[error("body is marked isBase64Encoded but is not valid base64")]
    BadBase64,
}

const JSON: &str = "application/json";

impl HttpReply {
    pub fn from_result(result: &Value) -> Result<HttpReply, EnvelopeError> {
        let Some(envelope) = result.as_object().filter(|object| object.get("statusCode").is_some_and(Value::is_i64))
        else {
            return Ok(HttpReply {
                status: 200,
                headers: vec![("content-type".into(), JSON.into())],
                body: serde_json::to_vec(result).expect("JSON values always serialize"),
            });
        };
        let code = envelope["statusCode"].as_i64().expect("checked above");
        let status = u16::try_from(code)
            .ok()
            .filter(|status| (200..=599).contains(status))
            .ok_or(EnvelopeError::BadStatus(code))?;
        let mut headers: Vec<(String, String)> = Vec::new();
        // A name in `multiValueHeaders` wins over the same name in `headers`, as in API Gateway.
        let mut listed = std::collections::HashSet::new();
        if let Some(Value::Object(map)) = envelope.get("multiValueHeaders") {
            for (name, values) in map {
                let name = name.to_ascii_lowercase();
                let values = match values {
                    Value::Array(values) => values.iter().collect(),
                    single => vec![single],
                };
                for value in values {
                    headers.push((name.clone(), header_text(&name, value)?));
                }
                listed.insert(name);
            }
        }
        if let Some(Value::Object(map)) = envelope.get("headers") {
            for (name, value) in map {
                let name = name.to_ascii_lowercase();
                if !listed.contains(&name) {
                    let value = header_text(&name, value)?;
                    headers.push((name, value));
                }
            }
        }
        if let Some(Value::Array(cookies)) = envelope.get("cookies") {
            for cookie in cookies {
                headers.push(("set-cookie".into(), header_text("cookies", cookie)?));
            }
        }
        let base64 = envelope.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
        let (body, default_type) = match envelope.get("body") {
            None | Some(Value::Null) => (Vec::new(), None),
            Some(Value::String(text)) if base64 => (base64_decode(text).ok_or(EnvelopeError::BadBase64)?, None),
            // `JSON.stringify(…)` / `json.dumps(…)` bodies, as Lambda samples write them, are JSON
            // (what API Gateway's HTTP APIs and function URLs default to); other text is plain.
            Some(Value::String(text)) if is_json_document(text) => (text.as_bytes().to_vec(), Some(JSON)),
            Some(Value::String(text)) => (text.as_bytes().to_vec(), Some("text/plain; charset=utf-8")),
            Some(other) => (serde_json::to_vec(other).expect("JSON values always serialize"), Some(JSON)),
        };
        if let Some(content_type) = default_type {
            if !headers.iter().any(|(name, _)| name == "content-type") {
                headers.push(("content-type".into(), content_type.into()));
            }
        }
        Ok(HttpReply { status, headers, body })
    }
}

/// A header's value as text: a string, or a number or boolean written out.
fn header_text(name: &str, value: &Value) -> Result<String, EnvelopeError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(EnvelopeError::BadHeader(name.to_string())),
    }
}

/// A JSON object or array (a bare string or number in a body is more likely text).
fn is_json_document(text: &str) -> bool {
    let trimmed = text.trim_start();
    (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value_of = |byte: u8| -> Option<u32> {
        Some(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let symbols: Vec<u8> = text.bytes().filter(|byte| !byte.is_ascii_whitespace()).collect();
    let unpadded = symbols.iter().rposition(|&byte| byte != b'=').map_or(0, |last| last + 1);
    if symbols.len() - unpadded > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded * 3 / 4);
    for chunk in symbols[..unpadded].chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut accumulated = 0u32;
        for (index, &byte) in chunk.iter().enumerate() {
            accumulated |= value_of(byte)? << (18 - 6 * index);
        }
        out.extend_from_slice(&accumulated.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_results_are_200_json() {
        let reply = HttpReply::from_result(&json!({"message": "hi"})).unwrap();
        assert_eq!((reply.status, reply.body.as_slice()), (200, br#"{"message":"hi"}"#.as_slice()));
        assert_eq!(reply.headers, vec![("content-type".to_string(), JSON.to_string())]);
    }

    #[test]
    fn envelopes_set_status_headers_and_body() {
        let reply = HttpReply::from_result(&json!({
            "statusCode": 201, "headers": {"X-Thing": "a", "Content-Type": "text/csv"}, "body": "a,b"
        }))
        .unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.body, b"a,b");
        assert!(reply.headers.contains(&("content-type".into(), "text/csv".into())));
        assert!(reply.headers.contains(&("x-thing".into(), "a".into())));
        // A string body that is a JSON document, with no content type of its own, is JSON.
        let stringified = HttpReply::from_result(&json!({"statusCode": 200, "body": "{\"message\": \"hi\"}"})).unwrap();
        assert!(stringified.headers.contains(&("content-type".into(), JSON.into())));
        for text in ["hello", "{not json", "42", "\"quoted\""] {
            let reply = HttpReply::from_result(&json!({"statusCode": 200, "body": text})).unwrap();
            assert!(reply.headers.contains(&("content-type".into(), "text/plain; charset=utf-8".into())), "{text}");
        }
        let object_body = HttpReply::from_result(&json!({"statusCode": 404, "body": {"error": "nope"}})).unwrap();
        assert_eq!((object_body.status, object_body.body.as_slice()), (404, br#"{"error":"nope"}"#.as_slice()));
    }

    #[test]
    fn repeated_headers_and_cookies_each_become_a_header() {
        let reply = HttpReply::from_result(&json!({
            "statusCode": 200,
            "headers": {"X-One": "a", "Set-Cookie": "ignored=1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Many": ["x", "y"]},
            "cookies": ["c=3; Path=/"],
            "body": "ok"
        }))
        .unwrap();
        let cookies: Vec<_> =
            reply.headers.iter().filter(|(name, _)| name == "set-cookie").map(|(_, value)| value.as_str()).collect();
        assert_eq!(cookies, ["a=1", "b=2", "c=3; Path=/"]);
        let many: Vec<_> =
            reply.headers.iter().filter(|(name, _)| name == "x-many").map(|(_, value)| value.as_str()).collect();
        assert_eq!(many, ["x", "y"]);
        assert!(reply.headers.contains(&("x-one".into(), "a".into())));
        assert_eq!(
            HttpReply::from_result(&json!({"statusCode": 200, "multiValueHeaders": {"x": [{}]}})),
            Err(EnvelopeError::BadHeader("x".into()))
        );
    }

    #[test]
    fn base64_bodies_are_decoded() {
        let reply =
            HttpReply::from_result(&json!({"statusCode": 200, "body": "/wBB", "isBase64Encoded": true})).unwrap();
        assert_eq!(reply.body, vec![0xff, 0x00, 0x41]);
        assert_eq!(base64_decode("Zm9vYmE="), Some(b"fooba".to_vec()));
        assert_eq!(base64_decode("Zg"), Some(b"f".to_vec()));
    }

    #[test]
    fn bad_envelopes_say_what_is_wrong() {
        assert_eq!(HttpReply::from_result(&json!({"statusCode": 99})), Err(EnvelopeError::BadStatus(99)));
        assert_eq!(HttpReply::from_result(&json!({"statusCode": 101})), Err(EnvelopeError::BadStatus(101)));
        assert_eq!(
            HttpReply::from_result(&json!({"statusCode": 200, "headers": {"x": [1]}})),
            Err(EnvelopeError::BadHeader("x".into()))
        );
        assert_eq!(
            HttpReply::from_result(&json!({"statusCode": 200, "body": "***", "isBase64Encoded": true})),
            Err(EnvelopeError::BadBase64)
        );
        // A float statusCode is not an envelope: the object is the result.
        assert_eq!(HttpReply::from_result(&json!({"statusCode": 2.5})).unwrap().status, 200);
    }
}
