//! The differential conformance suite: every request case of `tests/conformance/cases/` is sent
//! to onebox as the same persona, after the same setup, and its answer is compared with what the
//! real Nova answered (`tests/conformance/fixtures/`, written by `record.py`): the status, the
//! media type, the microversion headers, the fault key, the body's shape (keys and JSON types,
//! recursively) and the values the case names as exact (fault messages and codes always).
//!
//! A case that differs must be listed, with its reason, in `known_differences.json`; an unlisted
//! difference fails the test, and so does a listed case that has started to match (the list
//! stays true). The pass ratio is printed:
//!
//! ```sh
//! cargo test -p api --test conformance_diff -- --nocapture
//! ```
//!
//! `CONFORMANCE_VERBOSE=1` prints what differs in the listed cases too; `CONFORMANCE_ONLY=prefix`
//! runs only the cases whose name starts with `prefix`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::http::Method;
use common::TestApp;
use serde_json::{Map, Value};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names and values that requests use as `{name}` and recorded values hold in their place.
type Vars = BTreeMap<String, Value>;

fn var_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces `{name}` in strings; a string that is only a placeholder takes the value itself.
fn subst(v: &Value, vars: &Vars) -> Value {
    match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}'))
                && let Some(val) = vars.get(name)
            {
                return val.clone();
            }
            let mut out = s.clone();
            for (name, val) in vars {
                out = out.replace(&format!("{{{name}}}"), &var_text(val));
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| subst(x, vars)).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| (k.clone(), subst(x, vars))).collect())
        }
        other => other.clone(),
    }
}

