//! What August pulls from DrChrono, declared once: each *feed* is one list endpoint with its
//! filters, page size and target, and each *resource* (what `/sync/<resource>` and
//! `august sync <resource>` name) is one or more feeds. Facts from DrChrono's documentation
//! (`../shared/reference/drchrono/`):
//!
//! * pages default to and may hold at most 250 objects; `verbose=true` (needed for patients'
//!   nested insurance, allergies' and line items' descriptions) caps them at 50, and
//!   `/api/appointments` at 20 by the prose (the schema says 250; 20 works against both);
//! * `since` filters by day, not by instant; appointments need one of `since`, `date`,
//!   `date_range`, and archived ones come only with `show_archived`;
//! * medications, problems and allergies have no change filter: the whole practice's list pages
//!   like any other, and the no-op guard drops what did not change;
//! * deleted line items are listed by `/api/line_item_deletions`.
//!
//! [`FEEDS`] is in the order a reconciliation spends its budget: the feeds filtered by `since`
//! first, then providers, then the unfiltered lists ([`Feed::unfiltered`]).

use super::objects::ObjectSpec;
use super::{ALLERGIES, APPOINTMENTS, LINE_ITEMS, MEDICATIONS, PATIENTS, PROBLEMS, PROVIDERS};

/// How a feed narrows to what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeFilter {
    /// `since=DATE` (by day), optional.
    Since,
    /// `since=DATE`, and the endpoint refuses a list without one of its date filters.
    SinceRequired,
    /// None: every run reads the whole list.
    None,
}

/// What a feed's objects become.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Upserted into a mirror, as the object's webhook would be.
    Mirror(&'static ObjectSpec),
    /// Upserted into `clinical_notes` (keyed by appointment).
    ClinicalNotes,
    /// Each entry soft-deletes a line item.
    LineItemDeletions,
}

/// One list endpoint.
#[derive(Debug)]
pub struct Feed {
    /// Its name in `drchrono_sync_state` and progress reports.
    pub name: &'static str,
    /// The endpoint, also its path template in `access_log`.
    pub path: &'static str,
    /// Its change filter.
    pub filter: ChangeFilter,
    /// Whether it needs `verbose=true`.
    pub verbose: bool,
    /// Objects per page asked for.
    pub page_size: u32,
    /// Query parameters it always sends.
    pub extra: &'static [(&'static str, &'static str)],
    /// Where its objects go.
    pub target: Target,
    /// The field that carries an object's id (for logs: ids only).
    pub id_field: &'static str,
}

impl Feed {
    /// Whether every run reads the whole list.
    pub fn unfiltered(&self) -> bool {
        self.filter == ChangeFilter::None
    }
}

const fn feed(
    name: &'static str,
    path: &'static str,
    filter: ChangeFilter,
    verbose: bool,
    page_size: u32,
    target: Target,
) -> Feed {
    Feed { name, path, filter, verbose, page_size, extra: &[], target, id_field: "id" }
}

/// Every feed, in the order a reconciliation spends its budget.
pub const FEEDS: &[Feed] = &[
    feed("patients", "/api/patients", ChangeFilter::Since, true, 50, Target::Mirror(&PATIENTS)),
    Feed {
        extra: &[("show_archived", "true")],
        ..feed(
            "appointments",
            "/api/appointments",
            ChangeFilter::SinceRequired,
            false,
            20,
            Target::Mirror(&APPOINTMENTS),
        )
    },
    Feed {
        id_field: "appointment",
        ..feed("clinical_notes", "/api/clinical_notes", ChangeFilter::Since, false, 250, Target::ClinicalNotes)
    },
    feed("line_items", "/api/line_items", ChangeFilter::Since, true, 50, Target::Mirror(&LINE_ITEMS)),
    Feed {
        id_field: "billing_line_item_id",
        ..feed(
            "line_item_deletions",
            "/api/line_item_deletions",
            ChangeFilter::Since,
            false,
            250,
            Target::LineItemDeletions,
        )
    },
    feed("providers", "/api/doctors", ChangeFilter::None, false, 250, Target::Mirror(&PROVIDERS)),
    feed("medications", "/api/medications", ChangeFilter::None, false, 250, Target::Mirror(&MEDICATIONS)),
    feed("problems", "/api/problems", ChangeFilter::None, false, 250, Target::Mirror(&PROBLEMS)),
    feed("allergies", "/api/allergies", ChangeFilter::None, true, 50, Target::Mirror(&ALLERGIES)),
];

/// What can be synced by name: `/sync/<name>`, `august sync <name>`.
pub const RESOURCES: &[(&str, &[&str])] = &[
    ("patients", &["patients"]),
    ("providers", &["providers"]),
    ("appointments", &["appointments"]),
    ("clinical-notes", &["clinical_notes"]),
    ("medications", &["medications"]),
    ("problems", &["problems"]),
    ("allergies", &["allergies"]),
    ("line-items", &["line_items", "line_item_deletions"]),
];

/// The feed called `name`.
pub fn feed_named(name: &str) -> Option<&'static Feed> {
    FEEDS.iter().find(|f| f.name == name)
}

/// The feeds of the resources named (`all` for every one), in [`FEEDS`] order, each once;
/// `None` names the first unknown resource.
pub fn feeds_for<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<&'static Feed>, String> {
    let mut wanted = Vec::new();
    for name in names {
        if name == "all" {
            return Ok(FEEDS.iter().collect());
        }
        let (_, feeds) = RESOURCES.iter().find(|(n, _)| *n == name).ok_or_else(|| name.to_string())?;
        wanted.extend(feeds.iter().copied());
    }
    Ok(FEEDS.iter().filter(|f| wanted.contains(&f.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_names_known_feeds_and_all_covers_every_feed() {
        for (name, feeds) in RESOURCES {
            for feed in *feeds {
                assert!(feed_named(feed).is_some(), "{name} names unknown feed {feed}");
            }
        }
        assert_eq!(feeds_for(["all"]).unwrap().len(), FEEDS.len());
        let line_items: Vec<_> = feeds_for(["line-items"]).unwrap().iter().map(|f| f.name).collect();
        assert_eq!(line_items, ["line_items", "line_item_deletions"]);
        assert_eq!(feeds_for(["patients", "nope"]).unwrap_err(), "nope");
    }

    #[test]
    fn page_sizes_respect_drchrono_limits() {
        for feed in FEEDS {
            let most = if feed.path == "/api/appointments" {
                20
            } else if feed.verbose {
                50
            } else {
                250
            };
            assert!(feed.page_size <= most, "{} asks for {} per page", feed.name, feed.page_size);
        }
        let unfiltered: Vec<_> = FEEDS.iter().skip_while(|f| !f.unfiltered()).collect();
        assert!(unfiltered.iter().all(|f| f.unfiltered()), "unfiltered feeds come last");
    }
}
