//! The words the synthetic clinic is made of: names, places, payers, drugs, diagnoses and
//! billing codes of an outpatient psychiatry practice. Every person, phone number, member id and
//! code number is made up; the drug and diagnosis names are ordinary clinical vocabulary.

/// Given names, with the gender the chart records.
pub(crate) const FIRST_NAMES: &[(&str, &str)] = &[
    ("Olivia", "Female"),
    ("Liam", "Male"),
    ("Emma", "Female"),
    ("Noah", "Male"),
    ("Ava", "Female"),
    ("Elijah", "Male"),
    ("Sophia", "Female"),
    ("Mateo", "Male"),
    ("Isabella", "Female"),
    ("Lucas", "Male"),
    ("Mia", "Female"),
    ("Levi", "Male"),
    ("Amelia", "Female"),
    ("Ezra", "Male"),
    ("Harper", "Female"),
    ("Asher", "Male"),
    ("Evelyn", "Female"),
    ("Leo", "Male"),
    ("Luna", "Female"),
    ("Hudson", "Male"),
    ("Camila", "Female"),
    ("Kai", "Male"),
    ("Nora", "Female"),
    ("Theo", "Male"),
    ("Zoe", "Female"),
    ("Rowan", "Other"),
    ("Priya", "Female"),
    ("Arjun", "Male"),
    ("Mei", "Female"),
    ("Wei", "Male"),
    ("Fatima", "Female"),
    ("Omar", "Male"),
    ("Sofia", "Female"),
    ("Diego", "Male"),
    ("Hana", "Female"),
    ("Kenji", "Male"),
    ("Amara", "Female"),
    ("Kwame", "Male"),
    ("Ingrid", "Female"),
    ("Sasha", "Other"),
];

/// Family names.
pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Patel",
    "Chen",
    "Kim",
    "Okafor",
    "Novak",
    "Kowalski",
    "Haddad",
    "Silva",
    "Tanaka",
    "Larsen",
];

/// Streets.
pub(crate) const STREETS: &[&str] = &[
    "Maple Ave",
    "Oak St",
    "Cedar Ln",
    "Elm St",
    "Willow Dr",
    "Birch Rd",
    "Lakeview Blvd",
    "Hillcrest Ave",
    "Park Pl",
    "River Rd",
    "Sunset Dr",
    "Chestnut St",
    "Highland Ave",
    "Spring St",
    "Meadow Ln",
    "Orchard Way",
];

/// Cities with their state and the first three digits of their ZIP codes.
pub(crate) const CITIES: &[(&str, &str, &str)] = &[
    ("Springfield", "IL", "627"),
    ("Riverside", "CA", "925"),
    ("Franklin", "TN", "370"),
    ("Greenville", "SC", "296"),
    ("Bristol", "CT", "060"),
    ("Clinton", "MA", "015"),
    ("Fairview", "OR", "970"),
    ("Madison", "WI", "537"),
    ("Georgetown", "TX", "786"),
    ("Salem", "NH", "030"),
    ("Arlington", "VA", "222"),
    ("Ashland", "OH", "448"),
];

/// Area codes for the made-up `555-01xx` numbers.
pub(crate) const AREA_CODES: &[&str] = &["212", "312", "415", "503", "617", "646", "713", "802", "860", "919"];

/// Payers: name, payer id, plan name, HCFA plan type (from the spec's enum).
pub(crate) const INSURERS: &[(&str, &str, &str, &str)] = &[
    ("Evergreen Health Plan", "EVG01", "Evergreen PPO 500", "12"),
    ("Blue Harbor Insurance", "BHI22", "Harbor Select HMO", "HM"),
    ("Summit Mutual", "SMM07", "Summit Choice", "CI"),
    ("Pioneer Medicare Advantage", "PMA31", "Pioneer Advantage Plus", "16"),
    ("Lakeshore Medicaid", "LSM14", "Lakeshore Community Care", "MC"),
    ("Cardinal Behavioral Health", "CBH09", "Cardinal EAP", "BL"),
];

/// A medication as prescribed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drug {
    pub name: &'static str,
    pub rxnorm: &'static str,
    pub ndc: &'static str,
    pub dose: &'static str,
    pub units: &'static str,
    pub frequency: &'static str,
    pub indication: &'static str,
    pub sig: &'static str,
}