/// Replaces each occurrence of `val` in `s` that stands alone (after a space, quote, bracket,
/// slash or `=`; before a space, quote, bracket, slash or punctuation ending a sentence) by
/// `{name}`, as `record.py` does.
fn replace_bounded(s: &str, val: &str, name: &str) -> String {
    if val.is_empty() {
        return s.to_owned();
    }
    let starts = |c: char| c.is_whitespace() || "'\"([/=".contains(c);
    let ends = |c: char| c.is_whitespace() || "'\")]/,;:".contains(c);
    let mut out = String::new();
    let mut rest = s;
    let mut prev: Option<char> = None;
    while let Some(i) = rest.find(val) {
        let before = rest[..i].chars().next_back().or(prev);
        let after = &rest[i + val.len()..];
        let mut ac = after.chars();
        let (a0, a1) = (ac.next(), ac.next());
        let bounded_before = before.is_none_or(starts);
        let bounded_after = match a0 {
            None => true,
            Some('.') => !a1.is_some_and(|c| c.is_alphanumeric() || c == '_'),
            Some(c) => ends(c),
        };
        out.push_str(&rest[..i]);
        if bounded_before && bounded_after {
            out.push_str(&format!("{{{name}}}"));
        } else {
            out.push_str(val);
        }
        prev = val.chars().next_back();
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The reverse of [`subst`] for answered values: each variable's value becomes `{name}`.
fn unsubst(v: &Value, vars: &Vars, builtin: &[&str]) -> Value {
    match v {
        Value::String(s) => {
            let mut by_len: Vec<(&String, String)> =
                vars.iter().map(|(k, v)| (k, var_text(v))).collect();
            by_len.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
            let mut out = s.clone();
            for (name, val) in by_len {
                if out == val {
                    return Value::String(format!("{{{name}}}"));
                }
                out = replace_bounded(&out, &val, name);
            }
            Value::String(out)
        }
        Value::Number(_) => {
            for (name, val) in vars {
                if val == v && !builtin.contains(&name.as_str()) {
                    return Value::String(format!("{{{name}}}"));
                }
            }
            v.clone()
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| unsubst(x, vars, builtin)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), unsubst(x, vars, builtin)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The value at a dotted path (numbers index arrays), or `{"$absent": true}`.
fn at(body: &Value, path: &str) -> Value {
    let mut cur = body;
    for part in path.split('.') {
        let next = match cur {
            Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
            Value::Object(o) => o.get(part),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return serde_json::json!({"$absent": true}),
        }
    }
    cur.clone()
}

fn drop_path(v: &mut Value, path: &str) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = v;
    for p in &parts[..parts.len() - 1] {
        match cur.get_mut(*p) {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(o) = cur.as_object_mut() {
        o.remove(parts[parts.len() - 1]);
    }
}

/// Removes a dotted path (`*` is an array's element) from a shape.
fn drop_shape(v: &mut Value, path: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let next = match (head, &mut *v) {
        ("*", Value::Array(a)) => a.first_mut(),
        (_, Value::Object(o)) if rest.is_none() => {
            o.remove(head);
            None
        }
        (_, Value::Object(o)) => o.get_mut(head),
        _ => None,
    };
    if let (Some(n), Some(r)) = (next, rest) {
        drop_shape(n, r);
    }
}

/// Keys and JSON types, recursively; an array's elements are merged into one shape.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), shape(x))).collect()),
        Value::Array(a) => {
            let mut out: Option<Value> = None;
            for x in a {
                let s = shape(x);
                out = Some(match out {
                    Some(prev) => merge(&prev, &s),
                    None => s,
                });
            }
            Value::Array(out.into_iter().collect())
        }
        Value::Bool(_) => Value::from("boolean"),
        Value::Number(_) => Value::from("number"),
        Value::String(_) => Value::from("string"),
        Value::Null => Value::from("null"),
    }
}

fn merge(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = Map::new();
            for (k, v) in x.iter().chain(y.iter()) {
                let merged = match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => merge(p, q),
                    _ => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(x), Value::Array(y)) => match (x.first(), y.first()) {
            (Some(p), Some(q)) => Value::Array(vec![merge(p, q)]),
            _ => Value::Array(x.iter().chain(y.iter()).cloned().collect()),
        },
        (Value::String(x), Value::String(y)) => {
            let mut set: Vec<&str> = x.split('|').chain(y.split('|')).collect();
            set.sort_unstable();
            set.dedup();
            Value::from(set.join("|"))
        }
        _ => Value::from("mixed"),
    }
}

fn describe(s: &Value) -> String {
    match s {
        Value::Object(_) => "object".into(),
        Value::Array(_) => "array".into(),
        Value::String(t) => t.clone(),
        other => other.to_string(),
    }
}

/// What differs between Nova's shape and ours. An empty array matches any array (the oracle
/// has no compute host, onebox has one; lengths are data), and scalar types match when the
/// sets of types seen intersect (a field null in some elements and set in others).
fn shape_diff(path: &str, nova: &Value, ours: &Value, out: &mut Vec<String>) {
    match (nova, ours) {
        (Value::Object(n), Value::Object(o)) => {
            for k in n.keys() {
                let p = format!("{path}.{k}");
                match o.get(k) {
                    Some(v) => shape_diff(&p, &n[k], v, out),
                    None => out.push(format!("missing key {}", &p[1..])),
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.push(format!("extra key {}", &format!("{path}.{k}")[1..]));
            }
        }
        (Value::Array(n), Value::Array(o)) => {
            if let (Some(a), Some(b)) = (n.first(), o.first()) {
                shape_diff(&format!("{path}.*"), a, b, out);
            }
        }
        (Value::String(n), Value::String(o)) => {
            if n == "mixed" || o == "mixed" {
                return;
            }
            if !n.split('|').any(|t| o.split('|').any(|u| u == t)) {
                out.push(format!("{}: Nova {n}, onebox {o}", path_name(path)));
            }
        }
        _ => out.push(format!(
            "{}: Nova {}, onebox {}",
            path_name(path),
            describe(nova),
            describe(ours)
        )),
    }
}

fn path_name(path: &str) -> &str {
    if path.is_empty() {
        "(body)"
    } else {
        &path[1..]
    }
}

/// Nova's maximum microversion in recorded values, read as onebox's (a listed exception).
fn normalise_version(v: &Value, nova_max: &str, ours_max: &str) -> Value {
    match v {
        Value::String(s) => {
            Value::String(replace_bounded(s, nova_max, "\u{0}").replace("{\u{0}}", ours_max))
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| normalise_version(x, nova_max, ours_max))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), normalise_version(x, nova_max, ours_max)))
                .collect(),
        ),
        other => other.clone(),
    }
}

struct Suite {
    app: TestApp,
    tokens: BTreeMap<&'static str, String>,
    builtin: Vars,
    nova_max: String,
    ours_max: String,
}

