//! The worker protocol: length-prefixed JSON frames on two pipes that belong to the protocol alone.
//!
//! `PROTOCOL.md` beside `Cargo.toml` is the normative description; this module is its Rust side.
//! A frame is a 4-byte big-endian payload length followed by that many bytes of UTF-8 JSON.
//! Requests travel on the worker's fd 3, replies on its fd 4; the worker's stdout and stderr are
//! log pipes, so nothing a function prints can be mistaken for a frame.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file descriptor on which a worker reads request frames.
pub const REQUEST_FD: i32 = 3;
/// The file descriptor on which a worker writes reply frames.
pub const RESPONSE_FD: i32 = 4;
/// Length of the frame header.
pub const FRAME_HEADER_BYTES: usize = 4;

/// The HTTP event a function is invoked with, as the gateway received it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvocationEvent {
    pub method: String,
    /// The path below the function's URL, always starting with `/`.
    pub path: String,
    /// Query parameters; a repeated key keeps its last value (the seed's `HTTP_QUERY` shape).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Request headers with lower-case names; repeated headers are joined with `, `.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body as text; `None` for an empty body.
    #[serde(default)]
    pub body: Option<String>,
    /// True when `body` holds base64 because the raw body was not valid UTF-8.
    #[serde(default)]
    pub body_is_base64: bool,
    /// The query string as sent, still percent-encoded (`a=1&a=2`): other platforms' conventions
    /// keep repeated keys (`multiValueQueryStringParameters`, `rawQueryString`, `QUERY_STRING`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub raw_query: String,
    /// The request headers as sent: names in their original case, one pair per occurrence, in
    /// order. Only a worker whose shape needs them gets them (see `shape::Shape::wants_header_list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_list: Vec<(String, String)>,
    /// The caller's address, as the front door saw it (`requestContext.http.sourceIp`, `REMOTE_ADDR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

impl InvocationEvent {
    /// Builds the text form of a raw body: UTF-8 as is, anything else as base64.
    pub fn with_raw_body(mut self, raw: &[u8]) -> Self {
        if raw.is_empty() {
            self.body = None;
            self.body_is_base64 = false;
        } else if let Ok(text) = std::str::from_utf8(raw) {
            self.body = Some(text.to_owned());
            self.body_is_base64 = false;
        } else {
            self.body = Some(base64_encode(raw));
            self.body_is_base64 = true;
        }
        self
    }
}

/// A request frame, platform to worker.
#[derive(Debug, Serialize)]
pub struct RequestFrame<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub deadline_ms: u64,
    pub event: FrameEvent<'a>,
}

/// The event as a frame carries it: with `header_list` only for a worker that reads it.
#[derive(Debug)]
pub struct FrameEvent<'a> {
    pub event: &'a InvocationEvent,
    pub with_header_list: bool,
}

impl Serialize for FrameEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let event = self.event;
        let mut fields = serializer.serialize_struct("InvocationEvent", 9)?;
        fields.serialize_field("method", &event.method)?;
        fields.serialize_field("path", &event.path)?;
        fields.serialize_field("query", &event.query)?;
        fields.serialize_field("headers", &event.headers)?;
        fields.serialize_field("body", &event.body)?;
        fields.serialize_field("body_is_base64", &event.body_is_base64)?;
        if !event.raw_query.is_empty() {
            fields.serialize_field("raw_query", &event.raw_query)?;
        }
        if self.with_header_list && !event.header_list.is_empty() {
            fields.serialize_field("header_list", &event.header_list)?;
        }
        if let Some(source_ip) = &event.source_ip {
            fields.serialize_field("source_ip", source_ip)?;
        }
        fields.end()
    }
}

/// An error raised by the function (or by the adapter on its behalf), as the adapter reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionError {
    /// The runtime's error class, for example `TypeError`, `ValueError`, `FormatException`.
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// `out_of_memory` when the runtime itself ran out of memory; the pool turns that into the
    /// memory-limit outcome and recycles the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A frame written by a worker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerFrame {
    /// The function is loaded and the worker waits for requests.
    Ready {
        #[serde(default)]
        runtime: String,
        /// What the adapter found to call, in words (`module.exports, a function`).
        #[serde(default)]
        handler: Option<String>,
        /// The calling convention it serves (`lambda`, `node-http`…; see `shape`), and why when
        /// it detected it rather than being told.
        #[serde(default)]
        shape: Option<String>,
        #[serde(default)]
        shape_reason: Option<String>,
    },
    /// The function could not be loaded (syntax error, import failure, a named function missing).
    LoadError { error: FunctionError },
    /// The module loaded, but holds nothing callable under the entry's function name: it is a
    /// script whose top level does the work. `message` says what it does export.
    NoHandler {
        #[serde(default)]
        message: String,
    },
    /// The reply to the request with this id.
    Response {
        id: String,
        ok: bool,
        #[serde(default)]
        result: serde_json::Value,
        #[serde(default)]
        error: Option<FunctionError>,
    },
}

/// Prepends the frame header to a serialized payload.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(payload);
    framed
}

/// Serializes and frames a request; the headers as sent travel only `with_header_list`.
pub fn encode_request(id: &str, deadline_ms: u64, event: &InvocationEvent, with_header_list: bool) -> Vec<u8> {
    let frame = RequestFrame { kind: "invoke", id, deadline_ms, event: FrameEvent { event, with_header_list } };
    // Serializing a struct of strings and maps cannot fail.
    let payload = serde_json::to_vec(&frame).expect("request frames always serialize");
    encode_frame(&payload)
}

