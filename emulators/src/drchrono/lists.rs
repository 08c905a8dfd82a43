//! The list endpoints (`GET /api/{resource}`): filters, page sizes, cursor pagination and the
//! envelope.
//!
//! - Envelope: `{"previous": URL or null, "results": [...], "next": URL or null}` as the prose
//!   says, or with [`Envelope::Data`] the machine schema's key for each path (`data`, except
//!   `/api/line_item_deletions`, whose schema says `results`).
//! - Page sizes: "Most page sizes default to 250 ... The 'api/appointments' endpoint is an
//!   exception to this rule as it has a max size of 20", and `verbose=true` "will reduce the
//!   default and maximum page sizes to 50". A larger `page_size` is clamped, as DRF does, and
//!   the default is the maximum.
//! - Pagination: keyset cursors (opaque `cursor`, like DRF's `CursorPagination`) over each
//!   list's order: by id, appointments by scheduled time ("results returned in order of
//!   scheduled date"), deletions by when they happened. A change made between pages never
//!   shifts an object onto a page already read. `next`/`previous` are absolute URLs on the
//!   request's host, with every query parameter of the request plus the new `cursor`.
//! - Filters: `since` compares days, not instants: an object matches when the date of its
//!   `updated_at` (a deletion's `created_at`) is on or after the date given, so a client that
//!   passes a timestamp gets that whole day again. `/api/appointments` needs one of `since`,
//!   `occurred_since`, `date` or `date_range` (at most 190 days, both ends counted) and hides archived
//!   appointments unless `show_archived=true`. Unknown parameters are ignored, as DRF does.

use axum::extract::Query;
use axum::http::{StatusCode, Uri};
use chrono::NaiveDate;
use serde_json::{json, Value};

use super::records::{Facets, Key, Listed};
use super::{Clinic, Envelope, Resource, Visit};

/// A refused list request: its status and DRF-style body.
pub(crate) type Refusal = (StatusCode, Value);

/// The filters of one request; `None`/`false` where not given or not supported by the list.
#[derive(Debug, Default)]
struct Filter {
    since: Option<NaiveDate>,
    occurred_since: Option<NaiveDate>,
    scheduled: Option<(NaiveDate, NaiveDate)>,
    patient: Option<u64>,
    doctor: Option<u64>,
    office: Option<u64>,
    appointment: Option<u64>,
    status: Option<String>,
    service_date: Option<NaiveDate>,
    posted_date: Option<NaiveDate>,
    show_archived: bool,
}

impl Filter {
    fn keeps(&self, f: &Facets<'_>) -> bool {
        let on_or_after =
            |wanted: Option<NaiveDate>, day: Option<NaiveDate>| wanted.is_none_or(|w| day.is_some_and(|d| d >= w));
        let same = |wanted: Option<u64>, value: Option<u64>| wanted.is_none_or(|w| value == Some(w));
        let same_day = |wanted: Option<NaiveDate>, day: Option<NaiveDate>| wanted.is_none_or(|w| day == Some(w));
        (self.show_archived || !f.archived)
            && on_or_after(self.since, f.changed)
            && on_or_after(self.occurred_since, f.scheduled)
            && self.scheduled.is_none_or(|(from, to)| f.scheduled.is_some_and(|d| from <= d && d <= to))
            && same(self.patient, f.patient)
            && same(self.doctor, f.doctor)
            && same(self.office, f.office)
            && same(self.appointment, f.appointment)
            && self.status.as_deref().is_none_or(|s| f.status == Some(s))
            && same_day(self.service_date, f.service_date)
            && same_day(self.posted_date, f.posted_date)
    }
}

/// The filter parameters each list understands (from its `parameters` in the spec).
fn understands(resource: Resource) -> &'static [&'static str] {
    match resource {
        Resource::Patients => &["since", "doctor"],
        Resource::Doctors => &["doctor"],
        Resource::Appointments => {
            &["since", "occurred_since", "date", "date_range", "patient", "doctor", "office", "status", "show_archived"]
        }
        Resource::ClinicalNotes => &["since", "date", "date_range", "patient", "doctor", "office"],
        Resource::Medications | Resource::Problems | Resource::Allergies => &["patient", "doctor"],
        Resource::LineItems => &["since", "patient", "doctor", "office", "appointment", "service_date", "posted_date"],
        Resource::LineItemDeletions => &["since", "appointment_id"],
    }
}

fn invalid(field: &str, message: &str) -> Refusal {
    (StatusCode::BAD_REQUEST, json!({ field: [message] }))
}

