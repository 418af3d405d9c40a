//! `PUT` and `GET /v2/images/{id}/file`: image data, streamed both ways.

use ::image::{ByteRange, Content};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::image_id;
use crate::extract::Caller;
use crate::{AppState, Fault};

/// Stores the request body as the image's data. The body is handed to the image service as a
/// stream and never collected, whatever its size; `Transfer-Encoding: chunked` works as well
/// as a `Content-Length`.
pub async fn upload(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    req: Request,
) -> Result<StatusCode, Fault> {
    let id = image_id(&id)?;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    if ct.split(';').next().unwrap_or("").trim() != "application/octet-stream" {
        return Err(Fault::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content type {ct} not supported. Use application/octet-stream"),
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = req.into_body().into_data_stream();
    s.images.upload(&c, &id, declared, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads one `bytes=` range; `Ok(None)` when there is no Range header (or another unit, which
/// HTTP says to ignore).
fn range(headers: &HeaderMap) -> Result<Option<ByteRange>, Fault> {
    let Some(v) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let bad = || {
        Fault::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Requested range not satisfiable.",
        )
    };
    let v = v.to_str().map_err(|_| bad())?.trim();
    let Some(spec) = v.strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // onebox serves one range per request, as Glance does.
        return Err(bad());
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    Ok(Some(match (a.trim(), b.trim()) {
        ("", n) => ByteRange::Suffix(num(n)?),
        (a, "") => ByteRange::From(num(a)?, None),
        (a, b) => ByteRange::From(num(a)?, Some(num(b)?)),
    }))
}

pub async fn download(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Fault> {
    let id = image_id(&id)?;
    let r = range(&headers)?;
    let content = match s.images.download(&c, &id, r).await {
        Err(::image::Error::RangeNotSatisfiable(size)) => {
            let mut resp = Fault::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "Requested range not satisfiable.",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
        other => other?,
    };
    let Content::Data {
        image,
        total,
        range,
        body,
    } = content
    else {
        // No data yet: Glance answers 204 rather than an error.
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let len = match range {
        Some((offset, len)) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let end = offset + len - 1;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {offset}-{end}/{total}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            len
        }
        None => {
            // The MD5 describes the whole data, so only a whole download carries it.
            if let Some(sum) = image
                .checksum
                .as_deref()
                .and_then(|c| HeaderValue::from_str(c).ok())
            {
                resp.headers_mut().insert("content-md5", sum);
            }
            total
        }
    };
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(resp)
}
