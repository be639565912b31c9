//! A captured message and a small MIME reader for it.
//!
//! Only what tests need: unfolded headers (RFC 5322 section 2.2.3), RFC 2047
//! encoded words in headers, nested `multipart/*` bodies (RFC 2046 section
//! 5.1), and the `7bit`/`8bit`/`quoted-printable`/`base64` transfer encodings
//! (RFC 2045 section 6). Decoded text has `\n` line endings and no trailing
//! line breaks: SMTP framing and MIME delimiters add their own, and which ones
//! a client adds is not worth asserting on.

use base64::Engine as _;

use crate::smtp::SmtpLogin;

/// A message as the SMTP sink accepted it.
#[derive(Clone, Debug)]
pub struct CapturedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub to: Vec<String>,
    /// The message content as received, dot-unstuffed, CRLF line endings.
    pub raw: String,
    /// The credentials given with `AUTH`, if the client authenticated.
    pub login: Option<SmtpLogin>,
}

impl CapturedMail {
    /// The first header called `name` (case-insensitive), unfolded and with
    /// encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = split_entity(&normalize_newlines(&self.raw));
        find_header(&headers, name).map(|v| decode_encoded_words(&v))
    }

    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The decoded `text/plain` part (or the whole body of a message without
    /// a `Content-Type`).
    pub fn text_body(&self) -> Option<String> {
        self.part("text/plain")
    }

    /// The decoded `text/html` part.
    pub fn html_body(&self) -> Option<String> {
        self.part("text/html")
    }

    /// The first URL in the text body that starts with `prefix`.
    pub fn find_link(&self, prefix: &str) -> Option<String> {
        let text = self.text_body()?;
        let mut rest = text.as_str();
        while let Some(at) = rest.find(prefix) {
            let candidate = &rest[at..];
            let starts_token = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || "<(\"'".contains(c));
            if starts_token {
                let end = candidate
                    .find(|c: char| c.is_whitespace() || "<>\"'".contains(c))
                    .unwrap_or(candidate.len());
                let url = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
                return Some(url.to_owned());
            }
            rest = &candidate[prefix.len()..];
        }
        None
    }

    fn part(&self, mime_type: &str) -> Option<String> {
        let raw = normalize_newlines(&self.raw);
        let mut leaves = Vec::new();
        collect_leaves(&raw, &mut leaves, 0);
        leaves.into_iter().find(|(t, _)| t == mime_type).map(|(_, body)| body)
    }
}

fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// Splits an entity into unfolded header lines and its body.
fn split_entity(entity: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = if let Some(rest) = entity.strip_prefix('\n') {
        ("", rest)
    } else {
        match entity.find("\n\n") {
            Some(i) => (&entity[..i], &entity[i + 2..]),
            None => (entity, ""),
        }
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

fn find_header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// `text/plain; charset=utf-8; boundary="x"` into the lower-cased type and
/// the parameter asked for.
fn content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = value.split(';');
    let mime = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_owned()))
        .collect();
    (mime, params)
}

/// Walks the MIME tree depth-first, collecting `(content type, decoded body)`
/// for every non-multipart entity.
fn collect_leaves(entity: &str, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > 8 {
        return;
    }
    let (headers, body) = split_entity(entity);
    let (mime, params) = find_header(&headers, "Content-Type")
        .map(|v| content_type(&v))
        .unwrap_or_else(|| ("text/plain".to_owned(), Vec::new()));
    if mime.starts_with("multipart/") {
        let Some(boundary) = params.iter().find(|(k, _)| k == "boundary").map(|(_, v)| v.clone()) else {
            return;
        };
        for part in split_multipart(body, &boundary) {
            collect_leaves(part, out, depth + 1);
        }
        return;
    }
    let encoding = find_header(&headers, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_default()
        }
        "quoted-printable" => decode_quoted_printable(body.as_bytes()),
        _ => body.as_bytes().to_vec(),
    };
    let text = normalize_newlines(&String::from_utf8_lossy(&bytes));
    out.push((mime, text.trim_end_matches('\n').to_owned()));
}

