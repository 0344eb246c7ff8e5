//! The TOML configuration model (serde). The schema is a promise to users: see
//! `shared/design/policy.md`. Fields may be added; none may be renamed or reinterpreted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `enforce` blocks; `monitor` decides and logs but always forwards.
    #[serde(default)]
    pub mode: Mode,
    /// IANA time zone whose calendar year and dates the policy uses (PIPL volumes count
    /// "since 1 January"; transfer validity dates are local dates).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub geo: GeoConfig,
    /// Static host → IP pins, consulted before DNS.
    #[serde(default)]
    pub resolve: BTreeMap<String, Vec<std::net::IpAddr>>,
    #[serde(default)]
    pub classification: ClassificationConfig,
    #[serde(default, rename = "transfer")]
    pub transfers: Vec<TransferConfig>,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub volume: VolumeConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    #[serde(default)]
    pub tls_intercept: Option<TlsInterceptConfig>,
    /// Custom detectors defined by the security team (issue: classifier).
    #[serde(default, rename = "detector")]
    pub detectors: Vec<CustomDetectorConfig>,
}

fn default_timezone() -> String {
    "Asia/Shanghai".to_string()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    /// Absolute-form requests (`GET http://host/…`) and CONNECT.
    Forward,
    /// Routes by Host and path prefix to configured upstreams.
    Reverse,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub bind: SocketAddr,
    pub kind: ListenerKind,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Host (without port) this route answers for; absent = any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix this route answers for; absent = "/".
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// `http://` or `https://` base URL of the upstream.
    pub upstream: String,
    /// Strip `path_prefix` before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// MaxMind GeoIP2/GeoLite2 Country/City or ip-location-db country `.mmdb`.
    #[serde(default = "default_geo_database")]
    pub database: PathBuf,
    /// A destination whose country cannot be determined is treated as abroad.
    #[serde(default = "yes")]
    pub unknown_is_outbound: bool,
    #[serde(default, rename = "override")]
    pub overrides: Vec<GeoOverride>,
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig {
            database: default_geo_database(),
            unknown_is_outbound: true,
            overrides: Vec::new(),
        }
    }
}

