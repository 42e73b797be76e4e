//! `bibgate serve --console` over raw HTTP (issue 17): sign-in, the zones a staff member
//! may see and change, the CSRF token of every POST, a tampered session cookie, and the
//! sign-in back-off.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use bibgate_store::{MmsId, Store};
use bibgate_test_support::records::{encode as encode_record, oclc_record, seed};

use crate::backup::Serve;
use crate::util::{Scratch, bibgate_in, run_ok};

const ALPHA: &str = "01DEMO_ALPHA";
const BETA: &str = "01DEMO_BETA";
const PASSWORD: &str = "console-Pa55word";
const STAFF_PASSWORD: &str = "a long staff password";

/// One HTTP answer.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value the answer sets for cookie `name`, and the whole Set-Cookie line.
    pub fn set_cookie(&self, name: &str) -> Option<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let value = v.strip_prefix(&format!("{name}="))?;
                Some((value.split(';').next()?.to_string(), v.clone()))
            })
    }

    /// The value of the first `name="csrf" value="..."` of the page.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A form body from pairs.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Sends one request (HTTP/1.1, `Connection: close`) and reads the whole answer.
pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<&str>,
) -> Reply {
    let body = body.map(|b| ("application/x-www-form-urlencoded", b.as_bytes()));
    request_with(addr, method, path, cookie, body)
}

/// A `multipart/form-data` POST of text fields and one file.
fn post_multipart(
    addr: &str,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
    file: (&str, &[u8]),
) -> Reply {
    const BOUNDARY: &str = "bibgate-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: application/marc\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.1);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    request_with(addr, "POST", path, cookie, Some((&content_type, &body)))
}

