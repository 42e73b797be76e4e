//! A Connexion client: sends one record like the desktop client and reads the reply.

use std::time::Duration;

use bibgate_connexion::{LengthEncoding, ReplyParser, RequestRef, encode_request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Error, Result, TlsClient};

/// Sends one record to `addr` (`host:port`) and returns the reply text.
///
/// Like the Connexion client: the request is the `A` (logon id) and `P` (password) fields
/// and the record, with no NUL; the client then waits for the reply up to its NUL and
/// closes the connection itself. A server that closes after text without a NUL is taken
/// as having replied with that text. `timeout` bounds the whole exchange.
pub async fn send(
    addr: &str,
    logon_id: &str,
    password: &str,
    record: &[u8],
    encoding: LengthEncoding,
    timeout: Duration,
) -> Result<String> {
    send_over(addr, None, logon_id, password, record, encoding, timeout).await
}

/// Like [`send`], inside a TLS session (for the shim's TLS listener, or a TLS front).
pub async fn send_tls(
    addr: &str,
    tls: &TlsClient,
    logon_id: &str,
    password: &str,
    record: &[u8],
    encoding: LengthEncoding,
    timeout: Duration,
) -> Result<String> {
    send_over(
        addr,
        Some(tls),
        logon_id,
        password,
        record,
        encoding,
        timeout,
    )
    .await
}

async fn send_over(
    addr: &str,
    tls: Option<&TlsClient>,
    logon_id: &str,
    password: &str,
    record: &[u8],
    encoding: LengthEncoding,
    timeout: Duration,
) -> Result<String> {
    let request = encode_request(
        &RequestRef {
            user: None,
            local_user: Some(logon_id.as_bytes()),
            password: Some(password.as_bytes()),
            record,
            trailing_nul: false,
        },
        encoding,
    )?;
    match tokio::time::timeout(timeout, connect_and_exchange(addr, tls, &request)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::Timeout {
            addr: addr.to_string(),
            timeout,
        }),
    }
}

async fn connect_and_exchange(
    addr: &str,
    tls: Option<&TlsClient>,
    request: &[u8],
) -> Result<String> {
    let connect = |source| Error::Connect {
        addr: addr.to_string(),
        source,
    };
    let stream = TcpStream::connect(addr).await.map_err(connect)?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => exchange(addr, stream, request).await,
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), stream)
                .await
                .map_err(connect)?;
            exchange(addr, stream, request).await
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    addr: &str,
    mut stream: S,
    request: &[u8],
) -> Result<String> {
    let io = |source| Error::Io {
        addr: addr.to_string(),
        source,
    };
    stream.write_all(request).await.map_err(io)?;
    let mut replies = ReplyParser::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return replies.finish().ok_or_else(|| Error::NoReply {
                addr: addr.to_string(),
            });
        }
        let reply = replies.feed(&buf[..n]).map_err(|source| Error::Reply {
            addr: addr.to_string(),
            source,
        })?;
        if let Some(text) = reply {
            let _ = stream.shutdown().await;
            return Ok(text);
        }
    }
}
