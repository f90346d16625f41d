//! Which scenario is running, for the output of scenarios run side by side in one process.

use std::future::Future;

tokio::task_local! {
    static NAME: &'static str;
}

/// Runs `scenario` as the scenario `name`: the [`System`](crate::System)s it starts name
/// it in their step lines and failure reports.
pub async fn named<F: Future>(name: &'static str, scenario: F) -> F::Output {
    NAME.scope(name, scenario).await
}

/// The name of the scenario running on this task, if [`named`] gave it one.
pub fn current() -> Option<&'static str> {
    NAME.try_with(|name| *name).ok()
}
