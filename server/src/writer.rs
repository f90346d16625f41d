//! The one thread that writes the database, with group commit.
//!
//! Handlers send jobs over a channel. The writer takes every job waiting (up to the
//! batch size), runs them in one transaction, commits, and only then answers each
//! job. One commit (one WAL append, one fsync with `--durability full`) serves a
//! whole batch, and no request is acknowledged before its data is committed, so a
//! killed server never loses anything it acknowledged.
//!
//! Every decision about codes happens here, in order, so redeeming a code and
//! spending the guessing budget cannot race.

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, UnixSeconds};
use crate::codes::{CodeOrder, GuessBudget, Pepper, VerificationCode};
use crate::db;
use crate::error::{AppError, Result};
use crate::upload::Upload;

/// Jobs waiting beyond this make handlers wait for room (back-pressure).
const QUEUE_LEN: usize = 8192;

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

enum Job {
    Publish {
        upload: Upload,
        reply: oneshot::Sender<Result<usize>>,
    },
    IssueCodes {
        order: CodeOrder,
        reply: oneshot::Sender<Result<Vec<VerificationCode>>>,
    },
}

/// Sends work to the writer thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Publish { .. } => "Job::Publish",
            Self::IssueCodes { .. } => "Job::IssueCodes",
        })
    }
}

impl Writer {
    /// Starts the writer thread on `conn`, and a checkpointer on `checkpoint_conn` (a
    /// second connection to the same database) that copies the WAL back into the
    /// database file, so the writer never stalls on a checkpoint. Both threads end when
    /// every `Writer` is dropped, after the jobs already sent are done.
    pub fn start(
        conn: Connection,
        checkpoint_conn: Connection,
        pepper: Pepper,
        budget: GuessBudget,
        clock: Clock,
        batch: usize,
    ) -> Result<(Self, JoinHandle<()>)> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (jobs, queue) = mpsc::channel(QUEUE_LEN);
        let (stop_checkpoints, stopped) = std_mpsc::channel::<()>();
        let spawn_error = |source| AppError::Io {
            path: "database threads".into(),
            source,
        };
        std::thread::Builder::new()
            .name("kith-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(&checkpoint_conn, &stopped))
            .map_err(spawn_error)?;
        let thread = std::thread::Builder::new()
            .name("kith-writer".into())
            .spawn(move || {
                WriterThread {
                    conn,
                    pepper,
                    budget,
                    clock,
                }
                .run(queue, batch.max(1));
                drop(stop_checkpoints);
            })
            .map_err(spawn_error)?;
        Ok((Self { jobs }, thread))
    }

    /// Redeems the upload's code and stores its keys; a chaff upload is checked the
    /// same way and waits for the same commit, but touches nothing.
    /// Returns the number of keys accepted.
    pub async fn publish(&self, upload: Upload) -> Result<usize> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Publish { upload, reply }).await?;
        answer.await.map_err(|_| AppError::Unavailable)?
    }

    /// Creates codes; they are returned only once the batch holding them is committed.
    pub async fn issue_codes(&self, order: CodeOrder) -> Result<Vec<VerificationCode>> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::IssueCodes { order, reply }).await?;
        answer.await.map_err(|_| AppError::Unavailable)?
    }

    /// Whether the writer thread is still running.
    pub fn is_alive(&self) -> bool {
        !self.jobs.is_closed()
    }

    async fn send(&self, job: Job) -> Result<()> {
        self.jobs.send(job).await.map_err(|_| AppError::Unavailable)
    }
}

fn checkpoint_until_stopped(conn: &Connection, stopped: &std_mpsc::Receiver<()>) {
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        // PASSIVE never blocks the writer; what it cannot copy now it copies next time.
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; retrying");
        }
    }
}

/// An answer to send once the batch is committed.
enum Reply {
    Published(oneshot::Sender<Result<usize>>, Result<usize>),
    Issued(
        oneshot::Sender<Result<Vec<VerificationCode>>>,
        Result<Vec<VerificationCode>>,
    ),
}

impl Reply {
    fn send(self) {
        // A requester that went away (client disconnected) needs no answer.
        match self {
            Self::Published(to, result) => drop(to.send(result)),
            Self::Issued(to, result) => drop(to.send(result)),
        }
    }

    fn fail(self) {
        match self {
            Self::Published(to, _) => drop(to.send(Err(AppError::Unavailable))),
            Self::Issued(to, _) => drop(to.send(Err(AppError::Unavailable))),
        }
    }
}

struct WriterThread {
    conn: Connection,
    pepper: Pepper,
    budget: GuessBudget,
    clock: Clock,
}

impl WriterThread {
    fn run(mut self, mut queue: mpsc::Receiver<Job>, batch: usize) {
        let mut jobs = Vec::with_capacity(batch);
        while queue.blocking_recv_many(&mut jobs, batch) > 0 {
            let replies = match self.commit_batch(&mut jobs) {
                Ok(replies) => replies,
                Err(error) => {
                    tracing::error!(%error, "write batch failed; answering its requests with 503");
                    jobs.drain(..).map(Job::unanswered).for_each(Reply::fail);
                    continue;
                }
            };
            metrics::histogram!("kith_write_batch_size").record(replies.len() as f64);
            replies.into_iter().for_each(Reply::send);
        }
        tracing::info!("database writer stopped");
    }

