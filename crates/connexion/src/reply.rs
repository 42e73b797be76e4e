//! Reply framing: free text terminated by one NUL.

use crate::error::ProtocolError;

/// Default limit on the bytes of one reply held by [`ReplyParser`].
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Frames a reply: the text's bytes, then one NUL.
///
/// NUL characters inside `text` are removed, because the client would take the first one
/// as the end of the reply and read the rest as a second, unexpected reply.
pub fn encode_reply(text: &str) -> Vec<u8> {
    let mut out: Vec<u8> = text.bytes().filter(|&byte| byte != 0).collect();
    out.push(0);
    out
}

/// Client-side reader of replies: accumulates bytes until a NUL and returns the text.
///
/// Bytes after the NUL stay buffered and start the next reply.
#[derive(Debug, Clone)]
pub struct ReplyParser {
    buf: Vec<u8>,
    max_bytes: usize,
}

impl Default for ReplyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyParser {
    /// A reader with the default limit, [`MAX_REPLY_BYTES`].
    pub fn new() -> Self {
        Self::with_max_bytes(MAX_REPLY_BYTES)
    }

    /// A reader that refuses replies longer than `max_bytes` (not counting the NUL).
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        ReplyParser {
            buf: Vec::new(),
            max_bytes,
        }
    }

    /// Appends `bytes` and returns the first complete reply, if any, decoded lossily as UTF-8
    /// without its NUL.
    ///
    /// Returns `Err(ProtocolError::TooLarge)` when no NUL arrives within the limit; the
    /// buffer is then dropped.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<String>, ProtocolError> {
        self.buf.extend_from_slice(bytes);
        self.poll()
    }

    /// Returns the next complete reply already buffered, without new input.
    pub fn poll(&mut self) -> Result<Option<String>, ProtocolError> {
        match self.buf.iter().position(|&byte| byte == 0) {
            Some(end) if end <= self.max_bytes => {
                let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..=end);
                Ok(Some(text))
            }
            Some(_) => Err(self.too_large()),
            None if self.buf.len() > self.max_bytes => Err(self.too_large()),
            None => Ok(None),
        }
    }

    /// At end of stream: the text received without a terminating NUL, if any (some servers
    /// close instead of sending NUL).
    pub fn finish(self) -> Option<String> {
        if self.buf.is_empty() {
            None
        } else {
            Some(String::from_utf8_lossy(&self.buf).into_owned())
        }
    }

    fn too_large(&mut self) -> ProtocolError {
        let size = self.buf.len();
        self.buf = Vec::new();
        ProtocolError::TooLarge {
            size,
            max: self.max_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_is_text_plus_one_nul() {
        assert_eq!(encode_reply("Import ok\n"), b"Import ok\n\0");
        assert_eq!(encode_reply(""), b"\0");
        assert_eq!(encode_reply("a\0b\0"), b"ab\0");
    }

    #[test]
    fn reader_accumulates_until_nul() {
        let mut reader = ReplyParser::new();
        assert_eq!(reader.feed(b"Import").unwrap(), None);
        assert_eq!(
            reader.feed(b" ok\n\0Error: x\0").unwrap().as_deref(),
            Some("Import ok\n")
        );
        assert_eq!(reader.poll().unwrap().as_deref(), Some("Error: x"));
        assert_eq!(reader.poll().unwrap(), None);
        assert_eq!(reader.finish(), None);
    }

    #[test]
    fn reader_byte_at_a_time_round_trips() {
        let text = "Success.  Batch number 7 - biblio record number 42 added to Koha.\n\nhttp://x/";
        let mut reader = ReplyParser::new();
        let mut got = None;
        for byte in encode_reply(text) {
            if let Some(reply) = reader.feed(&[byte]).unwrap() {
                got = Some(reply);
            }
        }
        assert_eq!(got.as_deref(), Some(text));
    }

    #[test]
    fn reader_limit_and_finish() {
        let mut reader = ReplyParser::with_max_bytes(4);
        assert_eq!(reader.feed(b"abcd\0").unwrap().as_deref(), Some("abcd"));
        let error = reader.feed(b"abcde").unwrap_err();
        assert_eq!(error.code(), "too-large");
        let mut reader = ReplyParser::new();
        assert_eq!(reader.feed(b"Success\r").unwrap(), None);
        assert_eq!(reader.finish().as_deref(), Some("Success\r"));
    }
}
