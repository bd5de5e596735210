//! The PostgreSQL backend, chosen by a `postgres://` URL.
//!
//! It exists to show the contract on a real multi-client database, where two replicas of
//! the flush routine may send the same batch at once. The idempotency row is inserted
//! *first* in the transaction (`ON CONFLICT DO NOTHING`): a concurrent duplicate blocks on
//! that row until the first commits and then reads its stored answer, so a batch applies
//! exactly once. Writes are applied in key order to keep lock order stable across
//! transactions; deadlocks and serialization failures surface as a retryable 503.
//!
//! Write ids are claimed the same way, one `INSERT … ON CONFLICT DO NOTHING` into
//! `db_api_write_ids` per write, before the write itself: two batches with different ids
//! carrying one write, sent at once, serialize on that row, and the second finds it and
//! answers `duplicate`. Old write ids are pruned by a separate `DELETE` before the batch
//! transaction, so pruning never holds locks for the length of a batch.
//!
//! A few connections are kept open (no pool crate); a closed one is reopened on next use.
//! TLS is not supported: use it on loopback or a trusted network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_sync_contract::wire::{BatchResponse, ItemResult, ItemStatus, WriteOp};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::{
    forbidden_result, now_ms, to_i64, to_u64, Backend, BackendStats, BatchOutcome, BoxFuture,
    PlannedBatch, PlannedWrite, PruneClock, SeedItem, StoredItem,
};
use crate::error::BackendError;

/// Connections kept open.
const CONNECTIONS: usize = 4;

/// Rows per statement when seeding.
const SEED_CHUNK: usize = 5_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS db_api_items (
    ns          TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       JSONB,
    version     BIGINT  NOT NULL,
    written_at  BIGINT  NOT NULL,
    deleted     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS db_api_batches (
    batch_id    TEXT    PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    response    TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE TABLE IF NOT EXISTS db_api_write_ids (
    write_id    TEXT    PRIMARY KEY,
    applied_at  BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS db_api_write_ids_by_age ON db_api_write_ids (applied_at);
";

/// Makes sure an item has a row to lock: a tombstone at version 0 when it has none (every
/// write's version is above it).
const LOCKABLE_ROW: &str = "
INSERT INTO db_api_items (ns, key, value, version, written_at, deleted, updated_at)
VALUES ($1, $2, NULL, 0, 0, TRUE, $3)
ON CONFLICT (ns, key) DO NOTHING";

/// Reads an item's version and tombstone flag and locks its row until the transaction ends.
const LOCK_ROW: &str =
    "SELECT version, deleted FROM db_api_items WHERE ns = $1 AND key = $2 FOR UPDATE";

/// Gives back a write id claimed by a write that is then refused.
const UNCLAIM_WRITE_ID: &str = "DELETE FROM db_api_write_ids WHERE write_id = $1";

/// Claims a write id; no inserted row means it was received before.
const CLAIM_WRITE_ID: &str = "INSERT INTO db_api_write_ids (write_id, applied_at) VALUES ($1, $2)
ON CONFLICT (write_id) DO NOTHING";

const UPSERT: &str = "
INSERT INTO db_api_items AS items (ns, key, value, version, written_at, deleted, updated_at)
VALUES ($1, $2, CAST($3::text AS jsonb), $4, $5, $6, $7)
ON CONFLICT (ns, key) DO UPDATE SET
    value = EXCLUDED.value,
    version = EXCLUDED.version,
    written_at = EXCLUDED.written_at,
    deleted = EXCLUDED.deleted,
    updated_at = EXCLUDED.updated_at
WHERE EXCLUDED.version > items.version";

/// [`UPSERT`] without the version guard, for the `skip_write_guards` fault.
const OVERWRITE: &str = "
INSERT INTO db_api_items AS items (ns, key, value, version, written_at, deleted, updated_at)
VALUES ($1, $2, CAST($3::text AS jsonb), $4, $5, $6, $7)
ON CONFLICT (ns, key) DO UPDATE SET
    value = EXCLUDED.value,
    version = EXCLUDED.version,
    written_at = EXCLUDED.written_at,
    deleted = EXCLUDED.deleted,
    updated_at = EXCLUDED.updated_at";

/// PostgreSQL storage.
pub struct PostgresBackend {
    url: String,
    conns: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    prune: PruneClock,
}

/// Maps retryable database errors to [`BackendError::Transient`].
fn pg(e: tokio_postgres::Error) -> BackendError {
    match e.code() {
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            BackendError::Transient(e.to_string())
        }
        _ => BackendError::Postgres(e),
    }
}

async fn open_client(url: &str) -> Result<Client, BackendError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(pg)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("db-api: postgres connection closed: {e}");
        }
    });
    Ok(client)
}

