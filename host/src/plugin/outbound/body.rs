//! Request and response bodies across the sandbox edge, both capped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::plugin::journal::Journal;

/// Largest request body a plugin may send.
pub(super) const MAX_REQUEST_BODY: u64 = 1 << 20;

/// A `Content-Length` that parses, if any.
pub(super) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The guest's whole request body (≤ [`MAX_REQUEST_BODY`]). Buffering it
/// keeps the guest's stream open until it has finished writing, whatever
/// the connection does, and gives hyper an exact length.
pub(super) async fn collect_body(mut body: WasiBody) -> Result<Bytes, HttpError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if (buf.len() + data.len()) as u64 > MAX_REQUEST_BODY {
                return Err(HttpError::HttpRequestBodySize(Some(
                    (buf.len() + data.len()) as u64,
                )));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// The provider's response body: capped at `max_http_response_bytes`, with
/// a between-bytes timeout.
pub(super) struct CappedResponseBody {
    inner: hyper::body::Incoming,
    seen: u64,
    limit: u64,
    between_bytes: Duration,
    timer: Pin<Box<Sleep>>,
    journal: Journal,
    shown: String,
    failed: bool,
}

impl CappedResponseBody {
    /// `shown`: the request's scheme, host and port, for the log.
    pub(super) fn new(
        inner: hyper::body::Incoming,
        limit: u64,
        between_bytes: Duration,
        journal: Journal,
        shown: String,
    ) -> Self {
        Self {
            inner,
            seen: 0,
            limit,
            between_bytes,
            timer: Box::pin(tokio::time::sleep(between_bytes)),
            journal,
            shown,
            failed: false,
        }
    }

    /// Counts a data frame; past the limit, logs the cut and fails.
    fn count(&mut self, frame: &Frame<Bytes>) -> Result<(), HttpError> {
        if let Some(data) = frame.data_ref() {
            self.seen += data.len() as u64;
            if self.seen > self.limit {
                self.failed = true;
                let line = format!(
                    "response from {} cut after {} bytes (plugins.max_http_response_bytes = {})",
                    self.shown, self.limit, self.limit
                );
                self.journal.host_line(line);
                return Err(HttpError::HttpResponseBodySize(Some(self.limit)));
            }
        }
        Ok(())
    }
}

impl Body for CappedResponseBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                self.failed = true;
                Poll::Ready(Some(Err(if e.is_timeout() {
                    HttpError::HttpResponseTimeout
                } else {
                    HttpError::from(e)
                })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Err(e) = self.count(&frame) {
                    return Poll::Ready(Some(Err(e)));
                }
                let next = Instant::now() + self.between_bytes;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timer.as_mut().poll(cx));
                self.failed = true;
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }
    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