/// Sends one request with a body of the given content type and reads the whole answer.
fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<(&str, &[u8])>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if let Some((content_type, body)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some((_, body)) = body {
        stream.write_all(body).unwrap();
    }
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Adds a staff account (password on stdin).
pub(crate) fn staff_add(data: &std::path::Path, user: &str, institution: &str, admin: bool) {
    let mut command = bibgate_in(data);
    command.args(["staff", "add", user, "--institution", institution]);
    if admin {
        command.arg("--admin");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{STAFF_PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The console's address from serve's announcement.
pub(crate) fn console_addr(serve: &Serve) -> String {
    serve
        .lines
        .iter()
        .find_map(|line| line.strip_prefix("bibgate staff console on http://"))
        .map(|rest| rest.trim_end_matches('/').to_string())
        .expect("serve announces the console")
}

/// Signs in; returns the `Cookie` header value of the session.
pub(crate) fn sign_in(addr: &str, user: &str, password: &str) -> Reply {
    let page = request(addr, "GET", "/signin", "", None);
    assert_eq!(page.status, 200);
    let (token, _) = page.set_cookie("bibgate_signin").expect("a sign-in cookie");
    request(
        addr,
        "POST",
        "/signin",
        &format!("bibgate_signin={token}"),
        Some(&form(&[
            ("csrf", &page.csrf()),
            ("user", user),
            ("password", password),
        ])),
    )
}

fn session_cookie(reply: &Reply) -> String {
    assert_eq!(reply.status, 303, "{}", reply.body);
    let (id, line) = reply
        .set_cookie("bibgate_session")
        .expect("a session cookie");
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Strict"), "{line}");
    assert_eq!(id.len(), 64, "a 256-bit id: {id}");
    format!("bibgate_session={id}")
}

/// A data directory with the demo consortium, a record in ALPHA's zone and one in BETA's,
/// and staff: ann (ALPHA), bea (BETA), root (administrator).
fn site(name: &str) -> (Scratch, MmsId, MmsId) {
    let scratch = Scratch::new(name);
    run_ok(bibgate_in(&scratch.data()).args(["init", "--password", PASSWORD]));
    let store = scratch.store();
    let alpha = seed(
        &store,
        ALPHA,
        &oclc_record(61_000_001, b' ', None, "Alpha's book."),
        &[(61_000_001, true)],
    );
    let beta = seed(
        &store,
        BETA,
        &oclc_record(61_000_002, b' ', None, "Beta's book."),
        &[(61_000_002, true)],
    );
    drop(store);
    staff_add(&scratch.data(), "ann", ALPHA, false);
    staff_add(&scratch.data(), "bea", BETA, false);
    staff_add(&scratch.data(), "root", ALPHA, true);
    (scratch, alpha, beta)
}

#[test]
fn staff_see_and_change_only_their_zones_and_every_post_needs_the_csrf_token() {
    let (scratch, alpha, beta) = site("console-zones");
    let serve = Serve::start(&scratch.data(), &["--console", "127.0.0.1:0"]);
    let addr = console_addr(&serve);

    // Signed out: every page leads to the sign-in page.
    let reply = request(&addr, "GET", "/imports", "", None);
    assert_eq!(
        (reply.status, reply.header("location")),
        (303, Some("/signin"))
    );

    let ann = session_cookie(&sign_in(&addr, "ann", STAFF_PASSWORD));
    let imports = request(&addr, "GET", "/imports", &ann, None);
    assert_eq!(imports.status, 200);
    assert!(
        imports.body.contains("Imports of 01DEMO_ALPHA"),
        "{}",
        imports.body
    );
    assert_eq!(imports.header("cache-control"), Some("no-store"));
    let csrf = imports.csrf();

    let own = format!("/record?zone={ALPHA}&mms={alpha}");
    let other = format!("/record?zone={BETA}&mms={beta}");
    let page = request(&addr, "GET", &own, &ann, None);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Alpha&#39;s book") || page.body.contains("Alpha's book"),
        "{}",
        page.body
    );
    // Another institution's zone: not found, as if it were not there.
    assert_eq!(request(&addr, "GET", &other, &ann, None).status, 404);
    assert_eq!(
        request(
            &addr,
            "GET",
            &format!("/imports?institution={BETA}"),
            &ann,
            None
        )
        .status,
        404
    );
    assert_eq!(
        request(
            &addr,
            "GET",
            &format!("/duplicates?zone={BETA}"),
            &ann,
            None
        )
        .status,
        404
    );

    // Changing another zone, with a valid token: refused, nothing changed.
    let open_beta = form(&[
        ("csrf", &csrf),
        ("zone", BETA),
        ("mms", beta.as_str()),
        ("action", "open"),
    ]);
    assert_eq!(
        request(&addr, "POST", "/record/action", &ann, Some(&open_beta)).status,
        403
    );
    // Own zone without a token, with a forged one: refused.
    let without = form(&[("zone", ALPHA), ("mms", alpha.as_str()), ("action", "open")]);
    assert_eq!(
        request(&addr, "POST", "/record/action", &ann, Some(&without)).status,
        403
    );
    let forged = form(&[
        ("csrf", &"0".repeat(64)),
        ("zone", ALPHA),
        ("mms", alpha.as_str()),
        ("action", "open"),
    ]);
    assert_eq!(
        request(&addr, "POST", "/record/action", &ann, Some(&forged)).status,
        403
    );
    // A token of another session is not this session's.
    let bea = session_cookie(&sign_in(&addr, "bea", STAFF_PASSWORD));
    let bea_csrf = request(&addr, "GET", "/imports", &bea, None).csrf();
    let crossed = form(&[
        ("csrf", &bea_csrf),
        ("zone", ALPHA),
        ("mms", alpha.as_str()),
        ("action", "open"),
    ]);
    assert_eq!(
        request(&addr, "POST", "/record/action", &ann, Some(&crossed)).status,
        403
    );
    let store = scratch.store();
    assert_eq!(store.lock(ALPHA, &alpha).unwrap(), None);
    assert_eq!(store.lock(BETA, &beta).unwrap(), None);

    // With the session's token: done.
    let open = form(&[
        ("csrf", &csrf),
        ("zone", ALPHA),
        ("mms", alpha.as_str()),
        ("action", "open"),
    ]);
    let reply = request(&addr, "POST", "/record/action", &ann, Some(&open));
    assert_eq!(reply.status, 303, "{}", reply.body);
    let lock = store
        .lock(ALPHA, &alpha)
        .unwrap()
        .expect("the lock is taken");
    assert_eq!(
        (lock.institution.as_str(), lock.user.as_str()),
        (ALPHA, "ann")
    );

    // Policies: only the staff member's institution.
    assert_eq!(request(&addr, "GET", "/policies", &ann, None).status, 200);
    let rollback_beta = form(&[
        ("csrf", &csrf),
        ("institution", BETA),
        ("action", "rollback"),
    ]);
    assert_eq!(
        request(
            &addr,
            "POST",
            "/policies/action",
            &ann,
            Some(&rollback_beta)
        )
        .status,
        403
    );
    let rollback = form(&[
        ("csrf", &csrf),
        ("institution", ALPHA),
        ("action", "rollback"),
    ]);
    let reply = request(&addr, "POST", "/policies/action", &ann, Some(&rollback));
    assert_eq!(
        (reply.status, reply.header("location")),
        (303, Some("/policies"))
    );
    let page = request(&addr, "GET", "/policies", &ann, None);
    assert!(page.body.contains("has no active policy"), "{}", page.body);

    // A tampered session cookie signs out.
    let mut tampered = ann.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let reply = request(&addr, "GET", "/imports", &tampered, None);
    assert_eq!(
        (reply.status, reply.header("location")),
        (303, Some("/signin"))
    );
    let reply = request(&addr, "POST", "/record/action", &tampered, Some(&open));
    assert_eq!(
        (reply.status, reply.header("location")),
        (303, Some("/signin"))
    );

    // A sign-in without the sign-in cookie's token is refused.
    let reply = request(
        &addr,
        "POST",
        "/signin",
        "",
        Some(&form(&[
            ("csrf", &csrf),
            ("user", "ann"),
            ("password", STAFF_PASSWORD),
        ])),
    );
    assert_eq!(reply.status, 403);

    // An administrator sees every zone.
    let root = session_cookie(&sign_in(&addr, "root", STAFF_PASSWORD));
    assert_eq!(request(&addr, "GET", &other, &root, None).status, 200);
    assert_eq!(
        request(
            &addr,
            "GET",
            &format!("/imports?institution={BETA}"),
            &root,
            None
        )
        .status,
        200
    );

    // Signing out ends the session; a removed account's session ends too.
    let signout = form(&[("csrf", &bea_csrf)]);
    let reply = request(&addr, "POST", "/signout", &bea, Some(&signout));
    assert_eq!(reply.status, 303);
    assert_eq!(request(&addr, "GET", "/imports", &bea, None).status, 303);
    run_ok(bibgate_in(&scratch.data()).args(["staff", "remove", "ann"]));
    assert_eq!(request(&addr, "GET", "/imports", &ann, None).status, 303);
    drop(serve);
}

#[test]
fn failed_sign_ins_back_off_per_user() {
    let (scratch, _, _) = site("console-backoff");
    let serve = Serve::start(&scratch.data(), &["--console", "127.0.0.1:0"]);
    let addr = console_addr(&serve);
    for _ in 0..5 {
        let reply = sign_in(&addr, "ann", "not the password");
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(reply.set_cookie("bibgate_session").is_none());
    }
    // Now even the right password waits.
    let reply = sign_in(&addr, "ann", STAFF_PASSWORD);
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(reply.header("retry-after").is_some());
    assert!(reply.set_cookie("bibgate_session").is_none());
    assert!(
        reply.body.contains("Too many failed sign-ins"),
        "{}",
        reply.body
    );
    // An unknown user name answers as a wrong password does.
    let reply = sign_in(&addr, "nobody", STAFF_PASSWORD);
    assert!(matches!(reply.status, 401 | 429), "{}", reply.status);
    drop(serve);
}

#[test]
fn the_policies_page_compares_two_policies_decisions_on_an_uploaded_file() {
    let (scratch, _, _) = site("console-policy-diff");
    // A record imported into ALPHA's zone, newer (005) than the file's copy of it: the
    // engine's 005 check refuses the older export, the no-005-check policy merges it.
    let newer = scratch.path().join("newer.mrc");
    std::fs::write(
        &newer,
        encode_record(&oclc_record(
            61_000_010,
            b' ',
            Some("20250101120000.0"),
            "Stored, newer.",
        )),
    )
    .unwrap();
    run_ok(
        bibgate_in(&scratch.data())
            .args(["import", "--institution", ALPHA])
            .arg(&newer),
    );
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-unknown-unknown/policy/bibgate_policy_no_005_check.wasm");
    assert!(
        wasm.exists(),
        "the policy is not built ({}): run scripts/test.sh",
        wasm.display()
    );
    let published = run_ok(
        bibgate_in(&scratch.data())
            .args(["policy", "publish"])
            .arg(&wasm),
    );
    let published = String::from_utf8_lossy(&published.stdout).to_string();
    let sha = published
        .split_whitespace()
        .find(|word| word.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no sha256 in {published:?}"))
        .to_string();
    let mut file = encode_record(&oclc_record(
        61_000_010,
        b' ',
        Some("20240101120000.0"),
        "Exported, older.",
    ));
    file.extend(encode_record(&oclc_record(61_000_011, b' ', None, "New.")));

    let serve = Serve::start(&scratch.data(), &["--console", "127.0.0.1:0"]);
    let addr = console_addr(&serve);
    let ann = session_cookie(&sign_in(&addr, "ann", STAFF_PASSWORD));
    let page = request(&addr, "GET", "/policies", &ann, None);
    assert!(
        page.body.contains("action=\"/policies/diff\""),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let fields = |csrf: &str, institution: &str| {
        vec![
            ("csrf".to_string(), csrf.to_string()),
            ("institution".to_string(), institution.to_string()),
            ("from".to_string(), "default".to_string()),
            ("to".to_string(), sha.clone()),
        ]
    };
    let post = |cookie: &str, fields: Vec<(String, String)>| {
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        post_multipart(
            &addr,
            "/policies/diff",
            cookie,
            &fields,
            ("export.mrc", &file),
        )
    };

    let reply = post(&ann, fields(&csrf, ALPHA));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("1 of 2 decisions change"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("record 1: NOT_ADDED_OLD -&#62; MERGED"),
        "{}",
        reply.body
    );
    // Nothing was imported: the new record is still unknown.
    assert_eq!(
        scratch.store().find_by_oclc(ALPHA, &[61_000_011]).unwrap(),
        vec![]
    );
    // Another institution's zone, or a forged token: refused.
    assert_eq!(post(&ann, fields(&csrf, BETA)).status, 403);
    assert_eq!(post(&ann, fields("forged", ALPHA)).status, 403);
}
