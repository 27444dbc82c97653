//! The daemon's settings: one typed tree, loaded from the defaults, then a TOML file, then the environment.
//!
//! The defaults live in exactly one place: `deploy/campaignd.example.toml`, which is compiled in, parsed as the first
//! layer, and printed by `campaignd config example`. A key that the example does not have is unknown, wherever it
//! comes from, and stops start-up with an error naming it. Values are parsed into domain types here, at load time, so
//! a bad value never fails later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use callbot_api::sign::{Algorithm, SecretKey};
use serde::Deserialize;
use toml::{Table, Value};

/// The commented example configuration, which is also the source of every default.
pub const EXAMPLE: &str = include_str!("../../../deploy/campaignd.example.toml");

/// The prefix of environment variables: `CAMPAIGND_<SECTION>__<KEY>`.
const ENV_PREFIX: &str = "CAMPAIGND_";

static CONFIG_PATH: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// Records the `--config` path given on the command line (main calls this once, before any command runs).
pub fn set_config_path(path: Option<PathBuf>) {
    let _ = CONFIG_PATH.set(path);
}

/// The whole settings tree.
#[derive(Debug, Clone)]
pub struct Settings {
    pub platform: PlatformSettings,
    pub store: StoreSettings,
    pub campaigns: CampaignsSettings,
    pub webhook: WebhookSettings,
    pub reconcile: ReconcileSettings,
    pub suppression: SuppressionSettings,
    /// `[caps] attempts`: per number, across every campaign.
    pub caps: Vec<campaign::CapRule>,
    /// `[contacts]`: how large a contacts (or suppression) file, a record and a row may be.
    pub contacts: campaign::ContactLimits,
}

/// `[suppression]`: the do-not-call files, watched like campaign files.
#[derive(Debug, Clone)]
pub struct SuppressionSettings {
    /// The directory of suppression CSV files (`suppress` beside the campaigns directory unless set).
    pub dir: PathBuf,
    /// For numbers written without a country code (a region code such as `US`).
    pub default_country: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PlatformSettings {
    pub base_url: url::Url,
    /// Empty when not configured; [`Settings::require_platform`] checks it for the commands that need it.
    pub uuid: String,
    pub secret_key: Option<SecretKey>,
    pub algorithm: Algorithm,
    pub requests_per_second: u32,
    /// Uploads or polls of one task in flight at once (1 to 64).
    pub requests_in_flight: usize,
    pub request_timeout: Duration,
    pub verify_responses: callbot_api::ResponseVerification,
    pub max_response_bytes: usize,
}

/// `[store]`. `Debug` shows the URL with every password replaced by `***` (see [`redact_store_url`]), so that
/// `campaignd config check` and logs never print it.
#[derive(Clone)]
pub struct StoreSettings {
    pub url: String,
    /// How long the ledger (platform actions, callbacks) is kept.
    pub ledger_retention: Duration,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &redact_store_url(&self.url))
            .field("ledger_retention", &self.ledger_retention)
            .finish()
    }
}

/// The query parameters and libpq keys whose values are secrets.
const PASSWORD_KEYS: &[&str] = &["password", "sslpassword"];

/// A store URL as it may be printed or logged: every password in it replaced by `***`, in each form PostgreSQL and
/// SQLite accept:
/// - the URL's user info: `postgres://user:secret@host/db` becomes `postgres://user:***@host/db` (also when the
///   password holds an unescaped `@`, `/` or `?`);
/// - `password` and `sslpassword` query parameters: `?sslmode=require&password=secret` becomes `…&password=***`;
/// - libpq's key/value form: `host=db password=secret` (or `password = 'a b'`) becomes `host=db password=***`.
///
/// `passfile` names a file and is kept.
pub fn redact_store_url(url: &str) -> String {
    if let Some(i) = url.find("://") {
        return redact_url(url, i + 3);
    }
    let looks_like_scheme = url.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if looks_like_scheme {
        redact_query(url, 0)
    } else {
        redact_key_values(url)
    }
}

