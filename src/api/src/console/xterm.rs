//! The serial console in a browser: a page of onebox's own that joins xterm.js, the system's
//! package, to the serial console's websocket.
//!
//! | path                                   | what                                              |
//! |----------------------------------------|---------------------------------------------------|
//! | `/console/serial/xterm.html?token=…`   | the page; only with a token that opens a serial console |
//! | `/console/serial/xterm/xterm.js`       | xterm.js's modules (`<xterm_dir>/lib`) with a CommonJS loader |
//! | `/console/serial/xterm/xterm.css`      | xterm.js's style sheet                            |
//! | `/console/serial/xterm/console.{js,css}` | the page's script and style                     |
//!
//! Debian ships xterm.js as the CommonJS modules of `node-xterm`; the browser file of
//! `libjs-xterm` only requires them. onebox serves them as one script, read from the package's
//! directory at each request (an upgrade of the package takes effect at once), never copied.

use std::path::{Path, PathBuf};

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use driver::ConsoleKind;

use super::{TokenQuery, refuse};
use crate::AppState;

const PAGE: &str = include_str!("xterm.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");
const LOADER: &str = include_str!("loader.js");
/// The pages' Content-Security-Policy: xterm.js styles its elements inline.
const POLICY: &str = include_str!("page-policy.csp");

/// Bounds on what is read from the package's directory.
const MAX_FILES: usize = 2000;
const MAX_BYTES: u64 = 32 << 20;
const MAX_DEPTH: usize = 8;

/// What every answer of these pages carries: no caching of a token's page, no framing by
/// another site, scripts and connections of this host only.
fn secured(mut r: Response, cache: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY.trim_end()),
    );
    r
}

fn typed(body: impl Into<axum::body::Body>, mime: &'static str, cache: &'static str) -> Response {
    secured(
        ([(header::CONTENT_TYPE, mime)], body.into()).into_response(),
        cache,
    )
}

/// The page, for a token that opens a serial console now; nothing otherwise.
pub async fn page(State(s): State<AppState>, Query(q): Query<TokenQuery>) -> Response {
    let Some(token) = q.token.filter(|t| !t.is_empty() && t.len() <= 128) else {
        return secured(
            refuse(StatusCode::UNAUTHORIZED, "A console token is required."),
            "no-store",
        );
    };
    if !s.compute.console_token_grants(&token, ConsoleKind::Serial) {
        return secured(
            refuse(
                StatusCode::UNAUTHORIZED,
                "The token is invalid or has expired.",
            ),
            "no-store",
        );
    }
    typed(PAGE, "text/html; charset=utf-8", "no-store")
}

pub async fn script() -> Response {
    typed(SCRIPT, "text/javascript; charset=utf-8", "no-cache")
}

pub async fn style() -> Response {
    typed(STYLE, "text/css; charset=utf-8", "no-cache")
}

fn missing(dir: &Path) -> Response {
    tracing::warn!(dir = %dir.display(), "xterm.js not found; install node-xterm or set [console] xterm_dir");
    secured(
        refuse(
            StatusCode::NOT_FOUND,
            "xterm.js is not installed on this host.",
        ),
        "no-store",
    )
}

/// xterm.js's modules as one script.
pub async fn bundle(State(s): State<AppState>) -> Response {
    let dir = s.cfg.console.xterm_dir.clone();
    let lib = dir.join("lib");
    match tokio::task::spawn_blocking(move || bundle_of(&lib)).await {
        Ok(Ok(js)) => typed(js, "text/javascript; charset=utf-8", "no-cache"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading xterm.js");
            missing(&dir)
        }
        Err(_) => missing(&dir),
    }
}

/// xterm.js's style sheet (`lib/xterm.css`, or `css/xterm.css` in later versions).
pub async fn xterm_style(State(s): State<AppState>) -> Response {
    let dir = s.cfg.console.xterm_dir.clone();
    for p in [dir.join("lib/xterm.css"), dir.join("css/xterm.css")] {
        if let Ok(css) = tokio::fs::read(&p).await {
            return typed(css, "text/css; charset=utf-8", "no-cache");
        }
    }
    missing(&dir)
}

/// Every `*.js` under `lib` but the tests, each wrapped as a CommonJS module named by its
/// path (without `.js`), then the loader, which exports `lib/xterm.js` as `OneboxXterm`.
pub fn bundle_of(lib: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    let mut bytes = 0;
    collect(lib, 0, &mut files, &mut bytes)?;
    files.sort();
    if !files.iter().any(|p| p == &lib.join("xterm.js")) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no {}", lib.join("xterm.js").display()),
        ));
    }
    let mut out = String::with_capacity(bytes as usize + 4096);
    out.push_str("// xterm.js, the modules of ");
    out.push_str(&lib.display().to_string().replace(['\n', '\r'], " "));
    out.push_str(", joined by onebox.\n(function () {\nvar defs = Object.create(null);\n");
    for path in files {
        let Ok(rel) = path.strip_prefix(lib) else {
            continue;
        };
        let id = rel.to_string_lossy();
        let id = id.strip_suffix(".js").unwrap_or(&id);
        let src = std::fs::read(&path)?;
        let src = String::from_utf8_lossy(&src);
        let name = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
        out.push_str(&format!(
            "defs[{name}] = function (exports, require, module) {{\n"
        ));
        for line in src.lines() {
            if !line.starts_with("//# sourceMappingURL=") {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str("};\n");
    }
    out.push_str(LOADER);
    out.push_str("}());\n");
    Ok(out)
}

fn collect(
    dir: &Path,
    depth: usize,
    files: &mut Vec<PathBuf>,
    bytes: &mut u64,
) -> std::io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        // Links are followed (packages link files in); the depth bounds a loop.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let ty = meta.file_type();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if ty.is_dir() {
            collect(&path, depth + 1, files, bytes)?;
        } else if ty.is_file() && name.ends_with(".js") && !name.ends_with(".test.js") {
            *bytes += meta.len();
            files.push(path);
            if files.len() > MAX_FILES || *bytes > MAX_BYTES {
                return Err(std::io::Error::other(format!(
                    "{} holds more than onebox serves as xterm.js",
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}