impl Suite {
    async fn send(
        &self,
        persona: &str,
        method: &str,
        path: &str,
        version: Option<&str>,
        extra: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> common::Resp {
        let token = self
            .tokens
            .get(persona)
            .unwrap_or_else(|| panic!("unknown persona {persona}"));
        let mut h: Vec<(&str, &str)> = vec![("x-auth-token", token)];
        let v = version.map(|v| format!("compute {v}"));
        if let Some(v) = &v {
            h.push(("openstack-api-version", v));
        }
        for (k, val) in extra {
            h.push((k, val));
        }
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        self.app
            .call_raw(m, &format!("/compute{path}"), &h, body)
            .await
    }

    async fn step(&self, s: &Value, vars: &mut Vars, case: &str) {
        let path = var_text(&subst(&s["path"], vars));
        if path.contains('{') {
            println!("  {case}: step {path} skipped (unresolved)");
            return;
        }
        let body = s
            .get("body")
            .map(|b| subst(b, vars).to_string().into_bytes());
        let r = self
            .send(
                s["persona"].as_str().unwrap_or("admin"),
                s["method"].as_str().unwrap_or("GET"),
                &path,
                s["version"].as_str(),
                &[],
                body,
            )
            .await;
        if r.status.as_u16() >= 400 && s["method"] != "DELETE" {
            println!("  {case}: step {path} answered {}: {}", r.status, r.text);
        }
        save(s, &r.body, vars);
    }

    /// Sends one case and returns what differs from Nova's answer.
    async fn run(&self, case: &Value, nova: &Value, vars: &mut Vars) -> Vec<String> {
        let name = case["name"].as_str().expect("name");
        for s in case["setup"].as_array().into_iter().flatten() {
            self.step(s, vars, name).await;
        }
        let path = var_text(&subst(&case["path"], vars));
        let extra: Vec<(String, String)> = case["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.to_lowercase(), var_text(&subst(v, vars))))
            .collect();
        let body = match (case.get("raw"), case.get("body")) {
            (Some(raw), _) => Some(raw.as_str().expect("raw").as_bytes().to_vec()),
            (None, Some(b)) => Some(subst(b, vars).to_string().into_bytes()),
            _ => None,
        };
        let r = self
            .send(
                case["persona"].as_str().unwrap_or("admin"),
                case["method"].as_str().unwrap_or("GET"),
                &path,
                case["version"].as_str(),
                &extra,
                body,
            )
            .await;
        let diffs = self.compare(case, nova, &r, vars);
        save(case, &r.body, vars);
        for s in case["teardown"].as_array().into_iter().flatten() {
            self.step(s, vars, name).await;
        }
        diffs
    }

    fn norm(&self, v: &Value) -> Value {
        normalise_version(v, &self.nova_max, &self.ours_max)
    }

    fn compare(&self, case: &Value, nova: &Value, r: &common::Resp, vars: &Vars) -> Vec<String> {
        let mut d = Vec::new();
        if nova["status"] != r.status.as_u16() {
            d.push(format!(
                "status: Nova {}, onebox {}",
                nova["status"],
                r.status.as_u16()
            ));
        }
        let ctype = r
            .header("content-type")
            .map(|c| Value::from(c.split(';').next().unwrap_or("").trim().to_lowercase()))
            .unwrap_or(Value::Null);
        // A body-less answer's media type says nothing (Nova names JSON on its empty 202s).
        let empty = r.text.is_empty() && nova["body"] == "empty";
        if nova["content_type"] != ctype && !empty {
            d.push(format!(
                "content type: Nova {}, onebox {ctype}",
                nova["content_type"]
            ));
        }
        for h in ["openstack-api-version", "x-openstack-nova-api-version"] {
            let ours = r.header(h).map(Value::from).unwrap_or(Value::Null);
            let theirs = self.norm(&nova["headers"][h]);
            if theirs != ours {
                d.push(format!("header {h}: Nova {theirs}, onebox {ours}"));
            }
        }
        let kind = if r.text.is_empty() {
            "empty"
        } else if r.body.is_null() {
            "text"
        } else {
            "json"
        };
        if nova["body"] != kind {
            d.push(format!("body: Nova {}, onebox {kind}", nova["body"]));
            return d;
        }
        if kind == "text" {
            if nova["text"] != r.text.as_str() {
                d.push(format!("text: Nova {}, onebox {:?}", nova["text"], r.text));
            }
            return d;
        }
        if kind == "empty" {
            return d;
        }
        let fault = r
            .body
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            .filter(|(_, v)| v.get("message").is_some() && v.get("code").is_some())
            .map(|(k, _)| Value::from(k.clone()))
            .unwrap_or(Value::Null);
        if nova["fault"] != fault {
            d.push(format!("fault: Nova {}, onebox {fault}", nova["fault"]));
        }
        let mut theirs = nova["shape"].clone();
        let mut ours = shape(&r.body);
        for p in case["ignore_shape"].as_array().into_iter().flatten() {
            let p = p.as_str().expect("ignore_shape path");
            drop_shape(&mut theirs, p);
            drop_shape(&mut ours, p);
        }
        shape_diff("", &theirs, &ours, &mut d);
        let builtin: Vec<&str> = self.builtin.keys().map(String::as_str).collect();
        let ignore: Vec<&str> = case["ignore_values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (path, want) in nova["values"].as_object().into_iter().flatten() {
            if ignore.contains(&path.as_str()) {
                continue;
            }
            let mut got = at(&r.body, path);
            for ign in &ignore {
                if let Some(rest) = ign.strip_prefix(&format!("{path}.")) {
                    drop_path(&mut got, rest);
                }
            }
            let got = unsubst(&got, vars, &builtin);
            let want = self.norm(want);
            if got != want {
                d.push(format!("{path}: Nova {want}, onebox {got}"));
            }
        }
        d
    }
}

fn save(s: &Value, body: &Value, vars: &mut Vars) {
    for (name, path) in s["save"].as_object().into_iter().flatten() {
        let v = at(body, path.as_str().expect("save path"));
        if v.get("$absent").is_none() {
            vars.insert(name.clone(), v);
        }
    }
}

#[tokio::test]
async fn onebox_answers_as_nova_does() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (member_user, member_project, member) = app.user_with_role("conf-member", "member").await;
    let (other_user, other_project, other) = app.user_with_role("conf-other", "member").await;
    let tokens = BTreeMap::from([("admin", admin), ("member", member), ("other", other)]);
    let builtin: Vars = [
        ("member_project", member_project),
        ("member_user", member_user),
        ("other_project", other_project),
        ("other_user", other_user),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::from(v)))
    .collect();

