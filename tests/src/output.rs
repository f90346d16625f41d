//! A child process's output, kept in memory so a failure can show its tail.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex, PoisonError};

/// Everything a process wrote to the pipes given to [`Output::capture`], in arrival order.
#[derive(Clone, Debug, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    /// Appends what `pipe` yields, line by line, on a thread of its own (so the child never
    /// blocks on a full pipe).
    pub fn capture(&self, pipe: impl Read + Send + 'static) {
        let buffer = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = buffer.lock().unwrap_or_else(PoisonError::into_inner);
                text.push_str(&line);
                text.push('\n');
            }
        });
    }

    /// All of it so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Its last `lines` lines.
    pub fn tail(&self, lines: usize) -> String {
        kith_launch::tail(&self.text(), lines)
    }
}
