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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use rand::SeedableRng;
use rand::rngs::StdRng;

use sha2::{Digest, Sha256};

use crate::answer;
use crate::calendar::Day;
use crate::clock::{Clock, UnixSeconds};
use crate::codes::{CodeHash, CodeOrder, Pepper, VerificationCode};
use crate::error::{AppError, Result};
use crate::guessing::{Guard, SourceTag};
use crate::pacing::AnswerFloor;
use crate::sealed::ResponseSealer;
use crate::storage::{CodeState, DayCounts, WriteTx, WriterStore};
use crate::upload::Upload;

/// Jobs waiting beyond this make handlers wait for room (back-pressure).
const QUEUE_LEN: usize = 8192;

enum Job {
    Publish {
        upload: Upload,
        source: SourceTag,
        sealed: Option<ResponseSealer>,
        reply: oneshot::Sender<(Result<Answer>, Instant)>,
    },
    IssueCodes {
        order: CodeOrder,
        issued_by: String,
        reply: oneshot::Sender<Result<Vec<VerificationCode>>>,
    },
}

/// How a publish was answered.
#[derive(Debug)]
pub enum Answer {
    /// A plain publish: the keys stored (or, for chaff, that would have been).
    Accepted(usize),
    /// A sealed publish: its sealed answer, whatever it says (a replay gets the
    /// first sending's answer again).
    Sealed(Vec<u8>),
}

/// How long sealed answers are kept for replays.
const SEALED_ANSWER_HOURS: u64 = 30 * 24;

/// Sends work to the writer thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    storage_full: Arc<AtomicBool>,
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
    /// Starts the writer thread on `store`. The thread ends when every `Writer` is dropped,
    /// after the jobs already sent are done.
    pub fn start(
        store: Box<dyn WriterStore>,
        pepper: Pepper,
        guard: Guard,
        clock: Clock,
        batch: usize,
        truncate_seconds: u64,
    ) -> Result<(Self, JoinHandle<()>)> {
        let (jobs, queue) = mpsc::channel(QUEUE_LEN);
        let storage_full = Arc::new(AtomicBool::new(false));
        let thread_storage_full = storage_full.clone();
        let thread = std::thread::Builder::new()
            .name("kith-writer".into())
            .spawn(move || {
                WriterThread {
                    store,
                    pepper,
                    guard,
                    clock,
                    rng: StdRng::from_entropy(),
                    truncate_seconds,
                    storage_full: thread_storage_full,
                    pruned_hour: 0,
                    floor: AnswerFloor::new(Instant::now()),
                }
                .run(queue, batch.max(1));
            })
            .map_err(|source| AppError::Io {
                path: "database writer thread".into(),
                source,
            })?;
        Ok((Self { jobs, storage_full }, thread))
    }

    /// Redeems the upload's code and stores its keys; a chaff upload is checked the
    /// same way, does the same look-up and (sealed) the same write of its answer, and
    /// waits for the same commit, but stores no keys. A sealed upload's answer,
    /// whatever it says, comes back sealed; server failures stay errors.
    pub async fn publish(
        &self,
        upload: Upload,
        source: SourceTag,
        sealed: Option<ResponseSealer>,
    ) -> Result<Answer> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Publish {
            upload,
            source,
            sealed,
            reply,
        })
        .await?;
        let (result, not_before) = answer.await.map_err(|_| AppError::Unavailable)?;
        tokio::time::sleep_until(not_before.into()).await;
        result
    }

    /// Creates codes, with the audit log's record that `issued_by` (a case worker, or
    /// the admin API) issued them, in the same transaction; they are returned only once
    /// that is committed.
    pub async fn issue_codes(
        &self,
        order: CodeOrder,
        issued_by: &str,
    ) -> Result<Vec<VerificationCode>> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::IssueCodes {
            order,
            issued_by: issued_by.to_owned(),
            reply,
        })
        .await?;
        answer.await.map_err(|_| AppError::Unavailable)?
    }

    /// Whether the last batch failed because the disk (or the database's size limit)
    /// is full.
    pub fn is_storage_full(&self) -> bool {
        self.storage_full.load(Ordering::Relaxed)
    }

    /// Whether the writer thread is still running.
    pub fn is_alive(&self) -> bool {
        !self.jobs.is_closed()
    }

    async fn send(&self, job: Job) -> Result<()> {
        self.jobs.send(job).await.map_err(|_| AppError::Unavailable)
    }
}