    let known = load(&dir().join("known_differences.json"));
    let exceptions = &known["exceptions"]["max_microversion"];
    let ours_max = api::microversion::MAX_VERSION.to_string();
    assert_eq!(
        exceptions["onebox"], ours_max,
        "known_differences.json: exceptions.max_microversion.onebox is not onebox's maximum"
    );
    let suite = Suite {
        app,
        tokens,
        builtin,
        nova_max: exceptions["nova"].as_str().expect("nova max").to_owned(),
        ours_max,
    };
    let known_cases = known["cases"].as_object().expect("cases").clone();
    let only = std::env::var("CONFORMANCE_ONLY").unwrap_or_default();
    let verbose = std::env::var_os("CONFORMANCE_VERBOSE").is_some();

    let mut files: Vec<PathBuf> = std::fs::read_dir(dir().join("cases"))
        .expect("cases")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let (mut total, mut equal) = (0usize, 0usize);
    let mut drift = Vec::new();
    let mut stale = Vec::new();
    let mut seen = Vec::new();
    for file in files {
        let doc = load(&file);
        let fname = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let fixtures = load(&dir().join("fixtures").join(&fname));
        let recorded_max = fixtures["recorded_from"].as_str().unwrap_or("");
        assert!(
            recorded_max.contains(&suite.nova_max),
            "{fname}: recorded from {recorded_max}, the exception names Nova {}",
            suite.nova_max
        );
        let mut vars = suite.builtin.clone();
        for s in doc["setup"].as_array().into_iter().flatten() {
            suite.step(s, &mut vars, &fname).await;
        }
        for case in doc["cases"].as_array().expect("cases") {
            let name = case["name"].as_str().expect("name");
            seen.push(name.to_owned());
            if !name.starts_with(&only) {
                continue;
            }
            let nova = &fixtures["cases"][name];
            assert!(
                nova.is_object(),
                "{fname}: no fixture for {name}: run record.py"
            );
            let mut cvars = vars.clone();
            let diffs = suite.run(case, nova, &mut cvars).await;
            total += 1;
            match (diffs.is_empty(), known_cases.get(name)) {
                (true, None) => equal += 1,
                (true, Some(_)) => {
                    equal += 1;
                    stale.push(name.to_owned());
                }
                (false, Some(reason)) => {
                    if verbose {
                        println!("known  {name} ({reason}):");
                        for d in &diffs {
                            println!("         {d}");
                        }
                    }
                }
                (false, None) => {
                    println!("DRIFT  {name}:");
                    for d in &diffs {
                        println!("         {d}");
                    }
                    drift.push(name.to_owned());
                }
            }
        }
        for s in doc["teardown"].as_array().into_iter().flatten() {
            suite.step(s, &mut vars, &fname).await;
        }
    }
    let unknown: Vec<&String> = known_cases.keys().filter(|k| !seen.contains(k)).collect();
    println!(
        "conformance: {equal}/{total} cases equal to Nova ({:.1}%), {} known differences",
        100.0 * equal as f64 / total.max(1) as f64,
        total - equal
    );
    assert!(
        unknown.is_empty(),
        "known_differences.json names cases that do not exist: {unknown:?}"
    );
    assert!(
        stale.is_empty(),
        "these cases now answer as Nova does: remove them from known_differences.json: {stale:?}"
    );
    assert!(
        drift.is_empty(),
        "these cases differ from Nova and are not in known_differences.json: {drift:?}"
    );
}
