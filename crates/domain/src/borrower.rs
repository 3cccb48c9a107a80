//! Who borrows, in what form, and how a loan is repaid.

use crate::text::text_enum;

text_enum! {
    /// The group a borrower belongs to; decides eligibility and the interest-subsidy share.
    pub enum BorrowerCategory (field = "category") {
        /// 下岗失业人员 holding a 《再就业优惠证》.
        LaidOff = "laid_off",
        /// 登记失业人员 (就业失业登记证).
        RegisteredUnemployed = "registered_unemployed",
        /// 高校毕业生.
        Graduate = "graduate",
        /// 复员转业退役军人.
        DemobilisedSoldier = "demobilised_soldier",
        /// 返乡创业农民工.
        ReturningMigrant = "returning_migrant",
        /// 残疾人.
        Disabled = "disabled",
        /// 劳动密集型小企业 that hired a share of eligible people.
        SmallEnterprise = "small_enterprise",
    }
}

text_enum! {
    /// The legal form of the borrowing: decides which limit and which maximum term apply.
    pub enum BorrowerKind (field = "kind") {
        /// One person.
        Individual = "individual",
        /// 合伙经营: several eligible people borrowing together.
        Partnership = "partnership",
        /// 劳动密集型小企业.
        SmallEnterprise = "small_enterprise",
    }
}

text_enum! {
    /// How principal and interest are repaid.
    pub enum ScheduleMethod (field = "schedule_method") {
        /// 利随本清: everything at maturity.
        Bullet = "bullet",
        /// 按月付息到期还本: interest monthly, principal at maturity.
        InterestMonthly = "interest_monthly",
        /// 按季付息到期还本: interest quarterly, principal at maturity.
        InterestQuarterly = "interest_quarterly",
        /// 等额本息: equal monthly payments (annuity).
        EqualInstalment = "equal_instalment",
        /// 等额本金: equal monthly principal, interest on the outstanding balance.
        EqualPrincipal = "equal_principal",
    }
}

impl BorrowerKind {
    /// Firms have their own limit and maximum term.
    pub fn is_enterprise(&self) -> bool {
        matches!(self, BorrowerKind::SmallEnterprise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_match_serde() {
        for c in BorrowerCategory::ALL {
            assert_eq!(c.as_str().parse::<BorrowerCategory>().unwrap(), *c);
            assert_eq!(
                serde_json::to_string(c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        for k in BorrowerKind::ALL {
            assert_eq!(k.as_str().parse::<BorrowerKind>().unwrap(), *k);
            assert_eq!(
                serde_json::to_string(k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        for m in ScheduleMethod::ALL {
            assert_eq!(m.as_str().parse::<ScheduleMethod>().unwrap(), *m);
            assert_eq!(
                serde_json::to_string(m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert_eq!(BorrowerCategory::ALL.len(), 7);
        assert_eq!(BorrowerKind::ALL.len(), 3);
        assert_eq!(ScheduleMethod::ALL.len(), 5);
    }

    #[test]
    fn unknown_text_is_invalid_with_field() {
        let e = "retired".parse::<BorrowerCategory>().unwrap_err();
        assert_eq!(e.field(), Some("category"));
        assert!(e.message().contains("laid_off"));
        assert_eq!(
            "Bullet".parse::<ScheduleMethod>().unwrap_err().field(),
            Some("schedule_method")
        );
        assert_eq!(
            "firm".parse::<BorrowerKind>().unwrap_err().field(),
            Some("kind")
        );
    }

    #[test]
    fn schema_lists_the_snake_case_values() {
        let json =
            serde_json::to_value(<ScheduleMethod as utoipa::PartialSchema>::schema()).unwrap();
        let values: Vec<&str> = json["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            values,
            [
                "bullet",
                "interest_monthly",
                "interest_quarterly",
                "equal_instalment",
                "equal_principal"
            ]
        );
        assert!(BorrowerKind::SmallEnterprise.is_enterprise());
        assert!(!BorrowerKind::Partnership.is_enterprise());
    }
}
