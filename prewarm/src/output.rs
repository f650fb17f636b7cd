//! Reading a worker's stdout and stderr into a [`LogCollector`], shared by warm workers and
//! oneshot runs.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::time::Instant;

use crate::logs::{LogCollector, LogStream};

const READ_CHUNK: usize = 32 * 1024;

/// One of a worker's output pipes, with its own read buffer; closed once it reached end of file.
#[derive(Debug)]
pub(crate) struct OutputPipe {
    receiver: Option<pipe::Receiver>,
    buffer: Box<[u8]>,
    stream: LogStream,
}

impl OutputPipe {
    pub fn new(fd: OwnedFd, stream: LogStream) -> std::io::Result<Self> {
        Ok(Self { receiver: Some(pipe::Receiver::from_owned_fd(fd)?), buffer: vec![0; READ_CHUNK].into(), stream })
    }

    /// Registers the pipe with the current runtime's reactor (see `Worker::rebind`); on failure
    /// it stays registered where it was.
    pub fn rebind(&mut self) -> std::io::Result<()> {
        if let Some(receiver) = &mut self.receiver {
            *receiver = pipe::Receiver::from_owned_fd(receiver.as_fd().try_clone_to_owned()?)?;
        }
        Ok(())
    }

    pub fn is_open(&self) -> bool {
        self.receiver.is_some()
    }

    /// Waits for output. Cancel-safe; pending forever once the pipe is closed, so it can sit in a
    /// `select!` next to other branches.
    pub async fn read(&mut self) -> std::io::Result<usize> {
        match &mut self.receiver {
            Some(receiver) => receiver.read(&mut self.buffer).await,
            None => std::future::pending().await,
        }
    }

    /// Takes the result of [`OutputPipe::read`]: bytes go to the collector, end of file closes.
    pub fn absorb(&mut self, read: std::io::Result<usize>, logs: &mut LogCollector) {
        match read {
            Ok(0) | Err(_) => self.receiver = None,
            Ok(count) => logs.push(self.stream, &self.buffer[..count]),
        }
    }

    /// Reads whatever is already in the pipe, without waiting.
    pub fn drain_ready(&mut self, logs: &mut LogCollector) {
        while let Some(receiver) = &self.receiver {
            match receiver.try_read(&mut self.buffer) {
                Ok(0) => self.receiver = None,
                Ok(count) => logs.push(self.stream, &self.buffer[..count]),
                Err(_) => break,
            }
        }
    }
}

/// After a process ended: reads both pipes to their end, but gives descendants that still hold
/// them open no more than `grace`.
pub(crate) async fn drain_until_eof(
    stdout: &mut OutputPipe,
    stderr: &mut OutputPipe,
    logs: &mut LogCollector,
    grace: Duration,
) {
    let give_up = Instant::now() + grace;
    while stdout.is_open() || stderr.is_open() {
        tokio::select! {
            read = stdout.read() => stdout.absorb(read, logs),
            read = stderr.read() => stderr.absorb(read, logs),
            _ = tokio::time::sleep_until(give_up) => return,
        }
    }
}
