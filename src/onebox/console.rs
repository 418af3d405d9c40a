//! `onebox console SERVER`: the local terminal joined to a server's serial console, for the
//! operator on the box.
//!
//! It goes the way any client goes, through the running onebox's API on this host: it signs
//! in with the credentials `onebox init` wrote for the admin (`<data_dir>/admin-openrc`, mode
//! 0600, so only who may read the box's data directory can use it; `--credentials` names
//! another openrc file, whose user gets only what the API lets that user have) at the API
//! the file names (`OS_AUTH_URL`; `[api] plain_listen` when set), asks for the
//! server's serial console URL (`POST /servers/{id}/remote-consoles`) and speaks websocket to
//! the console proxy. The session is an ordinary console session: one at a time per console,
//! its token expiring as every token does. On a terminal, the terminal is put in raw mode
//! (every key, Ctrl-C included, goes to the server) and restored on the way out; Ctrl-]
//! leaves.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::config::Config;

/// The key that leaves the console: Ctrl-] (GS), as telnet and `virsh console` have it.
pub const ESCAPE: u8 = 0x1d;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How this host's API is reached: the plain loopback listener when there is one, else the
/// address of the openrc's `OS_AUTH_URL` (over HTTPS checked against its `OS_CACERT`).
struct Endpoint {
    /// `host:port`, to connect to and to name in `Host`.
    authority: String,
    tls: Option<(Arc<tokio_rustls::rustls::ClientConfig>, String)>,
}

impl Endpoint {
    fn of(cfg: &Config, vars: &HashMap<String, String>, creds: &Path) -> Result<Self> {
        if let Some(p) = cfg.api.plain_listen {
            return Ok(Self {
                authority: crate::status::loopback_for(p).to_string(),
                tls: None,
            });
        }
        let url = vars
            .get("OS_AUTH_URL")
            .with_context(|| format!("{} sets no OS_AUTH_URL", creds.display()))?;
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("OS_AUTH_URL {url:?} is not a URL"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        let with_port = |default: u16| {
            if authority.contains(':') && !authority.ends_with(']') {
                authority.to_owned()
            } else {
                format!("{authority}:{default}")
            }
        };
        let (authority, tls) = match scheme {
            "http" => (with_port(80), None),
            "https" => {
                let ca = vars.get("OS_CACERT").with_context(|| {
                    format!(
                        "{} names an HTTPS API without OS_CACERT; set [api] plain_listen",
                        creds.display()
                    )
                })?;
                let c = Arc::new(tls_config(Path::new(ca))?);
                (with_port(443), Some((c, host.to_owned())))
            }
            _ => bail!("OS_AUTH_URL {url:?} is not http or https"),
        };
        Ok(Self { authority, tls })
    }

    async fn connect(&self) -> Result<Box<dyn Io>> {
        let tcp = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::net::TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {}: timed out", self.authority))?
        .with_context(|| {
            format!(
                "connecting to onebox's API at {} (is it running?)",
                self.authority
            )
        })?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((c, host)) => {
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())?;
                let s = tokio_rustls::TlsConnector::from(c.clone())
                    .connect(name, tcp)
                    .await
                    .context("the TLS handshake with onebox's API")?;
                Ok(Box::new(s))
            }
        }
    }

    /// One request, `Connection: close`: the status, the headers (lower-cased names) and
    /// the body as JSON (`Null` when empty or not JSON).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<(String, String)>, Value)> {
        let mut s = self.connect().await?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\nX-OpenStack-Nova-API-Version: 2.6\r\nContent-Length: {}\r\n",
            self.authority,
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        if let Some(t) = token {
            req.push_str(&format!("X-Auth-Token: {t}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        s.write_all(req.as_bytes()).await?;
        s.flush().await?;
        let mut raw = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            s.take(8 << 20).read_to_end(&mut raw),
        )
        .await
        .map_err(|_| anyhow::anyhow!("{method} {path}: no answer in time"))?;
        // A TLS peer may close without notify once it has answered; what was read counts.
        if let (Err(e), true) = (read, raw.is_empty()) {
            return Err(e).context(format!("{method} {path}"));
        }
        parse_response(&raw).with_context(|| format!("{method} {path}"))
    }
}

fn tls_config(ca: &Path) -> Result<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(c.with_context(|| format!("reading {}", ca.display()))?)?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Parsed = (u16, Vec<(String, String)>, Value);