fn default_geo_database() -> PathBuf {
    PathBuf::from("config/geo/country.mmdb")
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeoOverride {
    pub cidr: IpNet,
    /// ISO 3166-1 alpha-2 code, e.g. "CN", "DE", "HK".
    pub country: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Uninspectable traffic to abroad is blocked.
    #[default]
    Closed,
    /// Uninspectable traffic to abroad is forwarded (and audited).
    Open,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassificationConfig {
    /// GB/T 35273-2020 treats a bare resident ID number as sensitive; GB/T 45574-2025 does not.
    #[serde(default = "yes")]
    pub id_number_is_sensitive: bool,
    /// Bodies larger than this (after decoding) are not inspected: the fail mode applies.
    #[serde(default = "default_max_inspect_bytes")]
    pub max_inspect_bytes: u64,
    #[serde(default)]
    pub fail_mode: FailMode,
    /// Hex key (32 bytes = 64 hex chars) for the keyed hash of identifiers. Absent: a
    /// random key per process (hashes then do not survive a restart).
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Maximum ratio decoded/encoded for compressed bodies before they count as a bomb.
    #[serde(default = "default_max_decompression_ratio")]
    pub max_decompression_ratio: u64,
}

impl Default for ClassificationConfig {
    fn default() -> Self {
        ClassificationConfig {
            id_number_is_sensitive: true,
            max_inspect_bytes: default_max_inspect_bytes(),
            fail_mode: FailMode::Closed,
            hash_key: None,
            max_decompression_ratio: default_max_decompression_ratio(),
        }
    }
}

fn default_max_inspect_bytes() -> u64 {
    16 * 1024 * 1024
}

fn default_max_decompression_ratio() -> u64 {
    100
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    SecurityAssessment,
    StandardContract,
    Certification,
    ExemptionContract,
    ExemptionHr,
    ExemptionEmergency,
    ExemptionSmallVolume,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    pub id: String,
    pub legal_basis: LegalBasis,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub recipient: Option<String>,
    /// Destination IP's country must be in this set (ISO alpha-2).
    pub countries: Vec<String>,
    /// Optional: request host must match one of these globs (`*.vendor.com`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Optional: destination IP must be inside one of these networks.
    #[serde(default)]
    pub cidrs: Vec<IpNet>,
    /// Categories this transfer may carry.
    pub categories: Vec<String>,
    #[serde(default)]
    pub allow_sensitive: bool,
    /// Inclusive, local date in `timezone`.
    #[serde(default)]
    pub valid_from: Option<NaiveDate>,
    /// Inclusive, local date in `timezone`.
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
    #[serde(default)]
    pub max_individuals_per_year: Option<u64>,
    #[serde(default)]
    pub max_sensitive_individuals_per_year: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON-lines file, appended to (see `batch_forwarded` for when lines are written).
    #[serde(default = "default_audit_path")]
    pub path: PathBuf,
    /// Also audit decisions about domestic destinations (off: only outbound is audited).
    #[serde(default)]
    pub include_domestic: bool,
    /// Rotate when the file would grow past this many bytes (0: never by size).
    #[serde(default = "default_audit_max_bytes")]
    pub max_bytes: u64,
    /// Also rotate at the first write of each new UTC day.
    #[serde(default)]
    pub rotate_daily: bool,
    /// Rotated files kept (`audit.jsonl.1` newest … `.N` oldest); older ones are deleted.
    #[serde(default = "default_audit_keep")]
    pub keep: usize,
    /// Lines of forwarded requests are gathered per connection worker and written with one
    /// `write` (see `batch_max_delay_ms`). Off: each line is written before its response
    /// leaves. Refusals and failures are written before their response either way.
    #[serde(default = "yes")]
    pub batch_forwarded: bool,
    /// With `batch_forwarded`: the longest a forwarded request's line waits in its worker's
    /// batch before the batch is written (sooner when it reaches 64 KiB). 0: at the end of
    /// every event-loop turn, microseconds after the responses left.
    #[serde(default = "default_audit_batch_max_delay_ms")]
    pub batch_max_delay_ms: u64,
}

impl AuditConfig {
    /// The most a batched line waits, at most [`AuditConfig::MAX_BATCH_DELAY_MS`].
    pub fn batch_max_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.batch_max_delay_ms.min(Self::MAX_BATCH_DELAY_MS))
    }

    /// The largest `batch_max_delay_ms` accepted: a line waits at most a second.
    pub const MAX_BATCH_DELAY_MS: u64 = 1000;
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: default_audit_path(),
            include_domestic: false,
            max_bytes: default_audit_max_bytes(),
            rotate_daily: false,
            keep: default_audit_keep(),
            batch_forwarded: true,
            batch_max_delay_ms: default_audit_batch_max_delay_ms(),
        }
    }
}

fn default_audit_batch_max_delay_ms() -> u64 {
    5
}

fn default_audit_max_bytes() -> u64 {
    256 * 1024 * 1024
}

fn default_audit_keep() -> usize {
    10
}

fn default_audit_path() -> PathBuf {
    PathBuf::from("var/audit.jsonl")
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Extra PEM CA bundle trusted for https upstreams (besides the webpki roots).
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// Connect timeout in milliseconds.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    /// `memory` (lost at restart), `redb` (embedded file), `redis` (shared by replicas).
    #[serde(default = "default_volume_backend")]
    pub backend: String,
    /// redb: database file (default `var/volume.redb`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// redis: `redis://host:port/db`.
    #[serde(default)]
    pub url: Option<String>,
    /// redb: how long an acknowledged claim may stay only in memory before it is durable.
    /// 0 (default): the decision waits for the commit, so a crash loses no counted individual.
    #[serde(default)]
    pub flush_window_ms: u64,
    /// What a claim gets when the store cannot answer; default: `classification.fail_mode`.
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
    /// redis: time allowed for one check-and-add round trip.
    #[serde(default = "default_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
    /// redis: key prefix (keep a `{hash tag}` so a cluster keeps one entity in one slot).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Entity-wide statutory guard (the 2024 Provisions' 10,000 / 100,000 / 1,000,000).
    #[serde(default)]
    pub guard: VolumeGuardConfig,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        VolumeConfig {
            backend: default_volume_backend(),
            path: None,
            url: None,
            flush_window_ms: 0,
            fail_mode: None,
            redis_timeout_ms: default_redis_timeout_ms(),
            key_prefix: None,
            guard: VolumeGuardConfig::default(),
        }
    }
}

