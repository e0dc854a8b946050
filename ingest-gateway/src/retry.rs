//! Waiting after failures, for the tasks that follow NATS (the key
//! registry, the ingest drain, the submit answerer): each opens its source
//! again and again until it can, and stops at shutdown.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Waits a little longer after each failure in a row (50 ms up to 2 s);
/// true if shutdown came first (the shutdown future must not be polled
/// again then).
pub(crate) async fn backoff(
    failures: u32,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let wait = Duration::from_millis((50 * u64::from(failures)).min(2000));
    tokio::select! {
        () = shutdown.as_mut() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

/// Calls `open` until it succeeds, with a [`backoff`] after each failure
/// and one warning per outage (saying `what` failed); `None` if shutdown
/// came first.
pub(crate) async fn open_until<T, Fut>(
    what: &str,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    mut open: impl FnMut() -> Fut,
) -> Option<T>
where
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut failures: u32 = 0;
    loop {
        let opened = tokio::select! {
            biased;
            () = shutdown.as_mut() => return None,
            opened = open() => opened,
        };
        match opened {
            Ok(source) => return Some(source),
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %format!("{e:#}"), "{what}");
                }
                if backoff(failures, shutdown).await {
                    return None;
                }
            }
        }
    }
}