/// The URL without its password, for display.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme_end + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl PostgresBackend {
    /// Connects and creates the tables if needed.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        let first = open_client(url).await?;
        first.batch_execute(SCHEMA).await.map_err(pg)?;
        let mut conns = vec![Mutex::new(Some(first))];
        conns.extend((1..CONNECTIONS).map(|_| Mutex::new(None)));
        Ok(Self {
            url: url.to_owned(),
            conns,
            next: AtomicUsize::new(0),
            prune: PruneClock::default(),
        })
    }

    /// A connection for exclusive use, reopened if it was closed.
    async fn client(&self) -> Result<MutexGuard<'_, Option<Client>>, BackendError> {
        let mut guard = None;
        for c in &self.conns {
            if let Ok(g) = c.try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
                self.conns[i].lock().await
            }
        };
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(open_client(&self.url).await?);
        }
        Ok(guard)
    }
}

/// Takes the client out of a guard returned by [`PostgresBackend::client`].
fn client_mut<'a>(
    guard: &'a mut MutexGuard<'_, Option<Client>>,
) -> Result<&'a mut Client, BackendError> {
    guard
        .as_mut()
        .ok_or_else(|| BackendError::Task("no postgres connection".into()))
}

impl Backend for PostgresBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn describe(&self) -> String {
        format!("postgres: {}", redact(&self.url))
    }

    fn get_item<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredItem>, BackendError>> {
        Box::pin(async move {
            let mut guard = self.client().await?;
            let client = client_mut(&mut guard)?;
            let row = client
                .query_opt(
                    "SELECT value::text, version, written_at, deleted FROM db_api_items WHERE ns = $1 AND key = $2",
                    &[&ns, &key],
                )
                .await
                .map_err(pg)?;
            row.map(|row| {
                let deleted: bool = row.try_get(3).map_err(pg)?;
                let value: Option<String> = row.try_get(0).map_err(pg)?;
                Ok(StoredItem {
                    value: if deleted { None } else { value },
                    version: to_u64(row.try_get(1).map_err(pg)?)?,
                    written_at: to_u64(row.try_get(2).map_err(pg)?)?,
                })
            })
            .transpose()
        })
    }

    fn apply_batch(
        &self,
        batch: PlannedBatch,
    ) -> BoxFuture<'_, Result<BatchOutcome, BackendError>> {
        Box::pin(async move {
            let mut guard = self.client().await?;
            let client = client_mut(&mut guard)?;
            let now = now_ms();
            let policy = batch.write_ids;
            if let Some(cutoff) = self.prune.due(now, policy.retention) {
                client
                    .execute(
                        "DELETE FROM db_api_write_ids WHERE applied_at < $1",
                        &[&cutoff],
                    )
                    .await
                    .map_err(pg)?;
            }
            let tx = client.transaction().await.map_err(pg)?;
            let claimed = tx
                .execute(
                    "INSERT INTO db_api_batches (batch_id, fingerprint, response, created_at)
                     VALUES ($1, $2, NULL, $3) ON CONFLICT (batch_id) DO NOTHING",
                    &[&batch.batch_id, &batch.fingerprint, &now],
                )
                .await
                .map_err(pg)?;
            if claimed == 0 {
                let row = tx
                    .query_one(
                        "SELECT fingerprint, response FROM db_api_batches WHERE batch_id = $1",
                        &[&batch.batch_id],
                    )
                    .await
                    .map_err(pg)?;
                let fingerprint: String = row.try_get(0).map_err(pg)?;
                let response: Option<String> = row.try_get(1).map_err(pg)?;
                tx.rollback().await.map_err(pg)?;
                if fingerprint != batch.fingerprint {
                    return Err(BackendError::IdempotencyMismatch(batch.batch_id));
                }
                let response = response
                    .ok_or_else(|| BackendError::Corrupt("stored batch without answer".into()))?;
                let response: BatchResponse = serde_json::from_str(&response)
                    .map_err(|e| BackendError::Corrupt(format!("stored answer: {e}")))?;
                return Ok(BatchOutcome {
                    response,
                    replayed: true,
                });
            }

            let mut results: Vec<Option<ItemResult>> = vec![None; batch.writes.len()];
            let mut order: Vec<usize> = Vec::with_capacity(batch.writes.len());
            for (i, planned) in batch.writes.iter().enumerate() {
                match planned {
                    PlannedWrite::Rejected(reason) => {
                        results[i] = Some(ItemResult {
                            status: ItemStatus::Rejected,
                            reason: Some(reason.clone()),
                        });
                    }
                    PlannedWrite::Write(_) | PlannedWrite::Forbidden { .. } => order.push(i),
                }
            }
            let key_of = |w: &PlannedWrite| match w {
                PlannedWrite::Write(w) => Some((w.ns.clone(), w.key.clone())),
                PlannedWrite::Forbidden { ns, key, .. } => Some((ns.clone(), key.clone())),
                PlannedWrite::Rejected(_) => None,
            };
            // Stable sort: duplicates of one key keep their request order.
            order.sort_by_cached_key(|&i| key_of(&batch.writes[i]));
            let claim = tx.prepare(CLAIM_WRITE_ID).await.map_err(pg)?;
            let unclaim = tx.prepare(UNCLAIM_WRITE_ID).await.map_err(pg)?;
            let upsert = tx
                .prepare(if policy.guarded { UPSERT } else { OVERWRITE })
                .await
                .map_err(pg)?;
            for i in order {
                if let PlannedWrite::Forbidden { write_id, .. } = &batch.writes[i] {
                    // Claimed and given back: a concurrent first claim is waited for.
                    let first = tx.execute(&claim, &[write_id, &now]).await.map_err(pg)? > 0;
                    if first {
                        tx.execute(&unclaim, &[write_id]).await.map_err(pg)?;
                    }
                    results[i] = Some(forbidden_result(!first, policy));
                    continue;
                }
                let PlannedWrite::Write(w) = &batch.writes[i] else {
                    continue;
                };
                if let Some(only_if) = &w.only_if {
                    // A row to lock even for an item never written: a tombstone below every
                    // version, gone again if the transaction rolls back.
                    tx.execute(LOCKABLE_ROW, &[&w.ns, &w.key, &now])
                        .await
                        .map_err(pg)?;
                    let row = tx.query_one(LOCK_ROW, &[&w.ns, &w.key]).await.map_err(pg)?;
                    let deleted: bool = row.try_get(1).map_err(pg)?;
                    let live = if deleted {
                        None
                    } else {
                        Some(to_u64(row.try_get(0).map_err(pg)?)?)
                    };
                    if !only_if.holds(live) {
                        return Err(BackendError::PreconditionFailed(format!(
                            "{}/{}",
                            w.ns, w.key
                        )));
                    }
                }
                let first = tx.execute(&claim, &[&w.write_id, &now]).await.map_err(pg)? > 0;
                if !first && policy.guarded {
                    results[i] = Some(ItemResult {
                        status: ItemStatus::Duplicate,
                        reason: None,
                    });
                    continue;
                }
                let deleted = w.op == WriteOp::Delete;
                let value = if deleted { None } else { w.value.as_deref() };
                let changed = tx
                    .execute(
                        &upsert,
                        &[
                            &w.ns,
                            &w.key,
                            &value,
                            &to_i64(w.version)?,
                            &to_i64(w.written_at)?,
                            &deleted,
                            &now,
                        ],
                    )
                    .await
                    .map_err(pg)?;
                results[i] = Some(ItemResult {
                    status: if changed > 0 {
                        ItemStatus::Applied
                    } else {
                        ItemStatus::Stale
                    },
                    reason: None,
                });
            }
            let results = results
                .into_iter()
                .map(|r| r.ok_or_else(|| BackendError::Corrupt("write without result".into())))
                .collect::<Result<Vec<_>, _>>()?;
            let response = BatchResponse { results };
            let text = serde_json::to_string(&response)
                .map_err(|e| BackendError::Corrupt(format!("answer: {e}")))?;
            tx.execute(
                "UPDATE db_api_batches SET response = $2 WHERE batch_id = $1",
                &[&batch.batch_id, &text],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(BatchOutcome {
                response,
                replayed: false,
            })
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<BackendStats, BackendError>> {
        Box::pin(async move {
            let mut guard = self.client().await?;
            let client = client_mut(&mut guard)?;
            let row = client
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM db_api_items WHERE NOT deleted),
                            (SELECT COUNT(*) FROM db_api_items WHERE deleted),
                            (SELECT COUNT(*) FROM db_api_batches),
                            (SELECT COUNT(*) FROM db_api_write_ids)",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(BackendStats {
                rows: to_u64(row.try_get(0).map_err(pg)?)?,
                tombstones: to_u64(row.try_get(1).map_err(pg)?)?,
                stored_batches: to_u64(row.try_get(2).map_err(pg)?)?,
                stored_write_ids: to_u64(row.try_get(3).map_err(pg)?)?,
            })
        })
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let mut guard = self.client().await?;
            let client = client_mut(&mut guard)?;
            client
                .batch_execute("TRUNCATE db_api_items, db_api_batches, db_api_write_ids")
                .await
                .map_err(pg)
        })
    }

    fn seed(&self, items: Vec<SeedItem>) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(async move {
            // One statement may not touch a row twice: keep the last item of each key.
            let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                last.insert((&item.ns, &item.key), i);
            }
            let mut keep: Vec<usize> = last.into_values().collect();
            keep.sort_unstable();

            let mut guard = self.client().await?;
            let client = client_mut(&mut guard)?;
            let tx = client.transaction().await.map_err(pg)?;
            let insert = tx
                .prepare(
                    "INSERT INTO db_api_items (ns, key, value, version, written_at, deleted, updated_at)
                     SELECT t.ns, t.key, CAST(t.v AS jsonb), t.ver, $5, FALSE, $5
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS t(ns, key, v, ver)
                     ON CONFLICT (ns, key) DO UPDATE SET
                         value = EXCLUDED.value, version = EXCLUDED.version,
                         written_at = EXCLUDED.written_at, deleted = FALSE,
                         updated_at = EXCLUDED.updated_at",
                )
                .await
                .map_err(pg)?;
            let now = now_ms();
            for chunk in keep.chunks(SEED_CHUNK) {
                let mut ns = Vec::with_capacity(chunk.len());
                let mut keys = Vec::with_capacity(chunk.len());
                let mut values = Vec::with_capacity(chunk.len());
                let mut versions = Vec::with_capacity(chunk.len());
                for &i in chunk {
                    let item = &items[i];
                    ns.push(item.ns.as_str());
                    keys.push(item.key.as_str());
                    values.push(item.value.as_str());
                    versions.push(to_i64(item.version)?);
                }
                tx.execute(&insert, &[&ns, &keys, &values, &versions, &now])
                    .await
                    .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(items.len() as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db.local:5432/cache"),
            "postgres://app@db.local:5432/cache"
        );
        assert_eq!(redact("postgres://localhost/x"), "postgres://localhost/x");
    }
}
