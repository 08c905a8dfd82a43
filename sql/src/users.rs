//! Who may connect: the users file (`AUGUST_SQL_USERS_FILE`), TOML with one `[[user]]` per
//! login — its name, its role (one of `staff_roles`' roles) and its SCRAM-SHA-256 verifier in
//! Postgres's own format (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as
//! `pg_authid.rolpassword` holds it), never a password. `august sql-user add` writes it,
//! `august sql-user remove` takes a user out; the file is read again at every login, so
//! neither needs a restart.
//!
//! A role decides which columns a user sees ([`Role::sees`]): PHI only for the roles whose
//! work needs it.

use std::collections::BTreeMap;
use std::path::Path;

use august_dataflow::PhiClass;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret};
use serde::{Deserialize, Serialize};

use crate::SqlError;

/// The iteration count of new verifiers (Postgres's default).
pub const ITERATIONS: usize = 4096;

/// A role, as `staff_roles.role` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Everything: a clinician's work is the clinical record.
    Clinician,
    /// Identifiers, operational columns and contact details; no clinical content.
    Operations,
    /// As operations.
    Billing,
    /// System tables and ids only.
    Auditor,
    /// System tables and ids only.
    ReadOnly,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] =
        [Role::Admin, Role::Clinician, Role::Operations, Role::Billing, Role::Auditor, Role::ReadOnly];

    /// The role called `name`.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Operations => "operations",
            Role::Billing => "billing",
            Role::Auditor => "auditor",
            Role::ReadOnly => "read_only",
        }
    }

    /// Whether the role sees columns of `class`.
    pub fn sees(self, class: PhiClass) -> bool {
        match self {
            Role::Admin | Role::Clinician => true,
            Role::Operations | Role::Billing => class != PhiClass::Clinical,
            Role::Auditor | Role::ReadOnly => class == PhiClass::Identifier,
        }
    }
}

/// One login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The login name.
    pub name: String,
    /// What it may see.
    pub role: Role,
    /// Its SCRAM-SHA-256 verifier.
    pub verifier: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    user: Vec<User>,
}

/// The users, by name.
#[derive(Debug, Default, Clone)]
pub struct Users(BTreeMap<String, User>);

impl Users {
    /// Reads the file at `path` (a missing file is no users). A malformed file, an unknown role
    /// or a malformed verifier is an error naming the file and the user, never the verifier.
    pub fn load(path: &Path) -> Result<Users, SqlError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(e) => return Err(SqlError::UsersFile(format!("{}: {e}", path.display()))),
        };
        let file: File =
            toml::from_str(&text).map_err(|e| SqlError::UsersFile(format!("{}: {}", path.display(), e.message())))?;
        let mut users = BTreeMap::new();
        for user in file.user {
            parse_verifier(&user.verifier)
                .map_err(|m| SqlError::UsersFile(format!("{}: user {:?}: verifier: {m}", path.display(), user.name)))?;
            users.insert(user.name.clone(), user);
        }
        Ok(Users(users))
    }

    /// The user called `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.0.get(name)
    }

    /// Every user, by name.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.0.values()
    }

    /// Adds (or replaces) `name` with `role` and a verifier of `password`, and writes the file
    /// (owner-only, replaced whole so a reader never sees half of it).
    pub fn add(path: &Path, name: &str, role: Role, password: &str) -> Result<(), SqlError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-@".contains(c)) {
            return Err(SqlError::UsersFile(format!("user name {name:?}: use letters, digits and _ . - @ only")));
        }
        if password.is_empty() {
            return Err(SqlError::UsersFile("the password is empty".into()));
        }
        let mut users = Users::load(path)?;
        users.0.insert(name.into(), User { name: name.into(), role, verifier: verifier(password) });
        users.store(path)
    }

    /// Removes `name`; whether it was there.
    pub fn remove(path: &Path, name: &str) -> Result<bool, SqlError> {
        let mut users = Users::load(path)?;
        let removed = users.0.remove(name).is_some();
        users.store(path)?;
        Ok(removed)
    }

    fn store(&self, path: &Path) -> Result<(), SqlError> {
        let file = File { user: self.0.values().cloned().collect() };
        let text = toml::to_string(&file).map_err(|e| SqlError::UsersFile(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        let io = |e: std::io::Error| SqlError::UsersFile(format!("{}: {e}", path.display()));
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(b"# August SQL users: written by `august sql-user`; verifiers, never passwords\n")
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// A new SCRAM-SHA-256 verifier of `password`, with a random salt.
pub fn verifier(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, ITERATIONS);
    match ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, ITERATIONS) {
        ScramSecret::Verifier { salt, iterations, stored_key, server_key } => format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            B64.encode(salt),
            B64.encode(stored_key),
            B64.encode(server_key)
        ),
        ScramSecret::SaltedPassword { .. } => unreachable!("verifier_from_salted_password makes a verifier"),
    }
}