    /// Runs all jobs in one transaction. A job that is refused (a bad code, a key
    /// too far from onset) decides so before it writes anything, so refusals need no
    /// rollback; a database error fails the whole batch, and the jobs stay in `jobs`.
    fn commit_batch(&mut self, jobs: &mut Vec<Job>) -> Result<Vec<Reply>> {
        let now = self.clock.now();
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs.iter() {
            let outcome = match job {
                Job::Publish { upload, .. } => {
                    Outcome::Published(publish(&tx, &mut self.budget, &self.pepper, upload, now))
                }
                Job::IssueCodes { order, .. } => {
                    Outcome::Issued(issue_codes(&tx, &self.pepper, order, now))
                }
            };
            outcomes.push(outcome.server_failure()?);
        }
        tx.commit()?;
        Ok(jobs
            .drain(..)
            .zip(outcomes)
            .map(|(job, outcome)| job.answer(outcome))
            .collect())
    }
}

enum Outcome {
    Published(Result<usize>),
    Issued(Result<Vec<VerificationCode>>),
}

impl Outcome {
    /// The error inside, if the server (not the request) failed; else the outcome.
    fn server_failure(self) -> Result<Self> {
        match self {
            Self::Published(Err(e)) | Self::Issued(Err(e)) if e.status().is_server_error() => {
                Err(e)
            }
            outcome => Ok(outcome),
        }
    }
}

impl Job {
    fn answer(self, outcome: Outcome) -> Reply {
        match (self, outcome) {
            (Self::Publish { reply, .. }, Outcome::Published(result)) => {
                Reply::Published(reply, result)
            }
            (Self::IssueCodes { reply, .. }, Outcome::Issued(result)) => {
                Reply::Issued(reply, result)
            }
            (job, _) => job.unanswered(),
        }
    }

    fn unanswered(self) -> Reply {
        match self {
            Self::Publish { reply, .. } => Reply::Published(reply, Err(AppError::Unavailable)),
            Self::IssueCodes { reply, .. } => Reply::Issued(reply, Err(AppError::Unavailable)),
        }
    }
}

fn reject(reason: &'static str, error: AppError) -> Result<usize> {
    metrics::counter!("kith_codes_rejected_total", "reason" => reason).increment(1);
    Err(error)
}

fn publish(
    tx: &Connection,
    budget: &mut GuessBudget,
    pepper: &Pepper,
    upload: &Upload,
    now: UnixSeconds,
) -> Result<usize> {
    // Checked before anything else so that, once the budget is spent, every
    // answer is the same whether the code is right or not.
    if let Err(e) = budget.check(now) {
        return reject("budget", e);
    }
    let hash = upload.code.hash(pepper);
    if upload.fake {
        // Chaff: the same work as a real upload, a look-up included, but no writes.
        db::find_code(tx, &hash)?;
        upload.stored_keys(kith_core::ReportType::Unknown, None)?;
        return Ok(upload.len());
    }
    let Some(code) = db::find_code(tx, &hash)? else {
        budget.spend(now);
        return reject(
            "unknown",
            AppError::Unauthorized {
                code: "invalid_code",
                message: "the verification code is not valid".into(),
            },
        );
    };
    if code.redeemed_at.is_some() {
        budget.spend(now);
        return reject(
            "used",
            AppError::Forbidden {
                code: "code_already_used",
                message: "the verification code was already used".into(),
            },
        );
    }
    if code.expires_at <= now {
        budget.spend(now);
        return reject(
            "expired",
            AppError::Forbidden {
                code: "code_expired",
                message: "the verification code has expired".into(),
            },
        );
    }
    // Keys that break the onset rule leave the code unused, so the person can retry.
    let keys = upload.stored_keys(
        code.diagnosis.report_type(),
        code.onset.map(|onset| onset.day),
    )?;
    db::redeem_code(tx, &code.hash, now)?;
    db::insert_keys(tx, &keys, now)?;
    metrics::counter!("kith_codes_redeemed_total").increment(1);
    metrics::counter!("kith_keys_accepted_total").increment(keys.len() as u64);
    Ok(keys.len())
}

fn issue_codes(
    tx: &Connection,
    pepper: &Pepper,
    order: &CodeOrder,
    now: UnixSeconds,
) -> Result<Vec<VerificationCode>> {
    let mut codes = Vec::with_capacity(order.count as usize);
    let mut rng = rand_core::OsRng;
    while codes.len() < order.count as usize {
        let code = VerificationCode::generate(&mut rng);
        if db::insert_code(tx, &code.hash(pepper), order, now)? {
            codes.push(code);
        }
    }
    metrics::counter!("kith_codes_issued_total").increment(codes.len() as u64);
    Ok(codes)
}
