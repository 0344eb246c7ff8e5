//! Volume store shared by several proxy replicas: Redis sets per ledger, updated by one Lua
//! script. Redis runs a script atomically, so the check ("would the new individuals exceed a
//! cap?") and the add happen with no other replica in between: two replicas racing at a cap
//! never admit more than the cap. The script mirrors `ledger::check_and_add` exactly.
//!
//! Keys (all share the `{…}` hash tag of the prefix, so a cluster keeps them in one slot):
//! `PREFIX:YEAR:TRANSFER:all` and `:sens` (sets of 16-byte keyed hashes, never raw
//! identifiers), `:meta` (hash: first_seen, last_seen, caps) and `PREFIX:ledgers` (index set
//! of `YEAR:TRANSFER`, for `report`).
//!
//! The connection is made lazily and re-made after failures (`ConnectionManager`), so an
//! unreachable server never stops start-up or crashes the proxy: each claim meets the
//! configured outage mode instead.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, Script};
use tokio::sync::OnceCell;

use super::ledger::{distinct_subjects, Caps, EntityChange, Meta};
use super::{
    on_unavailable, Admission, EntityGuard, ReportFuture, UnavailableMode, VolumeClaim,
    VolumeError, VolumeFuture, VolumeOptions, VolumeRow, VolumeStore, ENTITY_LEDGER,
};

