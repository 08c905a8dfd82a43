//! Log sequence numbers: positions in Postgres' write-ahead log, written `X/Y` in hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A WAL position. Every August timestamp is one: a transaction's commit LSN orders it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The smallest position.
    pub const ZERO: Lsn = Lsn(0);

    /// The position just after this one.
    pub fn next(self) -> Lsn {
        Lsn(self.0.saturating_add(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s.split_once('/').ok_or_else(|| format!("`{s}` is not an LSN (X/Y)"))?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| format!("`{s}` is not an LSN (X/Y)"))?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| format!("`{s}` is not an LSN (X/Y)"))?;
        if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
            return Err(format!("`{s}` is out of range"));
        }
        Ok(Lsn((hi << 32) | lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for lsn in [Lsn(0), Lsn(0x1_6B37_4D48), Lsn(u64::MAX >> 1)] {
            assert_eq!(lsn.to_string().parse::<Lsn>().unwrap(), lsn);
        }
        assert_eq!(Lsn(0x1_6B37_4D48).to_string(), "1/6B374D48");
        assert!("16B374D48".parse::<Lsn>().is_err());
    }
}
