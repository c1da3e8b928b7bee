//! One call into a fresh instance, and how it ended: returned, or a
//! [`Failure`] (wall clock, CPU budget, memory, start, trap).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use wasmtime::{Store, Trap};

use super::bindings::{DelivererPre, DeliveryError, Message, PluginInfo as WitInfo, Receipt};
use super::host_api::State;
use super::journal::Journal;
use super::limits::Limits;
use super::pool::GuestPool;
use super::usage::{Metered, Usage};

pub(crate) enum Call {
    Describe,
    Validate(String),
    Deliver(Message),
}

pub(crate) enum Returned {
    Info(WitInfo),
    Validated(Result<(), String>),
    Delivered(Result<Receipt, DeliveryError>),
}

/// How a call ended when it did not return.
#[derive(Debug)]
pub(crate) enum Failure {
    WallTimeout,
    CpuBudget,
    Memory,
    /// Instantiation failed (e.g. every pool slot busy).
    Start(String),
    Trap(String),
}

impl Failure {
    /// A stable short id for metrics (`postern_plugin_failures_total`).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Failure::WallTimeout => "wall_timeout",
            Failure::CpuBudget => "cpu_budget",
            Failure::Memory => "memory",
            Failure::Start(_) => "start",
            Failure::Trap(_) => "trap",
        }
    }

    pub(crate) fn detail(&self, limits: &Limits) -> String {
        match self {
            Failure::WallTimeout => format!(
                "plugin exceeded the wall-clock timeout of {} ms (plugins.wall_timeout_ms)",
                limits.wall.as_millis()
            ),
            Failure::CpuBudget => format!(
                "plugin exceeded its CPU budget of {} ms (plugins.cpu_budget_ms)",
                limits.cpu_budget.as_millis()
            ),
            Failure::Memory => format!(
                "plugin exceeded its memory limit of {} bytes (plugins.memory_limit_bytes)",
                limits.memory_bytes
            ),
            Failure::Start(e) => format!("plugin could not start: {e}"),
            Failure::Trap(e) => format!("plugin trapped: {e}"),
        }
    }
}

pub(crate) struct Run {
    pub(crate) result: Result<Returned, Failure>,
    pub(crate) journal: Journal,
    pub(crate) usage: Usage,
}

/// What [`run_guest`] hands back: `Err(Elapsed)` for the wall clock, then
/// `(instantiating?, error)` for a failed call, and the store to read the
/// meters from.
type GuestOutcome = (Ended, Store<State>);
type Ended = Result<Result<Returned, (bool, wasmtime::Error)>, tokio::time::error::Elapsed>;

/// Runs `call` in `store`, bounded by every limit.
///
/// The guest starts on the caller's thread: most calls finish (or wait
/// on I/O) well within one epoch tick, and a hop to another thread pool
/// would cost more than the call (two cross-thread wake-ups, ~60 µs
/// here). A guest still computing at its first tick is CPU-bound; the
/// rest of its run moves to the guest pool, so spinning guests compete
/// with each other, never with request handling.
pub(crate) async fn run(
    store: Store<State>,
    pre: &DelivererPre<State>,
    call: Call,
    limits: &Limits,
    pool: &GuestPool,
) -> Run {
    let yielded = store.data().cpu.yielded.clone();
    let spent = Arc::new(AtomicU64::new(0));
    let guest = Metered::new(
        run_guest(store, pre.clone(), call, limits.wall),
        spent.clone(),
    );
    let mut guest = Box::pin(guest);
    let inline = std::future::poll_fn(|cx| match guest.as_mut().poll(cx) {
        Poll::Ready(done) => Poll::Ready(Some(done)),
        Poll::Pending if yielded.load(Ordering::Relaxed) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await;
    let finished = match inline {
        Some(done) => Ok(done),
        None => pool.spawn(guest).await,
    };
    let cpu = Duration::from_nanos(spent.load(Ordering::Relaxed));
    match finished {
        Ok((outcome, store)) => ended(outcome, &store, cpu),
        // The pool is shutting down (or the call panicked in the host).
        Err(e) => Run {
            usage: Usage {
                cpu,
                ..Usage::default()
            },
            ..Run::not_started(format!("plugin pool: {e}"), limits)
        },
    }
}

impl Run {
    /// A call that never reached the guest (e.g. its compiled code could
    /// not be loaded): a start failure, retried as transient.
    pub(crate) fn not_started(detail: String, limits: &Limits) -> Self {
        Run {
            result: Err(Failure::Start(detail)),
            journal: Journal::new(limits.max_log_bytes),
            usage: Usage::default(),
        }
    }
}

/// The call's result; for one that did not return, the meters say why.
fn ended(outcome: Ended, store: &Store<State>, cpu: Duration) -> Run {
    let state = store.data();
    let result = match outcome {
        Err(_) => Err(Failure::WallTimeout),
        Ok(Ok(r)) => Ok(r),
        Ok(Err((starting, e))) => Err(if state.cpu.exhausted {
            Failure::CpuBudget
        } else if state.limiter.exceeded {
            Failure::Memory
        } else if starting {
            Failure::Start(first_line(&e))
        } else {
            Failure::Trap(describe_trap(&e))
        }),
    };
    Run {
        result,
        journal: state.journal.clone(),
        usage: Usage {
            cpu,
            peak_memory_bytes: state.limiter.peak as u64,
            http_requests: state.egress.sent(),
        },
    }
}

/// Instantiates and calls: on the caller's thread, then (if CPU-bound) on
/// the guest pool; see [`run`].
async fn run_guest(
    mut store: Store<State>,
    pre: DelivererPre<State>,
    call: Call,
    wall: Duration,
) -> GuestOutcome {
    let work = async {
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| (true, e))?;
        let r = match &call {
            Call::Describe => instance.call_describe(&mut store).await.map(Returned::Info),
            Call::Validate(to) => instance
                .call_validate_recipient(&mut store, to)
                .await
                .map(Returned::Validated),
            Call::Deliver(m) => instance
                .call_deliver(&mut store, m)
                .await
                .map(Returned::Delivered),
        };
        r.map_err(|e| (false, e))
    };
    let outcome = tokio::time::timeout(wall, work).await;
    (outcome, store)
}

fn describe_trap(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "call stack exhausted (stack overflow)".to_string(),
        Some(t) => t.to_string(),
        None => first_line(e),
    }
}

/// The first line of the innermost cause: wasmtime errors carry multi-line
/// backtraces that do not belong in a delivery record.
pub(crate) fn first_line(e: &wasmtime::Error) -> String {
    let text = e.root_cause().to_string();
    text.lines().next().unwrap_or_default().trim().to_string()
}
