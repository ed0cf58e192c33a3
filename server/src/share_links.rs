//! Share links over plain HTTP, on the API's port: `GET /s/<token>` downloads the file in
//! any browser or with `curl`, no account needed. A password travels as HTTP Basic auth
//! (any user name), so browsers ask for it themselves; `Range` requests resume a download
//! (and, starting past byte 0, do not count against the link's limit).

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD};
use futures::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::StreamBody;
use hyper::body::Frame;

use crate::{
    drive::Drive,
    error::{Error, Reason},
};

/// Where links are served.
pub const PREFIX: &str = "/s/";

/// The response to a request for a link's path.
pub async fn serve<B>(drive: Arc<Drive>, request: Request<B>) -> Response<tonic::body::Body> {
    let token = request
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .to_owned();
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let password = basic_password(&request).unwrap_or_default();
    let now = chrono::Utc::now();
    let (link, file) = match drive.link_file(&token, &password, now).await {
        Ok(found) => found,
        Err(err) => return refusal(&err),
    };
    let range = match request.headers().get(header::RANGE) {
        None => None,
        Some(value) => match parse_range(value, file.size) {
            Some(range) => Some(range),
            None => {
                let mut response = plain(StatusCode::RANGE_NOT_SATISFIABLE, "bad range");
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", file.size)) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return response;
            }
        },
    };
    let (start, end) = range.unwrap_or((0, file.size));
    let head_only = request.method() == http::Method::HEAD;
    let mut response = Response::new(tonic::body::Body::empty());
    if !head_only {
        let download = drive
            .open_link(&link, file.clone(), start, end - start)
            .await;
        let chunks = match download {
            Ok((_, chunks)) => chunks,
            Err(err) => return refusal(&err),
        };
        let frames = chunks.map(|chunk| {
            chunk
                .map(|(_, bytes)| Frame::data(bytes))
                .map_err(tonic::Status::from)
        });
        // An empty range (a 0-byte file) still sent one empty chunk: harmless.
        *response.body_mut() = tonic::body::Body::new(StreamBody::new(frames));
    }
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(length) = HeaderValue::from_str(&(end - start).to_string()) {
        headers.insert(header::CONTENT_LENGTH, length);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&content_disposition(&file.name)) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    if range.is_some() {
        let value = format!("bytes {start}-{}/{}", end.saturating_sub(1), file.size);
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// `attachment`, with the name as ASCII (for old clients) and as UTF-8 (RFC 6266).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The password of an `Authorization: Basic` header (the user name is ignored).
fn basic_password<B>(request: &Request<B>) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    decoded
        .split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// One `bytes=start-end` / `bytes=start-` / `bytes=-suffix` range as [start, end).
fn parse_range(value: &HeaderValue, size: u64) -> Option<(u64, u64)> {
    let spec = value.to_str().ok()?.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // One range per request.
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (first, "") => (first.parse().ok()?, size),
        (first, last) => {
            let last: u64 = last.parse().ok()?;
            (first.parse().ok()?, last.saturating_add(1).min(size))
        }
    };
    (start < end && start < size).then_some((start, end))
}

fn plain(status: StatusCode, text: &'static str) -> Response<tonic::body::Body> {
    let mut response = Response::new(tonic::body::Body::new(http_body_util::Full::new(
        bytes::Bytes::from_static(text.as_bytes()),
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What a link that does not work answers.
fn refusal(err: &Error) -> Response<tonic::body::Body> {
    match err {
        Error::NotFound(_) | Error::InvalidArgument(_) => {
            plain(StatusCode::NOT_FOUND, "no such link (or it expired)")
        }
        Error::PermissionDenied {
            reason: Reason::LinkPassword,
            ..
        } => {
            let mut response = plain(StatusCode::UNAUTHORIZED, "this link needs its password");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Basic realm=\"SecureConnect share link\", charset=\"UTF-8\"",
                ),
            );
            response
        }
        Error::FailedPrecondition {
            reason: Reason::LinkExhausted,
            ..
        } => plain(StatusCode::GONE, "this link's downloads are used up"),
        other => {
            tracing::warn!(error = %other, "share link download failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let r = |s: &str| parse_range(&HeaderValue::from_str(s).expect("header"), 1000);
        assert_eq!(r("bytes=0-99"), Some((0, 100)));
        assert_eq!(r("bytes=900-"), Some((900, 1000)));
        assert_eq!(r("bytes=-100"), Some((900, 1000)));
        assert_eq!(r("bytes=990-5000"), Some((990, 1000)));
        assert_eq!(r("bytes=1000-"), None);
        assert_eq!(r("bytes=5-1"), None);
        assert_eq!(r("bytes=0-1,5-6"), None);
        assert_eq!(r("items=0-1"), None);
    }

    #[test]
    fn names_reach_the_browser_intact_and_harmless() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("naïve \"q\".txt"),
            "attachment; filename=\"na_ve _q_.txt\"; filename*=UTF-8''na%C3%AFve%20%22q%22.txt"
        );
    }
}