/// A date, or the date of a timestamp (`2021-02-14T13:40:39`, any fraction or zone).
fn day(field: &str, value: &str) -> Result<NaiveDate, Refusal> {
    let date = value.get(..10).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let rest_ok = value.get(10..).is_some_and(|rest| rest.is_empty() || rest.starts_with(['T', ' ']));
    date.filter(|_| rest_ok).ok_or_else(|| invalid(field, "Enter a valid date."))
}

fn number(field: &str, value: &str) -> Result<u64, Refusal> {
    value.trim().parse().map_err(|_| invalid(field, "Enter a number."))
}

fn truthy(value: &str) -> bool {
    matches!(value, "true" | "True" | "1")
}

impl Filter {
    fn parse(resource: Resource, query: &[(String, String)]) -> Result<Filter, Refusal> {
        let mut filter = Filter::default();
        let accepted = understands(resource);
        let get = |name: &str| {
            accepted
                .contains(&name)
                .then(|| query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()))
                .flatten()
        };
        filter.since = get("since").map(|v| day("since", v)).transpose()?;
        filter.occurred_since = get("occurred_since").map(|v| day("occurred_since", v)).transpose()?;
        if let Some(v) = get("date") {
            let d = day("date", v)?;
            filter.scheduled = Some((d, d));
        }
        if let Some(v) = get("date_range") {
            let (from, to) = v.split_once('/').ok_or_else(|| invalid("date_range", "Use YYYY-MM-DD/YYYY-MM-DD."))?;
            let (from, to) = (day("date_range", from)?, day("date_range", to)?);
            if to < from {
                return Err(invalid("date_range", "The end date is before the start date."));
            }
            // Counted inclusively, the stricter reading of "Max window size 190 days": a
            // client that passes here passes on DrChrono whichever way it counts.
            if resource == Resource::Appointments && (to - from).num_days() + 1 > 190 {
                let why = "date_range may span at most 190 days (both ends included).";
                return Err((StatusCode::BAD_REQUEST, json!({ "detail": why })));
            }
            let (a, b) = filter.scheduled.unwrap_or((from, to));
            filter.scheduled = Some((a.max(from), b.min(to)));
        }
        filter.patient = get("patient").map(|v| number("patient", v)).transpose()?;
        filter.doctor = get("doctor").map(|v| number("doctor", v)).transpose()?;
        filter.office = get("office").map(|v| number("office", v)).transpose()?;
        let appointment =
            get("appointment").map(|v| ("appointment", v)).or(get("appointment_id").map(|v| ("appointment_id", v)));
        filter.appointment = appointment.map(|(field, v)| number(field, v)).transpose()?;
        filter.status = get("status").map(str::to_string);
        filter.service_date = get("service_date").map(|v| day("service_date", v)).transpose()?;
        filter.posted_date = get("posted_date").map(|v| day("posted_date", v)).transpose()?;
        filter.show_archived = get("show_archived").is_some_and(truthy);
        let needs_window = resource == Resource::Appointments
            && filter.since.is_none()
            && filter.occurred_since.is_none()
            && filter.scheduled.is_none();
        if needs_window {
            let why = "One of the parameters since, occurred_since, date or date_range must be specified.";
            return Err((StatusCode::BAD_REQUEST, json!({ "detail": why })));
        }
        // Other lists archive nothing, so `show_archived` does not change them.
        filter.show_archived |= resource != Resource::Appointments;
        Ok(filter)
    }
}

/// Where a page starts: after a key (`next`) or before one (`previous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    After(Key),
    Before(Key),
}

impl Cursor {
    /// Opaque to clients: the hex of `a:<key>` or `b:<key>`.
    fn encode(self) -> String {
        let (tag, (a, b)) = match self {
            Cursor::After(k) => ('a', k),
            Cursor::Before(k) => ('b', k),
        };
        format!("{tag}:{a}:{b}").bytes().map(|byte| format!("{byte:02x}")).collect()
    }

    fn decode(text: &str) -> Option<Cursor> {
        let bytes: Option<Vec<u8>> = (0..text.len())
            .step_by(2)
            .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let mut parts = text.splitn(3, ':');
        let (tag, a, b) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        match tag {
            "a" => Some(Cursor::After((a, b))),
            "b" => Some(Cursor::Before((a, b))),
            _ => None,
        }
    }
}

/// One page: its objects and the cursors of its neighbours.
struct Page {
    results: Vec<Value>,
    previous: Option<Cursor>,
    next: Option<Cursor>,
}

struct Pager<'a> {
    filter: &'a Filter,
    cursor: Option<Cursor>,
    size: usize,
    verbose: bool,
}