/// Incremental, cancel-safe frame decoder: feed it whatever bytes arrived, ask it for frames.
///
/// A frame longer than `max_frame_bytes` is not buffered: its payload is counted and discarded,
/// and `next_frame` reports [`DecodedFrame::TooLarge`] once it has been skipped entirely, so a
/// worker that answers with a gigabyte costs us a fixed amount of memory.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    max_frame_bytes: usize,
    skipping: Option<SkipState>,
}

#[derive(Debug)]
struct SkipState {
    declared: usize,
    remaining: usize,
}

/// What the decoder produced.
#[derive(Debug, PartialEq)]
pub enum DecodedFrame {
    Frame(Vec<u8>),
    /// A frame whose declared length exceeded the cap; its bytes were discarded.
    TooLarge {
        declared_bytes: usize,
    },
}

/// The most buffer a decoder keeps between frames.
const RETAINED_BUFFER_BYTES: usize = 64 << 10;

impl FrameDecoder {
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { buffer: Vec::with_capacity(8 * 1024), max_frame_bytes, skipping: None }
    }

    /// Appends received bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if let Some(skip) = &mut self.skipping {
            let consumed = skip.remaining.min(bytes.len());
            skip.remaining -= consumed;
            bytes = &bytes[consumed..];
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Returns the next complete frame, if one has arrived.
    pub fn next_frame(&mut self) -> Option<DecodedFrame> {
        if let Some(skip) = &self.skipping {
            if skip.remaining > 0 {
                return None;
            }
            let declared_bytes = skip.declared;
            self.skipping = None;
            return Some(DecodedFrame::TooLarge { declared_bytes });
        }
        if self.buffer.len() < FRAME_HEADER_BYTES {
            return None;
        }
        let declared = u32::from_be_bytes(self.buffer[..4].try_into().expect("4 bytes")) as usize;
        if declared > self.max_frame_bytes {
            let available = self.buffer.len() - FRAME_HEADER_BYTES;
            let consumed = available.min(declared);
            self.buffer.drain(..FRAME_HEADER_BYTES + consumed);
            self.skipping = Some(SkipState { declared, remaining: declared - consumed });
            return self.next_frame();
        }
        if self.buffer.len() < FRAME_HEADER_BYTES + declared {
            return None;
        }
        let payload = self.buffer[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + declared].to_vec();
        self.buffer.drain(..FRAME_HEADER_BYTES + declared);
        // One big reply must not keep megabytes per idle worker for the rest of its life.
        if self.buffer.capacity() > RETAINED_BUFFER_BYTES {
            self.buffer.shrink_to(RETAINED_BUFFER_BYTES.max(self.buffer.len()));
        }
        Some(DecodedFrame::Frame(payload))
    }

    /// True when bytes of an unfinished frame are buffered.
    pub fn has_partial_frame(&self) -> bool {
        !self.buffer.is_empty() || self.skipping.is_some()
    }
}

const BASE64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding; bodies that are not UTF-8 are rare, so a small encoder beats a dependency.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let triple = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (index, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if index <= chunk.len() {
                out.push(BASE64_ALPHABET[((triple >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_reassembles_frames_split_at_every_byte() {
        let mut stream = encode_frame(br#"{"type":"ready"}"#);
        stream.extend(encode_frame(br#"{"a":1}"#));
        let mut decoder = FrameDecoder::new(1024);
        let mut frames = Vec::new();
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![DecodedFrame::Frame(br#"{"type":"ready"}"#.to_vec()), DecodedFrame::Frame(br#"{"a":1}"#.to_vec())]
        );
        assert!(!decoder.has_partial_frame());
    }

    #[test]
    fn oversized_frame_is_skipped_without_buffering_and_the_next_one_still_decodes() {
        let big = vec![b'x'; 10_000];
        let mut stream = encode_frame(&big);
        stream.extend(encode_frame(b"{}"));
        let mut decoder = FrameDecoder::new(100);
        let mut frames = Vec::new();
        for chunk in stream.chunks(333) {
            decoder.push(chunk);
            assert!(decoder.buffer.len() < 400, "decoder buffered {} bytes", decoder.buffer.len());
            while let Some(frame) = decoder.next_frame() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![DecodedFrame::TooLarge { declared_bytes: 10_000 }, DecodedFrame::Frame(b"{}".to_vec())]
        );
    }

    #[test]
    fn worker_frames_parse_from_the_documented_json() {
        let ready: WorkerFrame = serde_json::from_str(r#"{"type":"ready","runtime":"node"}"#).unwrap();
        assert_eq!(
            ready,
            WorkerFrame::Ready { runtime: "node".into(), handler: None, shape: None, shape_reason: None }
        );
        let failed: WorkerFrame = serde_json::from_str(
            r#"{"type":"response","id":"7","ok":false,"error":{"type":"TypeError","message":"boom"}}"#,
        )
        .unwrap();
        match failed {
            WorkerFrame::Response { id, ok, error: Some(error), .. } => {
                assert_eq!((id.as_str(), ok, error.error_type.as_str()), ("7", false, "TypeError"))
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn non_utf8_bodies_travel_as_base64() {
        let event = InvocationEvent::default().with_raw_body(&[0xff, 0x00, 0x41]);
        assert_eq!(event.body.as_deref(), Some("/wBB"));
        assert!(event.body_is_base64);
        let event = InvocationEvent::default().with_raw_body(b"{\"a\":1}");
        assert_eq!(event.body.as_deref(), Some("{\"a\":1}"));
        assert!(!event.body_is_base64);
    }
}
