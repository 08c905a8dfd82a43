//! Join shapes the views repeat: a left join against a side with at most one row per key.

use differential_dataflow::VecCollection;
use serde::{de::DeserializeOwned, Serialize};

use august_cdc::Value;

/// A collection of the dataflow, timestamped by LSN.
pub type Coll<'s, D> = VecCollection<'s, u64, D, isize>;

/// Data that can travel between workers.
pub trait Datum: Ord + Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Ord + Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static> Datum for T {}

/// `left ⟕ right` on `key(left)`, where `right` holds at most one row per key: every left row
/// comes out once, with the matching right row or `None`. A NULL key matches nothing.
pub fn left_join<'s, A: Datum, B: Datum>(
    left: Coll<'s, A>,
    key: impl Fn(&A) -> Value + 'static,
    right: Coll<'s, (Value, B)>,
) -> Coll<'s, (A, Option<B>)> {
    let keyed = left.map(move |a| (key(&a), a));
    let matched = keyed.clone().join(right.clone()).map(|(_, (a, b))| (a, Some(b)));
    let unmatched = keyed.antijoin(right.map(|(k, _)| k).distinct()).map(|(_, a)| (a, None));
    matched.concat(unmatched)
}