fn parse_response(raw: &[u8]) -> Result<Parsed> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP answer")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .context("no HTTP status")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        body = unchunk(&body)?;
    }
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, headers, json))
}

fn unchunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a broken chunked body")?;
        let size = std::str::from_utf8(&b[..eol])?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            bail!("a chunked body cut short");
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

/// The `OS_*` settings of an openrc file (`export OS_X=value`, the value bare or in single
/// quotes, `'\''` standing for a quote).
fn read_openrc(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (`onebox init` writes it; --credentials names another)",
            path.display()
        )
    })?;
    let mut vars = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("export ") else {
            continue;
        };
        let Some((k, v)) = rest.split_once('=') else {
            continue;
        };
        let v = match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            Some(q) => q.replace("'\\''", "'"),
            None => v.trim_matches('"').to_owned(),
        };
        vars.insert(k.trim().to_owned(), v);
    }
    Ok(vars)
}

fn fault(what: &str, status: u16, body: &Value) -> anyhow::Error {
    let msg = body
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    anyhow::anyhow!("{what}: HTTP {status} {msg}")
}

/// Signs in with the openrc's password; the token.
async fn sign_in(api: &Endpoint, vars: &HashMap<String, String>, creds: &Path) -> Result<String> {
    let get = |k: &str| {
        vars.get(k)
            .cloned()
            .with_context(|| format!("{} sets no {k}", creds.display()))
    };
    let domain = |k: &str| vars.get(k).cloned().unwrap_or_else(|| "Default".into());
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": get("OS_USERNAME")?,
            "domain": {"name": domain("OS_USER_DOMAIN_NAME")},
            "password": get("OS_PASSWORD")?,
        }}},
        "scope": {"project": {
            "name": get("OS_PROJECT_NAME")?,
            "domain": {"name": domain("OS_PROJECT_DOMAIN_NAME")},
        }},
    }});
    let (status, headers, answer) = api
        .call("POST", "/identity/v3/auth/tokens", None, Some(&body))
        .await?;
    if status != 201 {
        return Err(fault("signing in", status, &answer));
    }
    headers
        .into_iter()
        .find(|(k, _)| k == "x-subject-token")
        .map(|(_, v)| v)
        .context("signing in: no token in the answer")
}