/// An answer to send once the batch is committed.
enum Reply {
    Published(
        oneshot::Sender<(Result<Answer>, Instant)>,
        Result<Answer>,
        Instant,
    ),
    Issued(
        oneshot::Sender<Result<Vec<VerificationCode>>>,
        Result<Vec<VerificationCode>>,
    ),
}

impl Reply {
    fn send(self) {
        // A requester that went away (client disconnected) needs no answer.
        match self {
            Self::Published(to, result, not_before) => drop(to.send((result, not_before))),
            Self::Issued(to, result) => drop(to.send(result)),
        }
    }

    fn fail(self, error: fn() -> AppError) {
        match self {
            Self::Published(to, _, not_before) => drop(to.send((Err(error()), not_before))),
            Self::Issued(to, _) => drop(to.send(Err(error()))),
        }
    }
}

struct WriterThread {
    store: Box<dyn WriterStore>,
    pepper: Pepper,
    guard: Guard,
    clock: Clock,
    rng: StdRng,
    /// `--truncate-window`: the granularity of stored key times.
    truncate_seconds: u64,
    storage_full: Arc<AtomicBool>,
    pruned_hour: u64,
    floor: AnswerFloor,
}

impl WriterThread {
    fn run(mut self, mut queue: mpsc::Receiver<Job>, batch: usize) {
        let mut jobs = Vec::with_capacity(batch);
        while queue.blocking_recv_many(&mut jobs, batch) > 0 {
            let started = Instant::now();
            let committed = self.commit_batch(&mut jobs, started);
            self.floor.observe(started.elapsed(), Instant::now());
            let replies = match committed {
                Ok(replies) => replies,
                Err(error) => {
                    let full = error.is_storage_full();
                    self.storage_full.store(full, Ordering::Relaxed);
                    let answer = if full {
                        tracing::error!(%error, "storage full; answering the batch with 503 storage_full");
                        || AppError::StorageFull
                    } else if error.is_database_unavailable() {
                        tracing::warn!(%error, "the database cannot be reached; answering the batch with 503 database_unavailable");
                        || AppError::DatabaseUnavailable
                    } else {
                        tracing::error!(%error, "write batch failed; answering its requests with 503");
                        || AppError::Unavailable
                    };
                    jobs.drain(..)
                        .map(Job::unanswered)
                        .for_each(|reply| reply.fail(answer));
                    continue;
                }
            };
            self.storage_full.store(false, Ordering::Relaxed);
            metrics::histogram!("kith_write_batch_size").record(replies.len() as f64);
            replies.into_iter().for_each(Reply::send);
        }
        tracing::info!("database writer stopped");
    }