/// The secret a verifier stands for; the error says what is wrong with it, without it.
pub fn parse_verifier(text: &str) -> Result<ScramSecret, &'static str> {
    let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or("must start with SCRAM-SHA-256$")?;
    let (params, keys) = rest.split_once('$').ok_or("must be SCRAM-SHA-256$<iterations>:<salt>$<stored>:<server>")?;
    let (iterations, salt) = params.split_once(':').ok_or("missing <iterations>:<salt>")?;
    let (stored, server) = keys.split_once(':').ok_or("missing <stored key>:<server key>")?;
    let iterations: usize = iterations.parse().map_err(|_| "the iteration count is not a number")?;
    if iterations < 4096 {
        return Err("fewer than 4096 iterations");
    }
    let decode = |s: &str| B64.decode(s).map_err(|_| "not base64");
    let (salt, stored_key, server_key) = (decode(salt)?, decode(stored)?, decode(server)?);
    if stored_key.len() != 32 || server_key.len() != 32 {
        return Err("the keys must be 32 bytes");
    }
    Ok(ScramSecret::Verifier { salt, iterations, stored_key, server_key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_round_trips_and_holds_no_password() {
        let v = verifier("correct horse");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!v.contains("correct horse"));
        assert!(matches!(parse_verifier(&v), Ok(ScramSecret::Verifier { iterations: 4096, .. })));
        assert_ne!(verifier("correct horse"), v, "a new salt every time");
    }

    #[test]
    fn malformed_verifiers_are_refused_with_a_reason() {
        assert!(parse_verifier("md5abcdef").is_err());
        assert!(parse_verifier("SCRAM-SHA-256$10:c2FsdA==$AAAA:AAAA").is_err());
        assert!(parse_verifier("SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA").is_err(), "short keys");
    }

    #[test]
    fn the_file_is_written_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        Users::add(&path, "ops", Role::Operations, "pw-1").unwrap();
        Users::add(&path, "audit", Role::Auditor, "pw-2").unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.get("ops").map(|u| u.role), Some(Role::Operations));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("pw-1") && !text.contains("pw-2"));
        assert!(Users::remove(&path, "ops").unwrap());
        assert!(!Users::remove(&path, "ops").unwrap());
        assert!(Users::load(&path).unwrap().get("ops").is_none());
        assert!(Users::add(&path, "bad name", Role::Admin, "x").is_err());
    }

    #[test]
    fn roles_see_phi_by_need() {
        assert!(Role::Clinician.sees(PhiClass::Clinical));
        assert!(!Role::Operations.sees(PhiClass::Clinical) && Role::Operations.sees(PhiClass::Direct));
        assert!(!Role::Auditor.sees(PhiClass::Direct) && !Role::ReadOnly.sees(PhiClass::Operational));
        assert!(Role::ReadOnly.sees(PhiClass::Identifier));
        assert_eq!(Role::parse("read_only"), Some(Role::ReadOnly));
    }
}