/// Medications.
pub(crate) const DRUGS: &[Drug] = &[
    Drug {
        name: "Sertraline 50 mg tablet",
        rxnorm: "900001",
        ndc: "00000-1001-01",
        dose: "50",
        units: "mg",
        frequency: "once daily",
        indication: "Depression",
        sig: "Take 1 tablet by mouth every morning",
    },
    Drug {
        name: "Escitalopram 10 mg tablet",
        rxnorm: "900002",
        ndc: "00000-1002-01",
        dose: "10",
        units: "mg",
        frequency: "once daily",
        indication: "Generalized anxiety",
        sig: "Take 1 tablet by mouth daily",
    },
    Drug {
        name: "Bupropion XL 150 mg tablet",
        rxnorm: "900003",
        ndc: "00000-1003-01",
        dose: "150",
        units: "mg",
        frequency: "once daily",
        indication: "Depression",
        sig: "Take 1 tablet by mouth every morning",
    },
    Drug {
        name: "Lamotrigine 100 mg tablet",
        rxnorm: "900004",
        ndc: "00000-1004-01",
        dose: "100",
        units: "mg",
        frequency: "twice daily",
        indication: "Bipolar II disorder",
        sig: "Take 1 tablet by mouth twice daily",
    },
    Drug {
        name: "Quetiapine 25 mg tablet",
        rxnorm: "900005",
        ndc: "00000-1005-01",
        dose: "25",
        units: "mg",
        frequency: "at bedtime",
        indication: "Insomnia",
        sig: "Take 1 tablet by mouth at bedtime",
    },
    Drug {
        name: "Methylphenidate ER 36 mg tablet",
        rxnorm: "900006",
        ndc: "00000-1006-01",
        dose: "36",
        units: "mg",
        frequency: "once daily",
        indication: "ADHD",
        sig: "Take 1 tablet by mouth every morning",
    },
    Drug {
        name: "Hydroxyzine 25 mg capsule",
        rxnorm: "900007",
        ndc: "00000-1007-01",
        dose: "25",
        units: "mg",
        frequency: "as needed",
        indication: "Anxiety",
        sig: "Take 1 capsule by mouth up to three times daily as needed",
    },
    Drug {
        name: "Prazosin 1 mg capsule",
        rxnorm: "900008",
        ndc: "00000-1008-01",
        dose: "1",
        units: "mg",
        frequency: "at bedtime",
        indication: "Nightmares",
        sig: "Take 1 capsule by mouth at bedtime",
    },
];

/// Diagnoses: ICD-10 code, name, SNOMED CT code.
pub(crate) const DIAGNOSES: &[(&str, &str, &str)] = &[
    ("F32.1", "Major depressive disorder, single episode, moderate", "800001"),
    ("F33.1", "Major depressive disorder, recurrent, moderate", "800002"),
    ("F41.1", "Generalized anxiety disorder", "800003"),
    ("F43.10", "Post-traumatic stress disorder, unspecified", "800004"),
    ("F90.0", "Attention-deficit hyperactivity disorder, predominantly inattentive type", "800005"),
    ("F31.81", "Bipolar II disorder", "800006"),
    ("F42.2", "Mixed obsessional thoughts and acts", "800007"),
    ("F51.01", "Primary insomnia", "800008"),
];

/// Allergens: name, RxNorm, reaction, SNOMED reaction (from the spec's enum).
pub(crate) const ALLERGENS: &[(&str, &str, &str, &str)] = &[
    ("Penicillin", "700001", "Hives", "247472004"),
    ("Sulfa drugs", "700002", "Rash", "271807003"),
    ("Codeine", "700003", "Nausea", "422587007"),
    ("Latex", "700004", "Shortness of breath", "267036007"),
    ("Peanuts", "700005", "Anaphylaxis", "39579001"),
];

/// Visit reasons with the CPT code billed, its description and price in cents.
pub(crate) const VISITS: &[(&str, &str, &str, i64)] = &[
    ("Initial psychiatric evaluation", "90792", "Psychiatric diagnostic evaluation with medical services", 35_000),
    ("Medication management", "99214", "Office visit, established patient, moderate complexity", 22_000),
    ("Medication follow-up", "99213", "Office visit, established patient, low complexity", 15_000),
    ("Psychotherapy, 60 minutes", "90837", "Psychotherapy, 60 minutes", 20_000),
    ("Psychotherapy, 45 minutes", "90834", "Psychotherapy, 45 minutes", 16_000),
];

/// Text a provider writes into a progress note, by section.
pub(crate) const NOTE_TEXT: &[&str] = &[
    "Patient reports improved mood and sleep since the last visit.",
    "Mood described as anxious; denies suicidal ideation, plan or intent.",
    "Tolerating the medication without side effects; adherence good.",
    "Mental status: alert, oriented, linear thought process, affect congruent.",
    "Plan: continue current regimen, follow up in four weeks.",
    "Plan: titrate dose, review labs at next visit, safety plan discussed.",
];