/// `url` has an authority starting at byte `auth`.
fn redact_url(url: &str, auth: usize) -> String {
    let rest = &url[auth..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The user info ends at the last `@` of the authority; if the authority has none, a password holding a `/`, `?`
    // or `#` may have cut it short, so the last `@` anywhere is taken (a password is never shown, even if that hides
    // more than the password).
    let at = rest[..authority_end].rfind('@').or_else(|| rest.rfind('@'));
    let mut out = String::with_capacity(url.len());
    let mut query_from = auth;
    match at {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) if !userinfo[..colon].contains(['/', '?', '#']) => {
                    out.push_str(&url[..auth + colon + 1]);
                    out.push_str("***");
                }
                _ => out.push_str(&url[..auth + at]),
            }
            query_from = auth + at;
        }
        None => out.push_str(&url[..auth]),
    }
    out.push_str(&redact_query(&url[query_from..], 0));
    out
}

/// Replaces the values of password query parameters after the first `?` at or after `from`.
fn redact_query(url: &str, from: usize) -> String {
    let Some(q) = url[from..].find('?').map(|q| from + q + 1) else {
        return url.to_owned();
    };
    let (query, fragment) = match url[q..].find('#') {
        Some(h) => (&url[q..q + h], &url[q + h..]),
        None => (&url[q..], ""),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if PASSWORD_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) => {
                format!("{key}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    format!("{}{}{fragment}", &url[..q], params.join("&"))
}

/// libpq's `key=value` form: values are separated by white space, may have spaces around `=`, and may be quoted
/// with `'` (a backslash escapes the next character, quoted or not).
fn redact_key_values(conninfo: &str) -> String {
    let bytes = conninfo.as_bytes();
    let mut secrets = Vec::new();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_space(i);
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &conninfo[key_start..i];
        i = skip_space(i);
        if i >= bytes.len() || bytes[i] != b'=' {
            break;
        }
        i = skip_space(i + 1);
        let value_start = i;
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = i.min(bytes.len());
        }
        if PASSWORD_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            secrets.push(value_start..i);
        }
    }
    let mut out = String::with_capacity(conninfo.len());
    let mut last = 0;
    for r in secrets {
        out.push_str(&conninfo[last..r.start]);
        out.push_str("***");
        last = r.end;
    }
    out.push_str(&conninfo[last..]);
    out
}

#[derive(Debug, Clone)]
pub struct CampaignsSettings {
    pub dir: PathBuf,
    pub rescan_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub listen: SocketAddr,
    /// `None` when not configured.
    pub public_url: Option<url::Url>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served instead of `listen`; `None`: on `listen`.
    pub admin_listen: Option<SocketAddr>,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_clock_skew: Duration,
    pub stuck_after: Duration,
}

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    pub poll_interval: Duration,
    pub apply_delay: Duration,
    /// How long a replica's campaign lease lasts without renewal.
    pub lease_ttl: Duration,
}