    /// Runs all jobs in one transaction. A job that is refused (a bad code, a key
    /// too far from onset) decides so before it writes anything, so refusals need no
    /// rollback; a database error fails the whole batch, and the jobs stay in `jobs`.
    fn commit_batch(&mut self, jobs: &mut Vec<Job>, started: Instant) -> Result<Vec<Reply>> {
        // Every publish of the batch is answered at the same time, late enough to hide
        // how long the batch took (see `pacing`).
        let not_before = self.floor.release_at(started);
        let now = self.clock.now();
        let budget_before = self.guard.budget();
        let hour = now.get() / 3600;
        let Self {
            store,
            pepper,
            guard,
            rng,
            pruned_hour,
            truncate_seconds,
            ..
        } = self;
        // Rows are locked in one order by every server, so two batches never wait for each
        // other: the shared budget first (see below), then the codes by hash (the sort is
        // stable, and answers follow their jobs), then the day's figures.
        jobs.sort_by_cached_key(|job| job.code_hash(pepper));
        let mut outcomes = Vec::with_capacity(jobs.len());
        store.transaction(&mut |tx| {
            outcomes.clear();
            // A batch that may consult or spend the budget takes it before any code row,
            // as all servers left it.
            let budget_locked = jobs.iter().any(Job::uses_budget);
            if budget_locked {
                guard.resume(tx.lock_budget(guard.budget())?);
            }
            // The day's figures, written once per transaction (not per request, so that
            // a real publish costs no more than chaff).
            let mut counts = DayCounts::default();
            for job in jobs.iter() {
                let outcome = match job {
                    Job::Publish {
                        upload,
                        source,
                        sealed,
                        ..
                    } => {
                        let mut redemption = Redemption {
                            tx: &mut *tx,
                            counts: &mut counts,
                            guard: &mut *guard,
                            pepper,
                            rng: &mut *rng,
                            now,
                            truncate_seconds: *truncate_seconds,
                        };
                        Outcome::Published(match sealed {
                            None => redemption.publish(upload, *source).map(Answer::Accepted),
                            Some(sealer) => redemption.publish_sealed(upload, *source, sealer),
                        })
                    }
                    Job::IssueCodes {
                        order, issued_by, ..
                    } => Outcome::Issued(
                        issue_codes(&mut *tx, pepper, order, issued_by, now)
                            .inspect(|codes| counts.codes_issued += codes.len() as u64),
                    ),
                };
                outcomes.push(outcome.server_failure()?);
            }
            if !counts.is_empty() {
                tx.add_day_counts(Day::of(now), &counts)?;
            }
            // Only a locked budget is written (a refill alone need not be: the stored
            // state refills to the same), so no batch takes the budget row after its codes.
            if budget_locked && guard.budget() != budget_before {
                tx.store_budget(guard.budget())?;
            }
            if hour != *pruned_hour {
                tx.prune_sealed_answers(hour)?;
                *pruned_hour = hour;
            }
            Ok(())
        })?;
        Ok(jobs
            .drain(..)
            .zip(outcomes)
            .map(|(job, outcome)| job.answer(outcome, not_before))
            .collect())
    }
}

enum Outcome {
    Published(Result<Answer>),
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
    /// The hash of the code a real publish redeems, which orders the rows a batch locks.
    fn code_hash(&self, pepper: &Pepper) -> Option<[u8; 32]> {
        match self {
            Self::Publish { upload, .. } if !upload.fake => {
                Some(*upload.code.hash(pepper).as_bytes())
            }
            _ => None,
        }
    }

    /// Whether the job may consult or spend the guessing budget: every publish (chaff
    /// too, so that a batch of chaff costs what a batch of real publishes does).
    fn uses_budget(&self) -> bool {
        matches!(self, Self::Publish { .. })
    }

    fn answer(self, outcome: Outcome, not_before: Instant) -> Reply {
        match (self, outcome) {
            (Self::Publish { reply, .. }, Outcome::Published(result)) => {
                Reply::Published(reply, result, not_before)
            }
            (Self::IssueCodes { reply, .. }, Outcome::Issued(result)) => {
                Reply::Issued(reply, result)
            }
            (job, _) => job.unanswered(),
        }
    }

    fn unanswered(self) -> Reply {
        match self {
            Self::Publish { reply, .. } => {
                Reply::Published(reply, Err(AppError::Unavailable), Instant::now())
            }
            Self::IssueCodes { reply, .. } => Reply::Issued(reply, Err(AppError::Unavailable)),
        }
    }
}

fn reject(reason: &'static str, error: AppError) -> Result<usize> {
    metrics::counter!("kith_codes_rejected_total", "reason" => reason).increment(1);
    Err(error)
}

/// One publish's decisions inside the batch's transaction.
struct Redemption<'a> {
    tx: &'a mut dyn WriteTx,
    /// The transaction's daily figures, counted as they happen.
    counts: &'a mut DayCounts,
    guard: &'a mut Guard,
    pepper: &'a Pepper,
    rng: &'a mut StdRng,
    now: UnixSeconds,
    truncate_seconds: u64,
}

