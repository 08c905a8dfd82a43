//! Fanning the dataflow's output out to every sink, and folding their durable LSNs into the
//! one `cdc` confirms: the smallest.

use august_cdc::Lsn;
use august_dataflow::Output;
use tokio::sync::{mpsc, watch};

/// Copies every output to each of `sinks` until the output ends or every sink has gone. The
/// channels are bounded: a sink that is slow to take its copy holds up every sink and, through
/// `output`, the dataflow (a sink that has gone is skipped).
pub async fn fan_out(mut output: mpsc::Receiver<Output>, sinks: Vec<mpsc::Sender<Output>>) {
    while let Some(item) = output.recv().await {
        let mut delivered = false;
        for sink in &sinks {
            delivered |= sink.send(item.clone()).await.is_ok();
        }
        if !delivered {
            return;
        }
    }
}

/// A watch that always holds the smallest of `sources`, for `cdc`. A source whose sink has
/// finished keeps counting with its last value; once every source has finished, the watch
/// closes after its final value, so `changed()` failing on it means "final".
pub fn min_durable(sources: Vec<watch::Receiver<Lsn>>) -> watch::Receiver<Lsn> {
    let smallest = |sources: &[watch::Receiver<Lsn>]| sources.iter().map(|s| *s.borrow()).min().unwrap_or(Lsn::ZERO);
    let (tx, rx) = watch::channel(smallest(&sources));
    tokio::spawn(async move {
        let mut sources = sources;
        let mut open: Vec<usize> = (0..sources.len()).collect();
        while !open.is_empty() {
            let (index, changed) = {
                let changes: Vec<_> = sources
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| open.contains(i))
                    .map(|(i, s)| Box::pin(async move { (i, s.changed().await) }))
                    .collect();
                futures_select_all(changes).await
            };
            if changed.is_err() {
                open.retain(|i| *i != index);
            }
            tx.send_if_modified(|current| {
                let now = smallest(&sources);
                (now != *current).then(|| *current = now).is_some()
            });
            if tx.is_closed() {
                return;
            }
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

    #[tokio::test]
    async fn a_sink_that_does_not_read_holds_up_the_output_and_then_gets_everything_in_order() {
        let (tx, rx) = mpsc::channel(2);
        let (fast_tx, mut fast) = mpsc::channel(2);
        let (slow_tx, mut slow) = mpsc::channel(2);
        tokio::spawn(fan_out(rx, vec![fast_tx, slow_tx]));
        let fast_got = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Output::Frontier(lsn)) = fast.recv().await {
                got.push(lsn.0);
            }
            got
        });
        let mut sent = 0;
        while sent < 100 {
            let send = tx.send(Output::Frontier(Lsn(sent)));
            if tokio::time::timeout(std::time::Duration::from_millis(200), send).await.is_err() {
                break; // the output is full
            }
            sent += 1;
        }
        // The slow sink's buffer, the one fan_out holds, and the output's buffer: no more.
        assert!(sent <= 2 + 1 + 2, "{sent} outputs went in while a sink read nothing");
        let slow_got = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Output::Frontier(lsn)) = slow.recv().await {
                got.push(lsn.0);
            }
            got
        });
        for lsn in sent..20 {
            tx.send(Output::Frontier(Lsn(lsn))).await.unwrap();
        }
        drop(tx);
        let all: Vec<u64> = (0..20).collect();
        assert_eq!(slow_got.await.unwrap(), all, "the slow sink gets everything, in order, once");
        assert_eq!(fast_got.await.unwrap(), all);
    }

    #[tokio::test]
    async fn a_finished_sink_keeps_its_last_value_and_the_watch_closes_after_the_last() {
        let (a, a_rx) = watch::channel(Lsn(10));
        let (b, b_rx) = watch::channel(Lsn(5));
        let mut durable = min_durable(vec![a_rx, b_rx]);
        b.send_replace(Lsn(30));
        drop(b); // the link sink finished first
        a.send_replace(Lsn(20));
        a.send_replace(Lsn(40)); // the Coda sink drained further
        drop(a);
        tokio::time::timeout(std::time::Duration::from_secs(1), async { while durable.changed().await.is_ok() {} })
            .await
            .expect("the watch closes once every sink has finished");
        assert_eq!(*durable.borrow(), Lsn(30), "the smallest of the last values");
    }
}
