//! Join shapes the views repeat: a left join against a side with at most one row per key,
//! arranged once and shared by every view that looks rows up in it.

use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::VecCollection;
use serde::{de::DeserializeOwned, Serialize};

use august_cdc::Value;

/// A collection of the dataflow, timestamped by LSN.
pub type Coll<'s, D> = VecCollection<'s, u64, D, isize>;

/// Data that can travel between workers.
pub trait Datum: Ord + Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Ord + Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static> Datum for T {}

/// An arrangement by key.
pub type ByKey<'s, V> = Arranged<'s, TraceAgent<ValSpine<Value, V, u64, isize>>>;

/// Rows looked up by key: the rows, and the set of keys present (for the unmatched side of a
/// left join). Build once, share between views.
#[derive(Clone)]
pub struct Keyed<'s, B: Datum> {
    rows: ByKey<'s, B>,
    keys: ByKey<'s, ()>,
}

impl<'s, B: Datum> Keyed<'s, B> {
    /// Arranges `rows` by their key; NULL keys are dropped (they match nothing).
    pub fn new(rows: Coll<'s, (Value, B)>) -> Self {
        let rows = rows.filter(|(k, _)| !k.is_null());
        let keys = rows.clone().map(|(k, _)| k).distinct().map(|k| (k, ())).arrange_by_key();
        Self { rows: rows.arrange_by_key(), keys }
    }

    /// Labels its two arrangements `label` and `label:keys` in
    /// `august_dataflow_arrangement_records` (see [`crate::metrics`]).
    pub fn name(&self, label: &str) {
        crate::metrics::name_arrangement(self.rows.trace.operator().global_id, label.to_string());
        crate::metrics::name_arrangement(self.keys.trace.operator().global_id, format!("{label}:keys"));
    }
}

/// `left ⟕ right` on `key(left)`, where `right` holds at most one row per key: every left row
/// comes out once, with the matching right row or `None`. A NULL key matches nothing. The left
/// side is arranged once and serves both the matches and the rows without one.
pub fn left_join<'s, A: Datum, B: Datum>(
    left: Coll<'s, A>,
    key: impl Fn(&A) -> Value + 'static,
    right: &Keyed<'s, B>,
) -> Coll<'s, (A, Option<B>)> {
    let keyed: ByKey<'s, A> = left.map(move |a| (key(&a), a)).arrange_by_key();
    let matched = keyed.clone().join_core(right.rows.clone(), |_k, a: &A, b: &B| Some((a.clone(), Some(b.clone()))));
    let found = keyed.clone().join_core(right.keys.clone(), |_k, a: &A, _: &()| Some(a.clone()));
    let unmatched = keyed.as_collection(|_k, a: &A| a.clone()).concat(found.negate()).map(|a| (a, None));
    matched.concat(unmatched)
}
