//! Async callers (feature `tokio`): run any store call on tokio's blocking pool, so an
//! fsync never stalls the async runtime's worker threads.

use super::Store;
use crate::error::{Error, Result};

impl Store {
    /// Runs `f` with a clone of this store on tokio's blocking thread pool and awaits it.
    /// Any edgestate call (or a whole [`Store::write`]) can run this way.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> edgestate::Result<()> {
    /// let store = edgestate::Store::in_memory()?;
    /// let version = store.run_blocking(|s| s.kv().put("bot", "state", b"armed", None)).await?;
    /// assert_eq!(version, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Whatever `f` returns; [`Error::Io`] when the runtime cancelled the task (it is
    /// shutting down). A panic in `f` is resumed in the caller.
    pub async fn run_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result,
            // The closure panicked (its transaction rolled back) or the runtime is
            // shutting down: resume the panic in the caller, as a direct call would.
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => Err(Error::Io {
                path: self.path().map(ToOwned::to_owned).unwrap_or_default(),
                source: std::io::Error::other(join),
            }),
        }
    }
}