/// The raw shape, as written in TOML; every field is present after the defaults layer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    platform: RawPlatform,
    store: RawStore,
    campaigns: RawCampaigns,
    webhook: RawWebhook,
    reconcile: RawReconcile,
    suppression: RawSuppression,
    caps: RawCaps,
    contacts: RawContacts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContacts {
    max_file_bytes: u64,
    max_record_bytes: usize,
    max_fields: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    attempts: Vec<RawCap>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCap {
    within: String,
    max: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuppression {
    dir: String,
    default_country: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    base_url: String,
    uuid: String,
    #[serde(default)]
    secret_key: Option<String>,
    secret_key_file: String,
    algorithm: String,
    requests_per_second: u32,
    requests_in_flight: usize,
    request_timeout: String,
    /// A mode name, or the boolean of earlier versions (see [`verify_responses`]).
    verify_responses: Value,
    max_response_bytes: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: String,
    url_file: String,
    ledger_retention: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaigns {
    dir: String,
    rescan_interval: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    listen: String,
    public_url: String,
    admin_listen: String,
    max_body_bytes: usize,
    header_read_timeout: String,
    body_read_timeout: String,
    max_connections: usize,
    max_clock_skew: String,
    stuck_after: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReconcile {
    poll_interval: String,
    apply_delay: String,
    lease_ttl: String,
}

impl Settings {
    /// Loads the settings the way every command does: `--config` (or `CAMPAIGND_CONFIG`), else `campaignd.toml` in
    /// the current directory if it exists; then the process environment.
    pub fn from_cli() -> anyhow::Result<Settings> {
        let explicit = CONFIG_PATH.get().cloned().flatten();
        let implicit = PathBuf::from("campaignd.toml");
        let file = match explicit {
            Some(p) => Some(p),
            None if implicit.exists() => Some(implicit),
            None => None,
        };
        Settings::load(file.as_deref(), std::env::vars())
    }

    /// Loads the defaults, then `file` if given, then the environment variables in `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        let mut table: Table = EXAMPLE
            .parse()
            .context("the built-in default configuration does not parse (a bug in campaignd)")?;
        // `secret_key` is documented but has no default, so it is not in the example: allow it explicitly.
        let allowed_extra = [("platform", "secret_key")];

        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            // The place and the message only: toml's own rendering quotes the whole line, which may hold a password.
            let layer: Table = text.parse().map_err(|e: toml::de::Error| {
                let (line, column) = line_col(&text, e.span().map_or(0, |s| s.start));
                anyhow!(
                    "{}:{line}:{column}: {}",
                    path.display(),
                    e.message().trim_end()
                )
            })?;
            merge(
                &mut table,
                layer,
                &allowed_extra,
                &format!("{}", path.display()),
            )?;
        }

        let mut env_layer = Table::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let section = section.to_ascii_lowercase();
            let key = key.to_ascii_lowercase();
            let default = table.get(&section).and_then(|t| t.get(&key));
            let value = env_value(&value, default);
            let section_table = env_layer
                .entry(section)
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(t) = section_table {
                t.insert(key, value);
            }
        }
        merge(&mut table, env_layer, &allowed_extra, "the environment")?;

        let raw: Raw = Raw::deserialize(Value::Table(table))
            .map_err(|e| anyhow!("invalid configuration: {e}"))?;
        Settings::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> anyhow::Result<Settings> {
        let p = raw.platform;
        let base_url = url::Url::parse(&p.base_url)
            .with_context(|| format!("[platform] base_url = {:?} is not a URL", p.base_url))?;
        let algorithm: Algorithm = p.algorithm.parse().map_err(|_| {
            anyhow!(
                "[platform] algorithm = {:?} is not supported: use \"md5\" or \"sha256\"",
                p.algorithm
            )
        })?;
        let secret_key = match (
            p.secret_key.filter(|s| !s.is_empty()),
            p.secret_key_file.as_str(),
        ) {
            (Some(_), f) if !f.is_empty() => {
                bail!("[platform] set either secret_key or secret_key_file, not both")
            }
            (Some(key), _) => Some(SecretKey::new(key)),
            (None, "") => None,
            (None, file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("[platform] secret_key_file: cannot read {file}"))?;
                let key = text.trim();
                if key.is_empty() {
                    bail!("[platform] secret_key_file: {file} is empty");
                }
                Some(SecretKey::new(key.to_string()))
            }
        };
        if p.requests_per_second == 0 {
            bail!("[platform] requests_per_second must be at least 1");
        }
        if !(1..=64).contains(&p.requests_in_flight) {
            bail!(
                "[platform] requests_in_flight must be from 1 to 64 (it is {}); 4 overlaps the store's work with \
                 the platform's, 1 sends one request at a time",
                p.requests_in_flight
            );
        }
        let listen: SocketAddr = raw.webhook.listen.parse().with_context(|| {
            format!(
                "[webhook] listen = {:?} is not an address like 0.0.0.0:8080",
                raw.webhook.listen
            )
        })?;
        let public_url = match raw.webhook.public_url.as_str() {
            "" => None,
            s => Some(
                url::Url::parse(s)
                    .with_context(|| format!("[webhook] public_url = {s:?} is not a URL"))?,
            ),
        };
        let admin_listen = match raw.webhook.admin_listen.as_str() {
            "" => None,
            s => Some(s.parse::<SocketAddr>().with_context(|| {
                format!("[webhook] admin_listen = {s:?} is not an address like 127.0.0.1:9090")
            })?),
        };
        if raw.webhook.max_body_bytes < 1024 {
            bail!(
                "[webhook] max_body_bytes = {} is too small for a callback: use at least 1024",
                raw.webhook.max_body_bytes
            );
        }
        if raw.webhook.max_connections == 0 {
            bail!("[webhook] max_connections must be at least 1");
        }
        let contacts = contact_limits(&raw.contacts)?;
        let rescan = duration(
            "[campaigns] rescan_interval",
            &raw.campaigns.rescan_interval,
        )?;
        Ok(Settings {
            contacts,
            platform: PlatformSettings {
                base_url,
                uuid: p.uuid,
                secret_key,
                algorithm,
                requests_per_second: p.requests_per_second,
                requests_in_flight: p.requests_in_flight,
                request_timeout: duration("[platform] request_timeout", &p.request_timeout)?,
                verify_responses: verify_responses(&p.verify_responses)?,
                max_response_bytes: max_response_bytes(p.max_response_bytes)?,
            },
            store: StoreSettings {
                url: store_url(raw.store.url, &raw.store.url_file)?,
                ledger_retention: duration(
                    "[store] ledger_retention",
                    &raw.store.ledger_retention,
                )?,
            },
            campaigns: CampaignsSettings {
                dir: PathBuf::from(&raw.campaigns.dir),
                rescan_interval: rescan,
            },
            webhook: WebhookSettings {
                listen,
                public_url,
                admin_listen,
                max_body_bytes: raw.webhook.max_body_bytes,
                header_read_timeout: duration(
                    "[webhook] header_read_timeout",
                    &raw.webhook.header_read_timeout,
                )?,
                body_read_timeout: duration(
                    "[webhook] body_read_timeout",
                    &raw.webhook.body_read_timeout,
                )?,
                max_connections: raw.webhook.max_connections,
                max_clock_skew: duration("[webhook] max_clock_skew", &raw.webhook.max_clock_skew)?,
                stuck_after: duration("[webhook] stuck_after", &raw.webhook.stuck_after)?,
            },
            reconcile: ReconcileSettings {
                poll_interval: duration("[reconcile] poll_interval", &raw.reconcile.poll_interval)?,
                apply_delay: duration("[reconcile] apply_delay", &raw.reconcile.apply_delay)?,
                lease_ttl: lease_ttl(&raw.reconcile.lease_ttl, rescan)?,
            },
            caps: raw
                .caps
                .attempts
                .iter()
                .map(|c| {
                    let within_secs = campaign::CapRule::parse_within(&c.within)
                        .map_err(|why| anyhow!("[caps] attempts: within {why}"))?;
                    if c.max == 0 {
                        bail!(
                            "[caps] attempts: max must be at least 1 (a cap of 0 would never dial)"
                        );
                    }
                    Ok(campaign::CapRule {
                        within_secs,
                        max: c.max,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            suppression: SuppressionSettings {
                dir: match raw.suppression.dir.as_str() {
                    "" => Path::new(&raw.campaigns.dir)
                        .parent()
                        .unwrap_or(Path::new("."))
                        .join("suppress"),
                    d => PathBuf::from(d),
                },
                default_country: match raw.suppression.default_country.trim() {
                    "" => None,
                    c => {
                        campaign::normalize_phone("+12025550143", Some(c)).map_err(|_| {
                            anyhow!("[suppression] default_country = {c:?} is not a region code such as \"US\"")
                        })?;
                        Some(c.to_owned())
                    }
                },
            },
        })
    }

    /// Checks the keys that talking to the platform needs, with an error saying how to set each missing one.
    pub fn require_platform(&self) -> anyhow::Result<(&str, &SecretKey)> {
        if self.platform.uuid.is_empty() {
            bail!(
                "[platform] uuid is not set: put it in campaignd.toml or set CAMPAIGND_PLATFORM__UUID (the console shows it under Developer)"
            );
        }
        let Some(secret) = &self.platform.secret_key else {
            bail!(
                "[platform] no secret key: set secret_key_file (recommended) or CAMPAIGND_PLATFORM__SECRET_KEY"
            );
        };
        Ok((&self.platform.uuid, secret))
    }
}

/// 1-based line and column (in characters) of a byte offset of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Deep-merges `layer` into `base`, refusing keys that `base` does not have.
fn merge(
    base: &mut Table,
    layer: Table,
    allowed_extra: &[(&str, &str)],
    origin: &str,
) -> anyhow::Result<()> {
    for (section, value) in layer {
        let Some(Value::Table(base_section)) = base.get_mut(&section) else {
            let known: Vec<&str> = base.keys().map(String::as_str).collect();
            bail!(
                "{origin}: unknown section [{section}]; the sections are {}",
                known.join(", ")
            );
        };
        let Value::Table(values) = value else {
            bail!("{origin}: `{section}` must be a section ([{section}]), not a value");
        };
        for (key, v) in values {
            let extra = allowed_extra.contains(&(section.as_str(), key.as_str()));
            if !extra && !base_section.contains_key(&key) {
                let known: Vec<&str> = base_section.keys().map(String::as_str).collect();
                bail!(
                    "{origin}: unknown key `{key}` in [{section}]; the keys there are {}",
                    known.join(", ")
                );
            }
            base_section.insert(key, v);
        }
    }
    Ok(())
}

/// An environment value takes the type of the key's default: a string key keeps the text as it is (so
/// `CAMPAIGND_WEBHOOK__LISTEN=8080` stays a string and gets a clear address error), other keys read it as a TOML value
/// (`20`, `true`), falling back to the text so the type error names the key.
fn env_value(raw: &str, default: Option<&Value>) -> Value {
    if matches!(default, None | Some(Value::String(_))) {
        return Value::String(raw.to_string());
    }
    let parsed: Result<Table, _> = format!("v = {raw}").parse();
    parsed
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

/// `[platform] verify_responses`: `"off"`, `"report"` or `"enforce"`. The boolean of earlier versions still loads,
/// `true` as `"enforce"` and `false` as `"off"`, also as the text `true`/`false` from the environment.
fn verify_responses(value: &Value) -> anyhow::Result<callbot_api::ResponseVerification> {
    use callbot_api::ResponseVerification::{Enforce, Off};
    let mode = match value {
        Value::Boolean(true) => Enforce,
        Value::Boolean(false) => Off,
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Enforce,
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Off,
        Value::String(s) => s.parse().map_err(|_| {
            anyhow!(
                "[platform] verify_responses = {s:?} is not a mode: use \"off\", \"report\" or \"enforce\""
            )
        })?,
        other => bail!(
            "[platform] verify_responses = {other} is not a mode: use \"off\", \"report\" or \"enforce\""
        ),
    };
    Ok(mode)
}

/// `[reconcile] lease_ttl`, at least twice `[campaigns] rescan_interval`: a replica renews its leases every third of
/// the lifetime, but only between reconcile passes; a lease that lapsed under a slow pass would let a second replica
/// act on the same campaign, so the lifetime keeps a margin of two full intervals.
fn lease_ttl(text: &str, rescan: Duration) -> anyhow::Result<Duration> {
    let ttl = duration("[reconcile] lease_ttl", text)?;
    if ttl < rescan * 2 {
        bail!(
            "[reconcile] lease_ttl = {text:?} is shorter than twice [campaigns] rescan_interval ({}s): \
             a live replica could lose its campaigns between two passes; use at least {}s",
            rescan.as_secs(),
            (rescan * 2).as_secs()
        );
    }
    Ok(ttl)
}

/// `[contacts]`, each bound at least large enough for an ordinary file: a smaller one would refuse valid contacts.
fn contact_limits(raw: &RawContacts) -> anyhow::Result<campaign::ContactLimits> {
    if raw.max_file_bytes < 1024 {
        bail!(
            "[contacts] max_file_bytes = {} is too small for a contacts file: use at least 1024",
            raw.max_file_bytes
        );
    }
    if raw.max_record_bytes < 256 {
        bail!(
            "[contacts] max_record_bytes = {} is too small for a contact row: use at least 256",
            raw.max_record_bytes
        );
    }
    if raw.max_fields < 2 {
        bail!(
            "[contacts] max_fields = {} cannot hold a phone and a name: use at least 2",
            raw.max_fields
        );
    }
    Ok(campaign::ContactLimits {
        max_file_bytes: raw.max_file_bytes,
        max_record_bytes: raw.max_record_bytes,
        max_fields: raw.max_fields,
    })
}

/// `[platform] max_response_bytes`, at least 64 KiB: below that even ordinary answers would be refused, and a
/// refused answer to a request that changes a task leaves its outcome unknown.
fn max_response_bytes(n: usize) -> anyhow::Result<usize> {
    const MIN: usize = 64 * 1024;
    if n < MIN {
        bail!(
            "[platform] max_response_bytes = {n} is too small for the platform's answers (listOrderDetail with \
             transcripts runs to megabytes): use at least {MIN}"
        );
    }
    Ok(n)
}

/// Parses `500ms`, `30s`, `5m`, `2h`.
/// The store URL: `[store] url`, or the content of `url_file` (a Kubernetes Secret or systemd credential holding a
/// URL with a password) when that is set.
fn store_url(url: String, url_file: &str) -> anyhow::Result<String> {
    if url_file.is_empty() {
        return Ok(url);
    }
    let text = std::fs::read_to_string(url_file)
        .with_context(|| format!("[store] url_file: cannot read {url_file}"))?;
    let url = text.trim();
    if url.is_empty() {
        bail!("[store] url_file: {url_file} is empty; put the store URL in it");
    }
    Ok(url.to_owned())
}

pub fn duration(what: &str, text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        anyhow!("{what} = {text:?} is not a duration like \"30s\", \"5m\" or \"500ms\"")
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86_400),
        _ => bail!("{what} = {text:?}: the unit must be ms, s, m, h or d"),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_come_from_the_example_file() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.store.url, "sqlite://campaignd.db");
        assert_eq!(s.platform.requests_per_second, 20);
        assert_eq!(s.platform.requests_in_flight, 4);
        assert_eq!(s.reconcile.apply_delay, Duration::from_secs(300));
        assert_eq!(s.platform.algorithm, Algorithm::Md5);
        assert!(s.platform.secret_key.is_none());
        assert!(s.webhook.public_url.is_none());
        assert_eq!(
            s.contacts,
            campaign::ContactLimits::default(),
            "the example's [contacts] are the reader's own defaults"
        );
    }

    #[test]
    fn requests_in_flight_is_bounded() {
        let load =
            |v: &str| Settings::load(None, env(&[("CAMPAIGND_PLATFORM__REQUESTS_IN_FLIGHT", v)]));
        assert_eq!(load("1").unwrap().platform.requests_in_flight, 1);
        assert_eq!(load("64").unwrap().platform.requests_in_flight, 64);
        for bad in ["0", "65"] {
            let e = load(bad).unwrap_err().to_string();
            assert!(e.contains("requests_in_flight must be from 1 to 64"), "{e}");
        }
    }

    #[test]
    fn the_lease_outlives_two_passes() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.reconcile.lease_ttl, Duration::from_secs(120));
        let s = Settings::load(None, env(&[("CAMPAIGND_RECONCILE__LEASE_TTL", "5m")])).unwrap();
        assert_eq!(s.reconcile.lease_ttl, Duration::from_secs(300));
        let e = Settings::load(None, env(&[("CAMPAIGND_RECONCILE__LEASE_TTL", "45s")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shorter than twice [campaigns] rescan_interval")
                && e.contains("at least 60s"),
            "{e}"
        );
    }

    #[test]
    fn contact_limits_are_settings_and_refuse_useless_values() {
        let s = Settings::load(
            None,
            env(&[
                ("CAMPAIGND_CONTACTS__MAX_FILE_BYTES", "2048"),
                ("CAMPAIGND_CONTACTS__MAX_RECORD_BYTES", "512"),
                ("CAMPAIGND_CONTACTS__MAX_FIELDS", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.contacts,
            campaign::ContactLimits {
                max_file_bytes: 2048,
                max_record_bytes: 512,
                max_fields: 4
            }
        );
        for (key, value, says) in [
            ("MAX_FILE_BYTES", "10", "max_file_bytes = 10 is too small"),
            (
                "MAX_RECORD_BYTES",
                "16",
                "max_record_bytes = 16 is too small",
            ),
            ("MAX_FIELDS", "1", "max_fields = 1 cannot hold"),
        ] {
            let e = Settings::load(None, env(&[(&format!("CAMPAIGND_CONTACTS__{key}"), value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("campaignd.toml");
        std::fs::write(
            &path,
            "[platform]\nuuid = \"file-uuid\"\nrequests_per_second = 5\n[store]\nurl = \"postgres://db/x\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&path),
            env(&[
                ("CAMPAIGND_PLATFORM__REQUESTS_PER_SECOND", "7"),
                ("CAMPAIGND_PLATFORM__SECRET_KEY", "s3cret"),
                ("CAMPAIGND_LOG_FORMAT", "json"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(s.platform.uuid, "file-uuid");
        assert_eq!(s.platform.requests_per_second, 7);
        assert_eq!(s.store.url, "postgres://db/x");
        let (_, secret) = s.require_platform().unwrap();
        assert_eq!(secret.expose(), "s3cret");
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "the secret leaked into Debug"
        );
    }

    #[test]
    fn the_store_url_can_come_from_a_file_and_the_webhook_limits_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db-url");
        std::fs::write(&file, "postgres://u:secret@db/x\n").unwrap();
        let s = Settings::load(
            None,
            env(&[
                ("CAMPAIGND_STORE__URL_FILE", file.to_str().unwrap()),
                ("CAMPAIGND_WEBHOOK__ADMIN_LISTEN", "127.0.0.1:9090"),
                ("CAMPAIGND_WEBHOOK__MAX_BODY_BYTES", "65536"),
            ]),
        )
        .unwrap();
        assert_eq!(s.store.url, "postgres://u:secret@db/x");
        assert_eq!(
            s.webhook.admin_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert_eq!(s.webhook.max_body_bytes, 65536);
        assert_eq!(s.webhook.header_read_timeout, Duration::from_secs(10));
        assert_eq!(
            s.caps,
            vec![
                campaign::CapRule {
                    within_secs: 86_400,
                    max: 3
                },
                campaign::CapRule {
                    within_secs: 30 * 86_400,
                    max: 4
                }
            ],
            "the default caps"
        );
        let s = Settings::load(
            None,
            env(&[("CAMPAIGND_CAPS__ATTEMPTS", "[{ within = \"1h\", max = 1 }]")]),
        )
        .unwrap();
        assert_eq!(
            s.caps,
            vec![campaign::CapRule {
                within_secs: 3600,
                max: 1
            }]
        );
        let err = Settings::load(
            None,
            env(&[("CAMPAIGND_CAPS__ATTEMPTS", "[{ within = \"1w\", max = 1 }]")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("[caps] attempts"), "{err:#}");
        let err = Settings::load(
            None,
            env(&[("CAMPAIGND_STORE__URL_FILE", "/nonexistent/db-url")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("[store] url_file"), "{err}");
        let err =
            Settings::load(None, env(&[("CAMPAIGND_WEBHOOK__ADMIN_LISTEN", "nope")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("[webhook] admin_listen"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let err = Settings::load(None, env(&[("CAMPAIGND_PLATFORM__UUUID", "x")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown key `uuuid` in [platform]"), "{msg}");
        let err = Settings::load(None, env(&[("CAMPAIGND_PLATFROM__UUID", "x")])).unwrap_err();
        assert!(
            err.to_string().contains("unknown section [platfrom]"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_stop_loading_with_the_key_named() {
        let err = Settings::load(None, env(&[("CAMPAIGND_RECONCILE__POLL_INTERVAL", "soon")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("[reconcile] poll_interval"),
            "{err}"
        );
        let err =
            Settings::load(None, env(&[("CAMPAIGND_PLATFORM__ALGORITHM", "sha1")])).unwrap_err();
        assert!(err.to_string().contains("md5"), "{err}");
        let err = Settings::load(None, env(&[("CAMPAIGND_WEBHOOK__LISTEN", "8080")])).unwrap_err();
        assert!(err.to_string().contains("[webhook] listen"), "{err}");
    }

    #[test]
    fn secret_key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "abc123\n").unwrap();
        let s = Settings::load(
            None,
            env(&[(
                "CAMPAIGND_PLATFORM__SECRET_KEY_FILE",
                path.to_str().unwrap(),
            )]),
        )
        .unwrap();
        assert_eq!(s.platform.secret_key.unwrap().expose(), "abc123");
    }

    #[test]
    fn missing_platform_keys_say_how_to_set_them() {
        let s = Settings::load(None, env(&[])).unwrap();
        let err = s.require_platform().unwrap_err().to_string();
        assert!(err.contains("CAMPAIGND_PLATFORM__UUID"), "{err}");
    }

    #[test]
    fn verify_responses_takes_a_mode_or_the_old_boolean() {
        use callbot_api::ResponseVerification::{Enforce, Off, Report};
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.platform.verify_responses, Report);
        for (text, want) in [
            ("enforce", Enforce),
            ("OFF", Off),
            ("true", Enforce),
            ("false", Off),
        ] {
            let s = Settings::load(None, env(&[("CAMPAIGND_PLATFORM__VERIFY_RESPONSES", text)]))
                .unwrap();
            assert_eq!(s.platform.verify_responses, want, "{text}");
        }
        // A file written for an earlier version, with the boolean.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("campaignd.toml");
        for (value, want) in [("true", Enforce), ("false", Off), ("\"report\"", Report)] {
            std::fs::write(&path, format!("[platform]\nverify_responses = {value}\n")).unwrap();
            let s = Settings::load(Some(&path), env(&[])).unwrap();
            assert_eq!(s.platform.verify_responses, want, "{value}");
        }
        let err = Settings::load(
            None,
            env(&[("CAMPAIGND_PLATFORM__VERIFY_RESPONSES", "maybe")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("[platform] verify_responses") && err.contains("enforce"),
            "{err}"
        );
    }

    #[test]
    fn max_response_bytes_defaults_to_the_clients_and_refuses_tiny_values() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(
            s.platform.max_response_bytes,
            callbot_api::DEFAULT_MAX_RESPONSE_BYTES
        );
        let s = Settings::load(
            None,
            env(&[("CAMPAIGND_PLATFORM__MAX_RESPONSE_BYTES", "1048576")]),
        )
        .unwrap();
        assert_eq!(s.platform.max_response_bytes, 1_048_576);
        let err = Settings::load(
            None,
            env(&[("CAMPAIGND_PLATFORM__MAX_RESPONSE_BYTES", "100")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[platform] max_response_bytes"), "{err}");
    }

    #[test]
    fn redacts_the_password_in_every_form_of_store_url() {
        let cases = [
            // URL user info.
            (
                "postgres://app:s3cret@db:5432/campaignd",
                "postgres://app:***@db:5432/campaignd",
            ),
            ("postgresql://:s3cret@db/x", "postgresql://:***@db/x"),
            ("postgres://app:p%40ss@db/x", "postgres://app:***@db/x"),
            ("postgres://app:pa@ss@db/x", "postgres://app:***@db/x"),
            ("postgres://app:pa/ss@db/x", "postgres://app:***@db/x"),
            ("postgres://app:pa?ss@db/x", "postgres://app:***@db/x"),
            ("postgres://app@db/x", "postgres://app@db/x"),
            ("postgres://db:5432/x", "postgres://db:5432/x"),
            // Query parameters.
            (
                "postgres://db/x?user=app&password=s3cret&sslmode=require",
                "postgres://db/x?user=app&password=***&sslmode=require",
            ),
            (
                "postgres://db/x?sslpassword=s3cret",
                "postgres://db/x?sslpassword=***",
            ),
            (
                "postgres://db/x?PASSWORD=s3cret#frag",
                "postgres://db/x?PASSWORD=***#frag",
            ),
            (
                "postgres://u:s3cret@db/x?password=s3cret",
                "postgres://u:***@db/x?password=***",
            ),
            (
                "postgres://db/x?passfile=/run/secrets/pgpass",
                "postgres://db/x?passfile=/run/secrets/pgpass",
            ),
            ("sqlite:x.db?password=s3cret", "sqlite:x.db?password=***"),
            // libpq key/value.
            (
                "host=db user=app password=s3cret dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            ("host=db password = s3cret", "host=db password = ***"),
            (
                "host=db password='a s3cret \\' b' dbname=x",
                "host=db password=*** dbname=x",
            ),
            ("password=s3\\ cret port=5432", "password=*** port=5432"),
            ("host=db sslpassword=s3cret", "host=db sslpassword=***"),
            ("password='s3cret unterminated", "password=***"),
            // Nothing secret.
            ("sqlite://campaignd.db", "sqlite://campaignd.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("campaignd.db", "campaignd.db"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_store_url(url), want, "{url}");
            assert!(!redact_store_url(url).contains("s3"), "{url}");
        }
    }

    #[test]
    fn config_check_output_never_shows_the_store_password() {
        for url in [
            "postgres://app:s3cret@db/x",
            "postgres://db/x?sslpassword=s3cret",
            "host=db password='s3 cret'",
        ] {
            let s = Settings::load(None, env(&[("CAMPAIGND_STORE__URL", url)])).unwrap();
            assert_eq!(s.store.url, url, "the real value is kept for connecting");
            // What `campaignd config check` prints.
            let shown = format!("{s:#?}");
            assert!(!shown.contains("s3"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
    }

    #[test]
    fn a_config_syntax_error_names_its_place_without_quoting_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("campaignd.toml");
        std::fs::write(&path, "[store]\nurl = \"postgres://app:s3cret@db/x\n").unwrap();
        let err = format!("{:#}", Settings::load(Some(&path), env(&[])).unwrap_err());
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains(&format!("{}:2:", path.display())), "{err}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(duration("x", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("x", "2h").unwrap(), Duration::from_secs(7200));
        assert!(duration("x", "5").is_err());
        assert!(duration("x", "m").is_err());
    }
}
