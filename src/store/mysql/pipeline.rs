//! Insert-only batches (see [`plan::insert_only`]: an initial sync) with the client's and the
//! server's work overlapped. A worker thread encodes the batch's rows and binds them into
//! statements of [`PIPELINE_ROWS`] rows, then binds the change records, and hands each statement
//! over as soon as it is ready; meanwhile the writer begins the transaction, advances the
//! revision and executes the statements in order, so the server inserts one statement's rows
//! while the worker encodes the next one's, and the batch's objects are dropped on the worker.
//!
//! The plan is made before anything is encoded, assuming no object is rejected. When the worker
//! finds one the database would refuse (see [`EncodedRow::new`]), or a key turns out to be stored
//! (`DUP_ENTRY`), the transaction is rolled back and the batch handed back, whole, to the
//! sequential path (`write::write`), which rejects such objects alone and looks keys up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sqlx::mysql::MySqlArguments;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::encode::EncodedRow;
use super::feed::{self, object_json};
use super::plan::{self, ChangeSource, PlanOp};
use super::sql;
use super::write::{UpsertSql, bind_row, keep_prepared};
use super::{MysqlStore, Table};
use crate::store::{ChangeType, MirrorObject, StoreError, WriteBatch, WriteOp, WriteOutcome};

/// Rows per upsert statement of a pipelined batch: a batch of 500 is five statements, the first
/// one ready after a fifth of the encoding. A round size, so the statement stays prepared.
pub(super) const PIPELINE_ROWS: usize = 100;

/// Statements the worker may have ready ahead of the writer.
const AHEAD: usize = 4;

/// One statement bound by the worker.
struct Bound {
    sql: String,
    args: MySqlArguments,
    persistent: bool,
    /// Inserts rows (a `DUP_ENTRY` means a key is stored).
    rows: bool,
}

/// What the worker hands the writer.
enum Piece {
    Statement(Bound),
    /// Every statement was handed over.
    Done,
    /// An object the database would refuse, or a statement that cannot be bound.
    Stop,
}

/// The batch's operations as planned: every one an upsert (checked by the caller), each
/// pointing at its own position.
pub(super) fn plan_ops(batch: &WriteBatch) -> Vec<PlanOp> {
    batch
        .ops
        .iter()
        .enumerate()
        .filter_map(|(row, op)| match op {
            WriteOp::Upsert(object) => Some(PlanOp::Upsert {
                key: (object.namespace.clone(), object.name.clone()),
                resource_version: object.resource_version.clone(),
                row,
            }),
            WriteOp::Delete { .. } => None,
        })
        .collect()
}

