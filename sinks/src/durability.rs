//! Fanning the dataflow's output out to every sink, and folding their durable LSNs into the
//! one `cdc` confirms: the smallest.

use august_cdc::Lsn;
use august_dataflow::Output;
use tokio::sync::{mpsc, watch};

/// Copies every output to each of `sinks` until the output ends or every sink has gone.
pub async fn fan_out(mut output: mpsc::UnboundedReceiver<Output>, sinks: Vec<mpsc::UnboundedSender<Output>>) {
    while let Some(item) = output.recv().await {
        let mut delivered = false;
        for sink in &sinks {
            delivered |= sink.send(item.clone()).is_ok();
        }
        if !delivered {
            return;
        }
    }
}

/// A watch that always holds the smallest of `sources`, for `cdc`.
pub fn min_durable(sources: Vec<watch::Receiver<Lsn>>) -> watch::Receiver<Lsn> {
    let smallest = |sources: &[watch::Receiver<Lsn>]| sources.iter().map(|s| *s.borrow()).min().unwrap_or(Lsn::ZERO);
    let (tx, rx) = watch::channel(smallest(&sources));
    tokio::spawn(async move {
        let mut sources = sources;
        loop {
            let changes: Vec<_> = sources.iter_mut().map(|s| Box::pin(s.changed())).collect();
            if futures_select_all(changes).await.is_err() || tx.is_closed() {
                return;
            }
            tx.send_replace(smallest(&sources));
        }
    });
    rx
}

/// Resolves when any of the futures does, with its result.
async fn futures_select_all<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> F::Output {
    std::future::poll_fn(|cx| {
        for mut future in futures.iter_mut().map(std::pin::Pin::new) {
            if let std::task::Poll::Ready(value) = future.as_mut().poll(cx) {
                return std::task::Poll::Ready(value);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cdc_sees_the_slowest_sink() {
        let (a, a_rx) = watch::channel(Lsn(10));
        let (b, b_rx) = watch::channel(Lsn(5));
        let mut durable = min_durable(vec![a_rx, b_rx]);
        assert_eq!(*durable.borrow(), Lsn(5));
        a.send_replace(Lsn(50));
        b.send_replace(Lsn(40));
        tokio::time::timeout(std::time::Duration::from_secs(1), async {
            while *durable.borrow_and_update() != Lsn(40) {
                durable.changed().await.unwrap();
            }
        })
        .await
        .unwrap();
    }
}