/// The id of the server `name_or_id` names: the server of that id, else the one server of
/// that name in any project the caller sees.
async fn find_server(api: &Endpoint, token: &str, name_or_id: &str) -> Result<(String, String)> {
    let safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    if safe(name_or_id) {
        let (status, _, body) = api
            .call(
                "GET",
                &format!("/compute/v2.1/servers/{name_or_id}"),
                Some(token),
                None,
            )
            .await?;
        if status == 200 {
            let s = &body["server"];
            return Ok((
                s["id"].as_str().unwrap_or(name_or_id).to_owned(),
                s["name"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    let pattern = format!("^{}$", regex_escape(name_or_id));
    let (status, _, body) = api
        .call(
            "GET",
            &format!(
                "/compute/v2.1/servers?all_tenants=1&name={}",
                percent_encode(&pattern)
            ),
            Some(token),
            None,
        )
        .await?;
    if status != 200 {
        return Err(fault("listing servers", status, &body));
    }
    let found: Vec<&Value> = body["servers"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["name"] == name_or_id).collect())
        .unwrap_or_default();
    match found.as_slice() {
        [one] => Ok((
            one["id"].as_str().unwrap_or_default().to_owned(),
            name_or_id.to_owned(),
        )),
        [] => bail!("no server named or with the id {name_or_id:?}"),
        many => bail!(
            "{} servers are named {name_or_id:?}; name one by its id",
            many.len()
        ),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The terminal's settings before raw mode, put back when dropped.
struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(&stdin) {
            return Self(None);
        }
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return Self(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        if rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, &raw)
            .is_err()
        {
            return Self(None);
        }
        Self(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// Attaches this terminal to the serial console of `server` until Ctrl-], the console's end
/// or SIGTERM/SIGHUP.
pub async fn run(cfg: &Config, server: &str, credentials: Option<PathBuf>) -> Result<()> {
    let creds = credentials.unwrap_or_else(|| cfg.data_dir.join("admin-openrc"));
    let vars = read_openrc(&creds)?;
    let api = Endpoint::of(cfg, &vars, &creds)?;
    let token = sign_in(&api, &vars, &creds).await?;
    let (id, name) = find_server(&api, &token, server).await?;
    let (status, _, body) = api
        .call(
            "POST",
            &format!("/compute/v2.1/servers/{id}/remote-consoles"),
            Some(&token),
            Some(&json!({"remote_console": {"protocol": "serial", "type": "serial"}})),
        )
        .await?;
    if status != 200 {
        return Err(fault("asking for the serial console", status, &body));
    }
    let url = body["remote_console"]["url"]
        .as_str()
        .context("no console URL in the answer")?;
    let console_token = url
        .split_once("token=")
        .map(|(_, t)| t.split('&').next().unwrap_or(t))
        .context("no token in the console URL")?;
    let scheme = if api.tls.is_some() { "wss" } else { "ws" };
    let request = format!(
        "{scheme}://{}/console/serial?token={console_token}",
        api.authority
    )
    .into_client_request()?;
    let stream = api.connect().await?;
    let (ws, _) = match tokio_tungstenite::client_async(request, stream).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let why = r
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default();
            bail!("the console refused the session: {} {why}", r.status());
        }
        Err(e) => return Err(e).context("opening the console's websocket"),
    };
    let shown = if name.is_empty() {
        id.clone()
    } else {
        format!("{name} ({id})")
    };
    eprint!("Connected to the serial console of {shown}. Ctrl-] leaves.\r\n");
    let raw = RawMode::enter();
    let ended = relay(ws).await;
    drop(raw);
    eprint!("\r\nLeft the serial console of {shown}.\r\n");
    ended
}

async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    ws: tokio_tungstenite::WebSocketStream<S>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut tx, mut rx) = ws.split();
    // A thread of its own reads the terminal: a blocking read left pending must not hold the
    // runtime's shutdown (the process ends with it).
    let (keys_tx, mut keys) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if keys_tx.blocking_send(buf[..n].to_vec()).is_err() || n == 0 {
                return;
            }
        }
    });
    let mut stdout = std::io::stdout();
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut stdin_open = true;
    loop {
        tokio::select! {
            got = keys.recv(), if stdin_open => {
                let buf = got.unwrap_or_default();
                if buf.is_empty() {
                    // Input ended (not a terminal): keep showing the console until it ends.
                    stdin_open = false;
                    continue;
                }
                let (keys, leave) = match buf.iter().position(|&b| b == ESCAPE) {
                    Some(i) => (&buf[..i], true),
                    None => (&buf[..], false),
                };
                if !keys.is_empty() {
                    tx.send(Message::Binary(bytes::Bytes::copy_from_slice(keys))).await?;
                }
                if leave {
                    let _ = tx.send(Message::Close(None)).await;
                    return Ok(());
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    stdout.write_all(&b)?;
                    stdout.flush()?;
                }
                Some(Ok(Message::Text(t))) => {
                    stdout.write_all(t.as_bytes())?;
                    stdout.flush()?;
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("the console's websocket"),
            },
            _ = term.recv() => return Ok(()),
            _ = hup.recv() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrc_values_are_read_as_the_shell_would() {
        let d = tempfile::tempdir().expect("dir");
        let p = d.path().join("admin-openrc");
        std::fs::write(
            &p,
            "# comment\nexport OS_USERNAME=admin\nexport OS_PASSWORD='it'\\''s'\nexport OS_PROJECT_NAME=\"admin\"\n",
        )
        .expect("write");
        let v = read_openrc(&p).expect("read");
        assert_eq!(v["OS_USERNAME"], "admin");
        assert_eq!(v["OS_PASSWORD"], "it's");
        assert_eq!(v["OS_PROJECT_NAME"], "admin");
    }

    #[test]
    fn answers_are_parsed_plain_and_chunked() {
        let (s, h, b) =
            parse_response(b"HTTP/1.1 201 Created\r\nX-Subject-Token: abc\r\nContent-Length: 9\r\n\r\n{\"a\": 1}\n")
                .expect("plain");
        assert_eq!(s, 201);
        assert!(h.contains(&("x-subject-token".into(), "abc".into())));
        assert_eq!(b["a"], 1);
        let (_, _, b) = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n4\r\n: 2}\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!(b["a"], 2);
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn names_are_matched_whole_and_literally() {
        assert_eq!(regex_escape("web.1"), "web\\.1");
        assert_eq!(percent_encode("^a b$"), "%5Ea%20b%24");
    }
}