/// Writes an insert-only batch (`ops` from [`plan_ops`], all of them upserts). `Ok(Err(batch))`:
/// nothing was written, write the batch the sequential way.
pub(super) async fn write(
    store: &MysqlStore,
    table: &Arc<Table>,
    batch: WriteBatch,
    ops: &[PlanOp],
    statement_bytes: usize,
) -> Result<Result<WriteOutcome, WriteBatch>, StoreError> {
    let spec = &table.spec;
    let fail = |e| store.error(Some(spec), "cannot write a batch", e);
    let plan = plan::plan(ops, &HashMap::new());
    let count = plan.changes.len() as u64;
    let (revision_tx, revision_rx) = oneshot::channel();
    let (pieces_tx, mut pieces) = mpsc::channel(AHEAD);
    let epoch = batch.epoch;
    let worker = {
        let table = Arc::clone(table);
        let history = store.options.history;
        tokio::task::spawn_blocking(move || {
            let job = Job {
                table: &table,
                ops: &batch.ops,
                plan: &plan,
                epoch,
                statement_bytes,
                history,
            };
            job.run(revision_rx, &pieces_tx);
            batch.ops
        })
    };
    // The worker's first statement is being encoded meanwhile.
    let mut tx = store.pool.begin().await.map_err(fail)?;
    let after = feed::advance_revision(&mut tx, count).await.map_err(fail)?;
    let before = after - count;
    let _ = revision_tx.send(before);
    let give_back = |worker: JoinHandle<Vec<WriteOp>>| async move {
        worker
            .await
            .map(|ops| WriteBatch { ops, epoch })
            .map_err(|e| StoreError::Unavailable {
                message: format!("a batch's encoding failed: {e}"),
                source: None,
            })
    };
    // Once every row is in, the batch's objects are no longer needed (no fallback): they are
    // dropped (a millisecond for 500 Pods) while the server executes the next statement.
    let mut worker = Some(worker);
    loop {
        let Some(piece) = pieces.recv().await else {
            // The worker ended without saying so (it panicked): nothing is committed.
            return Err(StoreError::Unavailable {
                message: format!("a batch of {} was not encoded", table.name),
                source: None,
            });
        };
        let bound = match piece {
            Piece::Statement(bound) => bound,
            Piece::Done => break,
            Piece::Stop => {
                tx.rollback().await.map_err(fail)?;
                // Only a change record that cannot be bound stops the worker after the rows.
                let Some(worker) = worker.take() else {
                    return Err(StoreError::Unavailable {
                        message: format!("a batch of {} cannot be bound", table.name),
                        source: None,
                    });
                };
                return Ok(Err(give_back(worker).await?));
            }
        };
        let execute = sqlx::query_with(&bound.sql, bound.args)
            .persistent(bound.persistent)
            .execute(&mut *tx);
        let executed = match bound.rows {
            true => execute.await,
            false => tokio::join!(execute, reap(&mut worker)).0,
        };
        match executed {
            Ok(_) => {}
            Err(e) if bound.rows && sql::error_number(&e) == Some(sql::code::DUP_ENTRY) => {
                table.all_new.store(false, Ordering::Relaxed);
                drop(pieces);
                tx.rollback().await.map_err(fail)?;
                // Reaped only after the rows.
                let worker = worker
                    .take()
                    .expect("the worker is kept until the rows are in");
                return Ok(Err(give_back(worker).await?));
            }
            Err(e) => return Err(fail(e)),
        }
    }
    tokio::join!(tx.commit(), reap(&mut worker))
        .0
        .map_err(fail)?;
    let revision = before + count;
    store.committed(revision);
    Ok(Ok(WriteOutcome {
        revision,
        changed: count as usize,
    }))
}

/// Drops the batch's objects if the worker has finished (its first poll runs after the
/// statement it is joined with was sent).
async fn reap(worker: &mut Option<JoinHandle<Vec<WriteOp>>>) {
    if worker.as_ref().is_some_and(JoinHandle::is_finished)
        && let Some(worker) = worker.take()
    {
        drop(worker.await);
    }
}

/// The worker's part of a pipelined batch.
struct Job<'a> {
    table: &'a Table,
    ops: &'a [WriteOp],
    plan: &'a plan::Plan,
    epoch: u64,
    statement_bytes: usize,
    history: usize,
}