/// The body parts between `--boundary` delimiter lines. The newline before
/// a delimiter belongs to the delimiter (RFC 2046 section 5.1.1).
fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset: usize = 0;
    for line in body.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare.starts_with(&delimiter) {
            if let Some(s) = start {
                let end = offset.saturating_sub(1).max(s);
                parts.push(&body[s..end]);
            }
            if bare[delimiter.len()..].starts_with("--") {
                return parts;
            }
            start = Some(offset + line.len());
        }
        offset += line.len();
    }
    parts
}

/// RFC 2045 section 6.7: `=XX` is a byte, `=` at the end of a line is a soft
/// line break, anything else is literal.
fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        match (input.get(i + 1), input.get(i + 2)) {
            (Some(b'\n'), _) => i += 2,
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(&h), Some(&l)) => match (hex_value(h), hex_value(l)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 2047: replaces `=?charset?B|Q?text?=` words with their text (UTF-8
/// assumed), dropping the whitespace between adjacent encoded words.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut pending_space = String::new();
    let mut last_was_word = false;
    while !rest.is_empty() {
        if let Some((decoded, consumed)) = encoded_word(rest) {
            if !last_was_word {
                out.push_str(&pending_space);
            }
            pending_space.clear();
            out.push_str(&decoded);
            rest = &rest[consumed..];
            last_was_word = true;
            continue;
        }
        let ch = rest.chars().next().unwrap_or(' ');
        if ch.is_whitespace() {
            pending_space.push(ch);
        } else {
            out.push_str(&pending_space);
            pending_space.clear();
            out.push(ch);
            last_was_word = false;
        }
        rest = &rest[ch.len_utf8()..];
    }
    out.push_str(&pending_space);
    out
}

/// Decodes one encoded word at the start of `s`: its text and length.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (_charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let text = &inner[..end];
    if text.contains(char::is_whitespace) {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD.decode(text).ok()?,
        "Q" | "q" => decode_quoted_printable(text.replace('_', " ").as_bytes()),
        _ => return None,
    };
    let consumed = s.len() - inner.len() + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(raw: &str) -> CapturedMail {
        CapturedMail {
            from: "a@b.c".into(),
            to: vec!["d@e.f".into()],
            raw: raw.into(),
            login: None,
        }
    }

    #[test]
    fn quoted_printable_soft_breaks_and_escapes() {
        assert_eq!(
            decode_quoted_printable(b"caf=C3=A9 =3D ok=\r\nnext"),
            "café = oknext".as_bytes()
        );
        assert_eq!(decode_quoted_printable(b"a=\nb=zz="), b"ab=zz=");
    }

    #[test]
    fn encoded_words_in_subject() {
        let m = mail("Subject: =?utf-8?b?WW914oCZcmU=?=\r\n =?utf-8?q?_invited?= now\r\n\r\nbody");
        assert_eq!(m.subject().as_deref(), Some("You’re invited now"));
        assert_eq!(m.text_body().as_deref(), Some("body"));
    }

    #[test]
    fn nested_multipart() {
        let raw = "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\n\
                   Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\
                   Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--inner\r\n\
                   Content-Type: text/html\r\n\r\n<b>hi</b>\r\n--inner--\r\n--outer--\r\n";
        let m = mail(raw);
        assert_eq!(m.text_body().as_deref(), Some("hello"));
        assert_eq!(m.html_body().as_deref(), Some("<b>hi</b>"));
    }

    #[test]
    fn find_link_takes_the_whole_url_and_drops_trailing_punctuation() {
        let m = mail("\r\nSee (https://x.test/a?b=1&c=2). Or https://x.test/second\r\n");
        assert_eq!(
            m.find_link("https://x.test/").as_deref(),
            Some("https://x.test/a?b=1&c=2")
        );
        let m = mail("\r\nnothttps://x.test/no https://x.test/yes\r\n");
        assert_eq!(m.find_link("https://x.test/").as_deref(), Some("https://x.test/yes"));
        assert_eq!(m.find_link("ftp://"), None);
    }
}
