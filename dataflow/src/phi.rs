//! PHI classes: what kind of protected health information a column holds, declared once next
//! to each column of every published table ([`crate::tables`]) and every view
//! ([`crate::views`]), so a Coda mapping can be held to the classes it may carry (minimum
//! necessary) and `august views` can say exactly which PHI leaves for which Coda table.
//!
//! * `direct` — identifies a person or can: names, birth dates, phones, emails, addresses,
//!   plan member numbers, chart numbers, demographics, and free text that can hold any of them
//!   (notes, reasons, raw payloads);
//! * `clinical` — health information: diagnoses and codes, medications, problems, allergies,
//!   note text, SOAP sections, transcripts, scores, risk;
//! * `identifier` — system ids that point at a record (DrChrono ids, note ids, NPIs), PHI only
//!   together with the rest;
//! * `operational` — statuses, timestamps, flags, counts, money.
//!
//! When a column could be two classes, it gets the one that asks more of a mapping: free text
//! in a clinical table is `clinical`, elsewhere `direct`.

use std::fmt;

/// The PHI class of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhiClass {
    /// Identifies a person, or free text that can.
    Direct,
    /// Health information.
    Clinical,
    /// A system id of a record.
    Identifier,
    /// Statuses, timestamps, flags, counts.
    Operational,
}

impl PhiClass {
    /// Every class, most sensitive first.
    pub const ALL: [PhiClass; 4] = [PhiClass::Direct, PhiClass::Clinical, PhiClass::Identifier, PhiClass::Operational];

    /// Its name in mappings and in `august views`.
    pub fn name(self) -> &'static str {
        match self {
            PhiClass::Direct => "direct",
            PhiClass::Clinical => "clinical",
            PhiClass::Identifier => "identifier",
            PhiClass::Operational => "operational",
        }
    }

    /// The class called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the column's values are PHI on their own (`direct` and `clinical`).
    pub fn is_phi(self) -> bool {
        matches!(self, PhiClass::Direct | PhiClass::Clinical)
    }
}

impl fmt::Display for PhiClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns that hold PHI whatever table or view they are in.
    fn must_be_phi(column: &str) -> bool {
        const NAMES: &[&str] = &[
            "first_name",
            "middle_name",
            "last_name",
            "patient_name",
            "date_of_birth",
            "phone",
            "email",
            "address",
            "zip_code",
            "notes",
            "reason",
            "transcript",
            "drchrono_raw",
            "raw_payload",
            "sections",
            "icd10_codes",
            "member_id",
            "insurance_id_number",
            "chart_id",
            "risk_assessment",
            "risk_level",
        ];
        NAMES.contains(&column) || column.ends_with("_phone") || column.starts_with("soap_")
    }

    #[test]
    fn every_column_of_every_table_and_view_has_a_class_and_phi_is_never_called_otherwise() {
        let views = crate::views::all();
        let specs = crate::tables::TABLES
            .iter()
            .map(|t| (t.name, t.columns, t.classes))
            .chain(views.iter().map(|v| (v.name, v.columns, v.classes)));
        for (name, columns, classes) in specs {
            assert_eq!(columns.len(), classes.len(), "{name}: one class per column");
            for (column, class) in columns.iter().zip(classes) {
                let reviewed = *name == *"deepcura_review" && *column == "reason"; // August's own text
                if must_be_phi(column) && !reviewed {
                    assert!(class.is_phi(), "{name}.{column} holds PHI but is {class}");
                }
                if *column == "id" || column.ends_with("_id") && !["member_id", "chart_id"].contains(column) {
                    assert_eq!(*class, PhiClass::Identifier, "{name}.{column}");
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for class in PhiClass::ALL {
            assert_eq!(PhiClass::parse(class.name()), Some(class));
        }
        assert_eq!(PhiClass::parse("Direct"), None, "names are lower case, as mappings write them");
    }
}
