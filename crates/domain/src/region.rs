//! Administrative regions by their GB/T 2260 code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::text::{serde_as_string, string_schema};
use crate::DomainError;

const DEFAULT_FIELD: &str = "region_code";

/// Level of a region in the GB/T 2260 hierarchy.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    /// 省级, `xx0000`.
    Province,
    /// 地级, `xxyy00`.
    City,
    /// 县级, `xxyyzz`.
    County,
}

impl RegionLevel {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Province => "province",
            Self::City => "city",
            Self::County => "county",
        }
    }
}

/// A six-digit GB/T 2260 administrative division code: `360000` Jiangxi, `360100` Nanchang,
/// `360102` a district of Nanchang.
///
/// Digits 1–2 are the province (never `00`), 3–4 the city, 5–6 the county. A code with a
/// county part but city part `00` (`360012`) is refused: GB/T 2260 puts counties directly under
/// a province in a `90` city part (`429004`), so `xx00zz` is a typo.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionCode(String);

impl RegionCode {
    /// The regular expression of the accepted text form (also the OpenAPI `pattern`).
    pub const PATTERN: &'static str = "^[0-9]{6}$";

    /// Parses exactly six ASCII digits forming a valid code.
    pub fn parse(text: &str) -> Result<RegionCode, DomainError> {
        if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                DEFAULT_FIELD,
                format!(
                    "\"{}\" is not a GB/T 2260 region code (six digits, e.g. \"360100\")",
                    text.escape_debug()
                ),
            ));
        }
        if &text[0..2] == "00" {
            return Err(DomainError::invalid(
                DEFAULT_FIELD,
                "a region code must not start with 00 (no such province)",
            ));
        }
        if &text[2..4] == "00" && &text[4..6] != "00" {
            return Err(DomainError::invalid(
                DEFAULT_FIELD,
                "a county-level region code needs a city part (digits 3-4 are 00)",
            ));
        }
        Ok(RegionCode(text.to_owned()))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Province if it ends in `0000`, city if it ends in `00`, county otherwise.
    pub fn level(&self) -> RegionLevel {
        if self.0.ends_with("0000") {
            RegionLevel::Province
        } else if self.0.ends_with("00") {
            RegionLevel::City
        } else {
            RegionLevel::County
        }
    }

    /// The region one level up: county `360102` → city `360100` → province `360000` → none.
    pub fn parent(&self) -> Option<RegionCode> {
        match self.level() {
            RegionLevel::Province => None,
            RegionLevel::City => Some(RegionCode(format!("{}0000", &self.0[0..2]))),
            RegionLevel::County => Some(RegionCode(format!("{}00", &self.0[0..4]))),
        }
    }

    /// The prefix shared by this region and every region below it: `36` for a province,
    /// `3601` for a city, the whole code for a county. In SQL the subtree is
    /// `code LIKE prefix || '%'` (the prefix is digits only, so no escaping is needed).
    pub fn subtree_prefix(&self) -> &str {
        match self.level() {
            RegionLevel::Province => &self.0[0..2],
            RegionLevel::City => &self.0[0..4],
            RegionLevel::County => &self.0,
        }
    }

    /// True if `other` is this region or lies below it.
    pub fn contains(&self, other: &RegionCode) -> bool {
        other.0.starts_with(self.subtree_prefix())
    }

    /// This region and its ancestors, from this one up to the province.
    pub fn ancestors_and_self(&self) -> Vec<RegionCode> {
        let mut out = vec![self.clone()];
        while let Some(p) = out.last().and_then(RegionCode::parent) {
            out.push(p);
        }
        out
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({})", self.0)
    }
}

impl FromStr for RegionCode {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionCode::parse(s)
    }
}

impl AsRef<str> for RegionCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

serde_as_string!(
    RegionCode,
    RegionCode::parse,
    "a GB/T 2260 region code as a JSON string of six digits such as \"360100\""
);

impl utoipa::PartialSchema for RegionCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            RegionCode::PATTERN,
            "360100",
            "GB/T 2260 administrative division code: province xx0000, city xxyy00, county xxyyzz.",
        )
    }
}

impl utoipa::ToSchema for RegionCode {}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    #[test]
    fn levels_and_parents() {
        let jiangxi = r("360000");
        let nanchang = r("360100");
        let donghu = r("360102");
        assert_eq!(jiangxi.level(), RegionLevel::Province);
        assert_eq!(nanchang.level(), RegionLevel::City);
        assert_eq!(donghu.level(), RegionLevel::County);
        assert_eq!(donghu.parent(), Some(nanchang.clone()));
        assert_eq!(nanchang.parent(), Some(jiangxi.clone()));
        assert_eq!(jiangxi.parent(), None);
        assert_eq!(
            donghu.ancestors_and_self(),
            vec![donghu.clone(), nanchang.clone(), jiangxi.clone()]
        );
        // A county directly under a province (湖北 仙桃 429004) has the 90 city part.
        assert_eq!(r("429004").parent(), Some(r("429000")));
    }

    #[test]
    fn subtree() {
        let jiangxi = r("360000");
        let nanchang = r("360100");
        let donghu = r("360102");
        let jiujiang = r("360400");
        assert_eq!(jiangxi.subtree_prefix(), "36");
        assert_eq!(nanchang.subtree_prefix(), "3601");
        assert_eq!(donghu.subtree_prefix(), "360102");
        assert!(jiangxi.contains(&jiangxi));
        assert!(jiangxi.contains(&donghu));
        assert!(nanchang.contains(&donghu));
        assert!(!nanchang.contains(&jiujiang));
        assert!(!donghu.contains(&nanchang));
        assert!(!jiangxi.contains(&r("110000")));
        assert!(donghu.contains(&donghu));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "36000",
            "3600000",
            "36010a",
            "000000",
            "001000",
            "360012",
            " 36010",
            "３６０１００",
        ] {
            let e = RegionCode::parse(bad).expect_err(bad);
            assert_eq!(e.field(), Some("region_code"));
        }
    }

    #[test]
    fn serde_and_schema() {
        assert_eq!(serde_json::to_string(&r("360100")).unwrap(), "\"360100\"");
        assert_eq!(
            serde_json::from_str::<RegionCode>("\"360100\"").unwrap(),
            r("360100")
        );
        assert!(serde_json::from_str::<RegionCode>("360100").is_err());
        assert!(serde_json::from_str::<RegionCode>("\"000000\"").is_err());
        let json = serde_json::to_value(<RegionCode as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(json["type"], "string");
        assert_eq!(json["pattern"], "^[0-9]{6}$");
        assert_eq!(
            serde_json::to_string(&RegionLevel::County).unwrap(),
            "\"county\""
        );
        assert_eq!(RegionLevel::City.as_str(), "city");
    }
}