impl Redemption<'_> {
    /// A sealed publish: the stored answer if this body was sent before, else the
    /// answer sealed and stored for replays (chaff's too: the same write).
    fn publish_sealed(
        &mut self,
        upload: &Upload,
        source: SourceTag,
        sealer: &ResponseSealer,
    ) -> Result<Answer> {
        let id: [u8; 32] = Sha256::digest(sealer.enc()).into();
        if let Some(stored) = self.tx.find_sealed_answer(&id)? {
            return Ok(Answer::Sealed(stored));
        }
        let value = match self.publish(upload, source) {
            Ok(inserted) => answer::with_status(answer::accepted(inserted), 200),
            Err(error) if error.status().is_server_error() => return Err(error),
            Err(error) => answer::with_status(answer::refused(&error), error.status().as_u16()),
        };
        let sealed = sealer.seal(answer::padded(value).as_bytes(), self.rng);
        let expires_hour = self.now.get() / 3600 + SEALED_ANSWER_HOURS;
        self.tx.store_sealed_answer(&id, &sealed, expires_hour)?;
        Ok(Answer::Sealed(sealed))
    }

    fn failed(
        &mut self,
        source: SourceTag,
        reason: &'static str,
        error: AppError,
    ) -> Result<usize> {
        self.guard.failed(source, self.now);
        reject(reason, error)
    }

    fn already_used(&mut self, source: SourceTag) -> Result<usize> {
        self.failed(
            source,
            "used",
            AppError::Forbidden {
                code: "code_already_used",
                message: "the verification code was already used".into(),
            },
        )
    }

    fn publish(&mut self, upload: &Upload, source: SourceTag) -> Result<usize> {
        // Checked before anything else so that a refused source learns nothing about
        // its code from the answer.
        if let Err(e) = self.guard.check(source, self.now) {
            return reject("budget", e);
        }
        if upload.fake {
            // Chaff: the same look-up as a real upload, of a hash no code has, so its
            // time does not depend on whether the code it carries is valid.
            self.tx.find_code(&CodeHash::random(self.rng))?;
            upload.stored_keys(kith_core::ReportType::Unknown, None)?;
            return Ok(upload.len());
        }
        let code = match self.tx.find_code(&upload.code.hash(self.pepper))? {
            CodeState::Unknown => {
                return self.failed(
                    source,
                    "unknown",
                    AppError::Unauthorized {
                        code: "invalid_code",
                        message: "the verification code is not valid".into(),
                    },
                );
            }
            CodeState::Redeemed => return self.already_used(source),
            CodeState::Unused(code) if code.expires_at <= self.now => {
                return self.failed(
                    source,
                    "expired",
                    AppError::Forbidden {
                        code: "code_expired",
                        message: "the verification code has expired".into(),
                    },
                );
            }
            CodeState::Unused(code) => code,
        };
        // Keys that break the onset rule leave the code unused, so the person can retry.
        let keys = upload.stored_keys(
            code.diagnosis.report_type(),
            code.onset.map(|onset| onset.day),
        )?;
        if !self.tx.redeem_code(&code)? {
            // Another server redeemed it since the look-up.
            return self.already_used(source);
        }
        self.tx
            .insert_keys(&keys, self.now, self.truncate_seconds, self.rng)?;
        // Phones pad their visits already; a client that does not is padded here, so
        // the stored reports and the packages never show how many visits an upload had.
        let check_ins = kith_core::checkin::pad_upload(self.rng, upload.check_ins.clone());
        self.tx
            .insert_check_ins(&check_ins, self.now, self.truncate_seconds, self.rng)?;
        self.counts.codes_redeemed += 1;
        self.counts.keys_published += keys.len() as u64;
        metrics::counter!("kith_codes_redeemed_total").increment(1);
        metrics::counter!("kith_keys_accepted_total").increment(keys.len() as u64);
        Ok(keys.len())
    }
}

fn issue_codes(
    tx: &mut dyn WriteTx,
    pepper: &Pepper,
    order: &CodeOrder,
    issued_by: &str,
    now: UnixSeconds,
) -> Result<Vec<VerificationCode>> {
    let count = order.count as usize;
    let mut codes = Vec::with_capacity(count);
    let mut rng = rand_core::OsRng;
    // All at once (on PostgreSQL one statement for 10 000 codes); the few that collided
    // are drawn again.
    while codes.len() < count {
        let fresh: Vec<VerificationCode> = (codes.len()..count)
            .map(|_| VerificationCode::generate(&mut rng))
            .collect();
        let hashes: Vec<CodeHash> = fresh.iter().map(|code| code.hash(pepper)).collect();
        let stored = tx.insert_codes(&hashes, order, issued_by, now)?;
        codes.extend(
            fresh
                .into_iter()
                .zip(stored)
                .filter_map(|(code, stored)| stored.then_some(code)),
        );
    }
    metrics::counter!("kith_codes_issued_total").increment(codes.len() as u64);
    Ok(codes)
}