impl Visit for Pager<'_> {
    type Out = Page;
    fn visit<T: Listed>(self, items: &[T]) -> Page {
        let keep = |item: &&T| self.filter.keeps(&item.facets());
        let (picked, more_before, more_after, bound): (Vec<&T>, bool, bool, Option<Key>) = match self.cursor {
            None | Some(Cursor::After(_)) => {
                let after = match self.cursor {
                    Some(Cursor::After(k)) => Some(k),
                    _ => None,
                };
                let from = after.map_or(0, |k| items.partition_point(|item| item.key() <= k));
                let mut rest = items[from..].iter().filter(keep);
                let picked: Vec<&T> = rest.by_ref().take(self.size).collect();
                let more_after = rest.next().is_some();
                let more_before = after.is_some() && items[..from].iter().rev().any(|item| keep(&item));
                // An empty page's `previous` ends just past its cursor.
                (picked, more_before, more_after, after.map(|(a, b)| (a, b.saturating_add(1))))
            }
            Some(Cursor::Before(k)) => {
                let to = items.partition_point(|item| item.key() < k);
                let mut earlier = items[..to].iter().rev().filter(keep);
                let mut picked: Vec<&T> = earlier.by_ref().take(self.size).collect();
                picked.reverse();
                let more_before = earlier.next().is_some();
                let more_after = items[to..].iter().any(|item| keep(&item));
                // An empty page's `next` starts at its cursor.
                (picked, more_before, more_after, Some((k.0, k.1.saturating_sub(1))))
            }
        };
        let first = picked.first().map(|item| item.key()).or(bound);
        let last = picked.last().map(|item| item.key()).or(bound);
        Page {
            results: picked.iter().map(|item| item.render(self.verbose)).collect(),
            previous: first.filter(|_| more_before).map(Cursor::Before),
            next: last.filter(|_| more_after).map(Cursor::After),
        }
    }
}

/// The largest (and default) page for a list.
fn max_page_size(resource: Resource, verbose: bool) -> usize {
    let size = if verbose { 50 } else { 250 };
    if resource == Resource::Appointments {
        size.min(20)
    } else {
        size
    }
}

/// The same request with `cursor` replaced: every other parameter kept as sent.
fn link(origin: &str, uri: &Uri, cursor: Cursor) -> String {
    let kept = uri.query().unwrap_or_default().split('&').filter(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        !pair.is_empty() && key != "cursor" && key != "_redirected"
    });
    let mut query: Vec<String> = kept.map(str::to_string).collect();
    query.push(format!("cursor={}", cursor.encode()));
    format!("{origin}{}?{}", uri.path(), query.join("&"))
}

/// The body of `GET /api/{resource}` for `uri`, or why it is refused.
pub(crate) fn respond(
    clinic: &Clinic,
    resource: Resource,
    envelope: Envelope,
    origin: &str,
    uri: &Uri,
) -> Result<Value, Refusal> {
    let Query(query) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| (StatusCode::BAD_REQUEST, json!({"detail": "Malformed query string."})))?;
    let param = |name: &str| query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let filter = Filter::parse(resource, &query)?;
    let verbose = param("verbose").is_some_and(truthy);
    let max = max_page_size(resource, verbose);
    let size =
        param("page_size").and_then(|v| v.trim().parse::<usize>().ok()).filter(|n| *n > 0).unwrap_or(max).min(max);
    let cursor = match param("cursor") {
        Some(text) => Some(Cursor::decode(text).ok_or((StatusCode::NOT_FOUND, json!({"detail": "Invalid cursor"})))?),
        None => None,
    };
    let page = clinic.visit(resource, Pager { filter: &filter, cursor, size, verbose });
    let key = match (envelope, resource) {
        (Envelope::Data, Resource::LineItemDeletions) | (Envelope::Results, _) => "results",
        (Envelope::Data, _) => "data",
    };
    Ok(json!({
        "previous": page.previous.map(|c| link(origin, uri, c)),
        key: page.results,
        "next": page.next.map(|c| link(origin, uri, c)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for cursor in [Cursor::After((1_700_000_000, 42)), Cursor::Before((0, 7))] {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
        assert_eq!(Cursor::decode("zz"), None);
        assert_eq!(Cursor::decode("613a31"), None);
    }

    #[test]
    fn since_takes_the_day_of_a_timestamp() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 14).expect("date");
        assert_eq!(day("since", "2024-02-14").ok(), Some(d));
        assert_eq!(day("since", "2024-02-14T13:40:39").ok(), Some(d));
        assert_eq!(day("since", "2024-02-14T13:40:39.5+00:00").ok(), Some(d));
        assert!(day("since", "2024-02-14x").is_err());
        assert!(day("since", "yesterday").is_err());
    }
}
