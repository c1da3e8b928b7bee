//! The threads of the plugin runtime: the epoch ticker that meters guest
//! CPU, and the guest pool CPU-bound guests run on.

use std::time::Duration;

use wasmtime::Engine;

/// Epoch tick: the granularity of the CPU budget.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// One thread per engine advances the epoch every [`TICK`]; it stops when
/// the engine is dropped.
pub(crate) fn spawn_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("postern-plugin-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}

/// The threads CPU-bound guest code runs on: a tokio runtime of its own, one
/// worker per core. Guests yield every [`TICK`], so plugins share these
/// threads fairly among themselves, and a tenant's spinning plugin takes CPU
/// from other plugins only, never from request handling, database replies or
/// built-in senders on the main runtime (on a shared runtime each of those
/// waited behind every spinning guest's slice).
pub(crate) struct GuestPool {
    handle: tokio::runtime::Handle,
    /// `Some` until dropped; shut down without waiting, as this may be dropped
    /// inside the main runtime.
    runtime: Option<tokio::runtime::Runtime>,
}

impl GuestPool {
    pub(crate) fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("postern-plugin")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on the pool. Dropping the returned future cancels it (a
    /// cancelled delivery stops its guest at the next yield).
    pub(crate) fn spawn<F>(&self, work: F) -> AbortOnDrop<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        AbortOnDrop(self.handle.spawn(work))
    }
}

impl Drop for GuestPool {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

pub(crate) struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