impl Job<'_> {
    fn object(&self, i: usize) -> &MirrorObject {
        match &self.ops[i] {
            WriteOp::Upsert(object) => object,
            WriteOp::Delete { .. } => unreachable!("pipelined batches only upsert"),
        }
    }

    /// Encodes and binds the batch's statements, handing each to `pieces`; stops early when the
    /// writer is gone.
    fn run(&self, revision: oneshot::Receiver<u64>, pieces: &mpsc::Sender<Piece>) {
        let last = match self.statements(revision, pieces) {
            Ok(true) => Piece::Done,
            Ok(false) => return,
            Err(()) => Piece::Stop,
        };
        let _ = pieces.blocking_send(last);
    }

    /// `Ok(false)`: the writer is gone. `Err(())`: an object is refused.
    fn statements(
        &self,
        revision: oneshot::Receiver<u64>,
        pieces: &mpsc::Sender<Piece>,
    ) -> Result<bool, ()> {
        let spec = &self.table.spec;
        // Change `n` (of the plan's changes) a row's object is read from: its key's last upsert.
        let mut lean: HashMap<usize, usize> =
            self.plan.upserts.iter().map(|&i| (i, usize::MAX)).collect();
        for (n, (change, source)) in self.plan.changes.iter().enumerate() {
            if let (ChangeType::Added | ChangeType::Modified, ChangeSource::Row(i)) =
                (change, source)
                && let Some(at) = lean.get_mut(i)
            {
                *at = n;
            }
        }
        let text = UpsertSql::new(spec, false);
        let per_statement = text.rows_per_statement.min(PIPELINE_ROWS);
        let mut revision = Some(revision);
        let mut before = 0;
        let mut rows: Vec<(EncodedRow, usize)> = Vec::with_capacity(per_statement);
        let mut bytes = 0;
        let upserts = &self.plan.upserts;
        for (k, &i) in upserts.iter().enumerate() {
            let object = self.object(i);
            let row = match EncodedRow::new(spec, object, self.statement_bytes) {
                Ok(row) => row,
                Err(_) => return Err(()),
            };
            let size = row.bytes();
            if !rows.is_empty() && bytes + size > self.statement_bytes {
                if !self.send_rows(&text, &mut rows, &mut revision, &mut before, pieces)? {
                    return Ok(false);
                }
                bytes = 0;
            }
            bytes += size;
            rows.push((row, lean[&i]));
            if rows.len() == per_statement || k + 1 == upserts.len() {
                if !self.send_rows(&text, &mut rows, &mut revision, &mut before, pieces)? {
                    return Ok(false);
                }
                bytes = 0;
            }
        }
        if revision.is_some() && !self.wait(&mut revision, &mut before) {
            return Ok(false);
        }
        let changes: Vec<(ChangeType, Option<String>)> = self
            .plan
            .changes
            .iter()
            .enumerate()
            .map(|(n, (change, source))| {
                let json = match source {
                    ChangeSource::Row(i) if lean.get(i) == Some(&n) => None,
                    ChangeSource::Row(i) => Some(object_json(self.object(*i))),
                    ChangeSource::Stored(_) => {
                        unreachable!("nothing is stored in a pipelined batch")
                    }
                };
                (*change, json)
            })
            .collect();
        let kind = spec.id();
        for (statement, lean) in
            feed::record_statements(&kind, before, &changes, self.statement_bytes, self.history)
        {
            let args = sql::arguments(&statement.params).map_err(|_| ())?;
            let bound = Bound {
                sql: statement.sql,
                args,
                persistent: lean,
                rows: false,
            };
            if pieces.blocking_send(Piece::Statement(bound)).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits for the revision the writer advanced from; `false`: the writer is gone.
    fn wait(&self, revision: &mut Option<oneshot::Receiver<u64>>, before: &mut u64) -> bool {
        match revision.take().map(oneshot::Receiver::blocking_recv) {
            Some(Ok(value)) => {
                *before = value;
                true
            }
            Some(Err(_)) => false,
            None => true,
        }
    }

    /// Binds `rows` (each with the change it backs) into one statement and hands it over.
    fn send_rows(
        &self,
        text: &UpsertSql,
        rows: &mut Vec<(EncodedRow, usize)>,
        revision: &mut Option<oneshot::Receiver<u64>>,
        before: &mut u64,
        pieces: &mpsc::Sender<Piece>,
    ) -> Result<bool, ()> {
        if !self.wait(revision, before) {
            return Ok(false);
        }
        let mut args = MySqlArguments::default();
        for (row, n) in rows.iter() {
            bind_row(&mut args, row, self.epoch, *before + 1 + *n as u64).map_err(|_| ())?;
        }
        let bound = Bound {
            sql: text.text(rows.len()),
            args,
            persistent: keep_prepared(rows.len()),
            rows: true,
        };
        rows.clear();
        Ok(pieces.blocking_send(Piece::Statement(bound)).is_ok())
    }
}
