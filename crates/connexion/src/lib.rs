//! Codec for the OCLC Connexion "Gateway Export" TCP protocol.
//!
//! The Connexion client (and WorldShare Record Manager) connects to the local system and
//! sends credential fields followed by one binary MARC record; the local system answers
//! with free text ended by one NUL. This crate turns bytes into requests and replies and
//! back. The socket, timeouts and the import itself belong to the server crate.
//!
//! Invariant: **pure**. No I/O, no async, no environment, no clock. Everything here works on
//! byte slices, so every behaviour is tested without sockets.
//!
//! # Grammar (client → server)
//!
//! ```text
//! request = *( SP / field ) record [ NUL ]
//! field   = ( "U" / "A" / "P" ) length value
//! length  = %x40-FF             ; one byte, len = L - 0x40 (0..191): the desktop client
//!         / "0"                 ; length 0, only this digit is read (browser's empty "P0")
//!         / %x31-39 *DIGIT      ; decimal, read greedily: the browser and Record Manager
//! record  = 5DIGIT *OCTET       ; ISO 2709, framed only by its 5-digit total length
//! SP      = %x20                ; skipped between items
//! NUL     = %x00                ; optional end of request
//! ```
//!
//! Lengths count bytes. `U` is a user id, `A` the local system logon ID and `P` its
//! password. A digit right after a tag is a length; a digit where an item starts begins the
//! record. The record is not validated beyond its length field (it need not end in `0x1D`);
//! MARC decoding is the job of `bibgate-marc`.
//!
//! # Main types
//!
//! - [`RequestParser`]: incremental parser; feed chunks of any size, get [`Parse`] events.
//!   [`Parse::NeedMore`] is a state, not an error.
//! - [`Request`]: the fields and the record. Its `Debug` redacts the password.
//! - [`encode_request`] with [`RequestRef`] and [`LengthEncoding`]: the client side.
//! - [`encode_reply`] and [`ReplyParser`]: reply framing on both sides.
//! - [`ProtocolError`] and [`EncodeError`], each variant with a stable `code()`.
//!
//! # Policies
//!
//! - **Reply as soon as the record is complete.** A real client sends no NUL and does not
//!   close while it waits for the reply, so [`Parse::Complete`] is returned the moment the
//!   record's declared length has arrived.
//! - **Fail fast on impossible input.** edge-connexion keeps waiting on bytes that can never
//!   parse (`_`, `U?abcde`, a record starting `-0005`) until its idle timeout closes the
//!   socket, and the cataloguer sees only a closed connection. Here such input yields
//!   [`Parse::Error`] as soon as it is certain, so the server can send a readable error reply
//!   well inside the client's timeout (Record Manager waits about 10 s). Certain means: a
//!   byte that cannot start an item, a length byte that is neither a digit nor `>= 0x40`,
//!   a non-digit among a record's first 5 bytes, a record length below 5, or an item larger
//!   than the limit.
//! - **Bounded memory.** No item may exceed the limit ([`MAX_REQUEST_BYTES`] by default,
//!   set with [`RequestParser::with_max_bytes`]). A declared length over the limit is
//!   [`ProtocolError::TooLarge`] at once and nothing is allocated for it. The parser holds at
//!   most the limit plus the chunk being fed, plus the current request's field values.
//! - **One record per request.** A completed record is returned alone.
//!   [`RequestParser::check_one_record`] reports input that arrived together with it, so
//!   the server can process the first record and add "one record expected" to its reply;
//!   polling again parses the extra input as the next request.
//! - **NUL.** A NUL before any record ends the request without one ([`Parse::Nul`]). A NUL
//!   after a record (with optional spaces) is that request's trailer and is swallowed. A NUL
//!   inside a field value or record is data: framing is by length only.
//! - **HTTP probe.** A request starting `GET ` and containing a blank line (`\n\n` or
//!   `\r\n\r\n`) within the limit is [`Parse::Http`]; answer [`http_ok_response`], which is
//!   byte-identical to edge-connexion's.
//! - **Secrets.** `Debug` of [`Request`], [`RequestRef`] and [`RequestParser`] prints the
//!   password's length only. Error messages never quote field values (at most one byte).
//!
//! # Example
//!
//! ```
//! use bibgate_connexion::{Parse, RequestParser, encode_reply};
//!
//! let mut parser = RequestParser::new();
//! assert_eq!(parser.feed(b"UEabcde ABfg PC"), Parse::NeedMore);
//! let Parse::Complete(request) = parser.feed(b"hij 0001012345") else {
//!     panic!("expected a complete request");
//! };
//! assert_eq!(request.local_user.as_deref(), Some(&b"fg"[..]));
//! assert_eq!(request.record, b"0001012345");
//! assert!(parser.check_one_record().is_ok());
//! assert!(!format!("{request:?}").contains("hij"));
//! assert_eq!(encode_reply("Import ok\n"), b"Import ok\n\0");
//! ```

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod encode;
mod error;
mod reply;
mod request;
mod split;

pub use encode::{LengthEncoding, MAX_BYTE_LENGTH, RequestRef, encode_request};
pub use error::{EncodeError, ProtocolError};
pub use reply::{MAX_REPLY_BYTES, ReplyParser, encode_reply};
pub use request::{
    HttpProbe, MAX_REQUEST_BYTES, Parse, Request, RequestParser, consumable, http_ok_response,
};
pub use split::MAX_SPLIT_FIELDS;
