//! The upload form's `multipart/form-data` body (RFC 7578), read whole from memory (the
//! body is bounded): its text fields and its one file.

/// The parts of an upload form.
#[derive(Debug, Default)]
pub(crate) struct Form {
    /// Text fields by name (the last of a name wins).
    texts: Vec<(String, String)>,
    /// The file: its name as sent (may be empty) and its bytes.
    pub file: Option<(String, Vec<u8>)>,
}

impl Form {
    /// A text field's value.
    pub fn text(&self, name: &str) -> Option<String> {
        self.texts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    (from..=haystack.len() - needle.len()).find(|&i| haystack[i..].starts_with(needle))
}

/// A parameter of a header value: `name="x"` or `name=x`.
fn parameter(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        if !key.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let value = value.trim();
        Some(
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
                .to_string(),
        )
    })
}

/// Reads `body` as `multipart/form-data` with the boundary of `content_type`.
pub(crate) fn parse(content_type: &str, body: &[u8]) -> Result<Form, String> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return Err("the upload is not multipart/form-data".to_string());
    }
    let boundary = parameter(content_type, "boundary")
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or("the upload names no boundary")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut form = Form::default();
    let mut at = find(body, &delimiter, 0).ok_or("the upload has no parts")? + delimiter.len();
    let next_delimiter = [b"\r\n".as_slice(), &delimiter].concat();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(form);
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("a part of the upload is malformed".to_string());
        }
        at += 2;
        let head_end =
            find(body, b"\r\n\r\n", at).ok_or("a part of the upload has no end of headers")?;
        let head = String::from_utf8_lossy(&body[at..head_end]).to_string();
        let content_start = head_end + 4;
        let content_end =
            find(body, &next_delimiter, content_start).ok_or("the upload ends inside a part")?;
        let content = &body[content_start..content_end];
        let disposition = head
            .split("\r\n")
            .find(|line| {
                line.to_ascii_lowercase()
                    .starts_with("content-disposition:")
            })
            .ok_or("a part of the upload has no Content-Disposition")?;
        let name = parameter(disposition, "name").unwrap_or_default();
        match parameter(disposition, "filename") {
            Some(filename) => {
                if form.file.is_none() {
                    form.file = Some((filename, content.to_vec()));
                }
            }
            None => form
                .texts
                .push((name, String::from_utf8_lossy(content).to_string())),
        }
        at = content_end + next_delimiter.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_the_file_are_read() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.mrc\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\x00\r\n--X\r\nbytes\r\n--XyZ--\r\n";
        let form = parse("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(form.text("csrf").as_deref(), Some("abc"));
        let (name, bytes) = form.file.unwrap();
        assert_eq!(name, "a b.mrc");
        assert_eq!(bytes, b"\x00\r\n--X\r\nbytes");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(parse("text/plain", b"").is_err());
        assert!(parse("multipart/form-data", b"--a\r\n").is_err());
        assert!(parse("multipart/form-data; boundary=a", b"--a\r\nno end").is_err());
        assert!(parse("multipart/form-data; boundary=a", b"nothing").is_err());
        assert!(parse("multipart/form-data; boundary=a", b"--a").is_err());
    }
}