fn default_redis_timeout_ms() -> u64 {
    2_000
}

/// `[volume.guard]`: year-to-date totals across all transfers vs the statutory thresholds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeGuardConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Refuse new individuals that would reach a threshold no legal basis on file covers.
    #[serde(default)]
    pub block_uncovered: bool,
    /// Share of a threshold at which a `warn` audit event is written.
    #[serde(default = "default_guard_warn")]
    pub warn: f64,
    /// Share of a threshold at which a `critical` audit event is written.
    #[serde(default = "default_guard_critical")]
    pub critical: f64,
}

impl Default for VolumeGuardConfig {
    fn default() -> Self {
        VolumeGuardConfig {
            enabled: true,
            block_uncovered: false,
            warn: default_guard_warn(),
            critical: default_guard_critical(),
        }
    }
}

fn default_guard_warn() -> f64 {
    0.8
}

fn default_guard_critical() -> f64 {
    0.95
}

fn default_volume_backend() -> String {
    "memory".to_string()
}

/// Limits on what one client may hold or send. Every default is safe for an internet-facing
/// listener; each exceeded limit gives an HTTP status and an audit event (see the proxy).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// A request head must arrive within this time (slowloris). Over HTTP/1.1 the timer also
    /// runs while a keep-alive connection waits for its next request. Exceeded: the
    /// connection is closed (no response can be framed) and audited as 408.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line plus headers), bytes. Exceeded: 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Concurrent client connections over all listeners. Exceeded: 503 and close.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most header fields in one request. Exceeded: 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Longest wait for the next piece of a request body. Exceeded: 408, upstream aborted.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Longest wait for the upstream's response head once the request was sent.
    /// Exceeded: 504.
    #[serde(default = "default_upstream_response_timeout_ms")]
    pub upstream_response_timeout_ms: u64,
    /// Concurrent HTTP/2 streams per client connection; more are refused (REFUSED_STREAM).
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            header_read_timeout_ms: default_header_read_timeout_ms(),
            max_header_bytes: default_max_header_bytes(),
            max_connections: default_max_connections(),
            max_headers: default_max_headers(),
            idle_timeout_ms: default_idle_timeout_ms(),
            body_read_timeout_ms: default_body_read_timeout_ms(),
            upstream_response_timeout_ms: default_upstream_response_timeout_ms(),
            max_concurrent_streams: default_max_concurrent_streams(),
        }
    }
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    10_000
}
// 100 is hyper's and nginx's practical ceiling; real clients send 10-30.
fn default_max_headers() -> usize {
    100
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_body_read_timeout_ms() -> u64 {
    30_000
}
fn default_upstream_response_timeout_ms() -> u64 {
    60_000
}
fn default_max_concurrent_streams() -> u32 {
    100
}

/// How the process serves connections.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Connection worker threads, each a single-threaded event loop that owns the
    /// connections handed to it (and their upstream connections). `0` (the default): one per
    /// CPU core. Read at start; a reload does not change it.
    #[serde(default)]
    pub workers: usize,
}

impl ServerConfig {
    /// The number of workers to start: the configured count, or one per core.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub bind: SocketAddr,
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsInterceptConfig {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Host globs tunnelled without interception.
    #[serde(default)]
    pub bypass: Vec<String>,
    /// Fail mode for tunnels whose content cannot be read (bypassed hosts, non-TLS bytes)
    /// when they go abroad; absent: `[classification] fail_mode`.
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
    /// Networks CONNECT may reach although they are link-local/metadata addresses or the
    /// proxy's own listeners (refused by default).
    #[serde(default)]
    pub allow_destinations: Vec<IpNet>,
    /// Hosts whose minted leaf certificates are cached (default 1024; 0 disables the cache).
    #[serde(default)]
    pub leaf_cache_size: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorConfig {
    /// New category identifier, e.g. "employee_id".
    pub category: String,
    /// "personal" or "sensitive".
    pub class: String,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Examples that must be detected; `chujing check` verifies them.
    #[serde(default)]
    pub must_match: Vec<String>,
    /// Examples that must not be detected; `chujing check` verifies them.
    #[serde(default)]
    pub must_not_match: Vec<String>,
}