/// KEYS: per ledger `all`, `sens`, `meta`; then the index set.
/// ARGV: now, ledger count, per ledger (cap_all, cap_sensitive, index entry) with -1 for
/// "no cap"; then one argument per subject: 16 key bytes + `s` (sensitive) or `p`.
/// Returns `{0, cap, current, new}` on refusal, else `{1, then per ledger: all_before,
/// sensitive_before, new_all, new_sensitive}`.
const CHECK_AND_ADD: &str = r#"
local now = ARGV[1]
local nl = tonumber(ARGV[2])
local first_subject = 3 + 3 * nl
local keys, sens = {}, {}
for i = first_subject, #ARGV do
  local a = ARGV[i]
  keys[#keys + 1] = string.sub(a, 1, 16)
  sens[#sens + 1] = (string.sub(a, 17, 17) == 's')
end
local counts = {}
for l = 0, nl - 1 do
  local kall, ksens = KEYS[3 * l + 1], KEYS[3 * l + 2]
  local cap_all = tonumber(ARGV[3 + 3 * l])
  local cap_sens = tonumber(ARGV[4 + 3 * l])
  local cur_all = redis.call('SCARD', kall)
  local cur_sens = redis.call('SCARD', ksens)
  local new_all, new_sens = 0, 0
  for i = 1, #keys do
    if redis.call('SISMEMBER', kall, keys[i]) == 0 then new_all = new_all + 1 end
    if sens[i] and redis.call('SISMEMBER', ksens, keys[i]) == 0 then new_sens = new_sens + 1 end
  end
  if cap_all >= 0 and new_all > 0 and cur_all + new_all > cap_all then
    return {0, cap_all, cur_all, new_all}
  end
  if cap_sens >= 0 and new_sens > 0 and cur_sens + new_sens > cap_sens then
    return {0, cap_sens, cur_sens, new_sens}
  end
  counts[l + 1] = {cur_all, cur_sens, new_all, new_sens}
end
local out = {1}
for l = 0, nl - 1 do
  local kall, ksens, kmeta = KEYS[3 * l + 1], KEYS[3 * l + 2], KEYS[3 * l + 3]
  local c = counts[l + 1]
  -- Repeats only: nothing to add, and within the same second nothing to write.
  if c[3] > 0 or c[4] > 0 then
    for i = 1, #keys do
      redis.call('SADD', kall, keys[i])
      if sens[i] then redis.call('SADD', ksens, keys[i]) end
    end
  end
  local m = redis.call('HMGET', kmeta, 'last_seen', 'cap_all', 'cap_sensitive')
  if m[1] ~= now or m[2] ~= ARGV[3 + 3 * l] or m[3] ~= ARGV[4 + 3 * l] then
    redis.call('HSETNX', kmeta, 'first_seen', now)
    redis.call('HSET', kmeta, 'last_seen', now, 'cap_all', ARGV[3 + 3 * l], 'cap_sensitive', ARGV[4 + 3 * l])
    redis.call('SADD', KEYS[3 * nl + 1], ARGV[5 + 3 * l])
  end
  for j = 1, 4 do out[#out + 1] = c[j] end
end
return out
"#;

/// Volume store in Redis.
pub struct RedisStore {
    client: Client,
    conn: OnceCell<ConnectionManager>,
    script: Script,
    prefix: String,
    timeout: Duration,
    guard: EntityGuard,
    unavailable: UnavailableMode,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only host and port.
        let info = self.client.get_connection_info();
        f.debug_struct("RedisStore")
            .field("addr", &info.addr.to_string())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Validates the URL; connects on first use.
    pub fn open(url: &str, options: VolumeOptions) -> Result<RedisStore, VolumeError> {
        let client = Client::open(url).map_err(|e| VolumeError::BadUrl {
            url: redact(url),
            message: e.to_string(),
        })?;
        Ok(RedisStore {
            client,
            conn: OnceCell::new(),
            script: Script::new(CHECK_AND_ADD),
            prefix: options.redis_prefix,
            timeout: options.redis_timeout,
            guard: EntityGuard::new(options.guard),
            unavailable: options.unavailable,
        })
    }

    /// Entity-wide totals and watermark state (for metrics).
    pub fn guard(&self) -> &EntityGuard {
        &self.guard
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout)
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    fn key(&self, year: i32, ledger: &str, part: &str) -> String {
        format!("{}:{year}:{ledger}:{part}", self.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}:ledgers", self.prefix)
    }

    async fn check_and_add(
        &self,
        claim: &VolumeClaim,
        entity: Option<Caps>,
    ) -> redis::RedisResult<(Admission, Option<EntityChange>)> {
        let transfer_caps = Caps {
            all: claim.max_individuals,
            sensitive: claim.max_sensitive_individuals,
        };
        let mut ledgers = vec![(claim.transfer.as_str(), transfer_caps)];
        if let Some(caps) = entity {
            ledgers.push((ENTITY_LEDGER, caps));
        }
        let mut inv = self.script.prepare_invoke();
        for (name, _) in &ledgers {
            for part in ["all", "sens", "meta"] {
                inv.key(self.key(claim.year, name, part));
            }
        }
        inv.key(self.index_key());
        inv.arg(super::unix_seconds()).arg(ledgers.len());
        let cap = |c: Option<u64>| c.map_or(-1i64, |c| i64::try_from(c).unwrap_or(i64::MAX));
        for (name, caps) in &ledgers {
            inv.arg(cap(caps.all))
                .arg(cap(caps.sensitive))
                .arg(format!("{}:{name}", claim.year));
        }
        for subject in distinct_subjects(claim).iter() {
            let mut a = [0u8; 17];
            a[..16].copy_from_slice(&subject.key);
            a[16] = if subject.sensitive { b's' } else { b'p' };
            inv.arg(&a[..]);
        }
        let mut conn = self.connection().await?;
        let out: Vec<i64> = inv.invoke_async(&mut conn).await?;
        let bad = || {
            redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "unexpected reply from the check-and-add script",
            ))
        };
        let n = |i: usize| out.get(i).map(|v| *v as u64).ok_or_else(bad);
        if out.first() == Some(&0) {
            return Ok((
                Admission::CapExceeded {
                    cap: n(1)?,
                    current: n(2)?,
                    new_individuals: n(3)?,
                },
                None,
            ));
        }
        let admission = Admission::Admitted {
            new_individuals: n(3)?,
            total: n(1)? + n(3)?,
        };
        let change = if ledgers.len() == 2 {
            Some(EntityChange {
                year: claim.year,
                before: (n(5)?, n(6)?),
                after: (n(5)? + n(7)?, n(6)? + n(8)?),
            })
        } else {
            None
        };
        Ok((admission, change))
    }

    async fn read_report(&self, year: Option<i32>) -> redis::RedisResult<Vec<VolumeRow>> {
        let mut conn = self.connection().await?;
        let entries: Vec<String> = conn.smembers(self.index_key()).await?;
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some((y, name)) = entry.split_once(':') else {
                continue;
            };
            let Ok(y) = y.parse::<i32>() else { continue };
            if year.is_some_and(|want| want != y) {
                continue;
            }
            let all: u64 = conn.scard(self.key(y, name, "all")).await?;
            let sensitive: u64 = conn.scard(self.key(y, name, "sens")).await?;
            let meta: HashMap<String, i64> = conn.hgetall(self.key(y, name, "meta")).await?;
            let cap = |k: &str| meta.get(k).copied().filter(|c| *c >= 0).map(|c| c as u64);
            rows.push(super::memory::row(
                name,
                y,
                &Meta {
                    all,
                    sensitive,
                    first_seen: meta.get("first_seen").copied().unwrap_or(0),
                    last_seen: meta.get("last_seen").copied().unwrap_or(0),
                    caps: Caps {
                        all: cap("cap_all"),
                        sensitive: cap("cap_sensitive"),
                    },
                },
            ));
        }
        rows.sort_by(|a, b| (a.year, &a.transfer).cmp(&(b.year, &b.transfer)));
        Ok(rows)
    }
}

/// `redis://user:secret@host` → `redis://user:***@host` for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl VolumeStore for RedisStore {
    fn admit<'a>(&'a self, claim: &'a VolumeClaim) -> VolumeFuture<'a> {
        Box::pin(async move {
            let entity = self.guard.options().entity_for(&claim.transfer);
            let result =
                tokio::time::timeout(self.timeout, self.check_and_add(claim, entity)).await;
            match result {
                Ok(Ok((admission, change))) => {
                    if let Some(change) = &change {
                        self.guard.observe(change);
                    }
                    Ok(admission)
                }
                Ok(Err(e)) => on_unavailable(&self.guard, self.unavailable, "redis", e.to_string()),
                Err(_) => on_unavailable(
                    &self.guard,
                    self.unavailable,
                    "redis",
                    format!("no answer within {:?}", self.timeout),
                ),
            }
        })
    }

    fn report(&self, year: Option<i32>) -> ReportFuture<'_> {
        Box::pin(async move {
            self.read_report(year)
                .await
                .map_err(|e| VolumeError::Storage {
                    store: "redis",
                    message: e.to_string(),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("redis://app:hunter2@10.0.0.1:6379/0"),
            "redis://app:***@10.0.0.1:6379/0"
        );
        assert_eq!(super::redact("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }
}
