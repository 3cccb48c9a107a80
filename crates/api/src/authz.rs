//! Authorisation in one place: which roles may act, and which resources a caller may see.
//! Handlers call `require` for the role and `ensure_visible` for the resource; a resource
//! outside the caller's scope answers 404, not 403, so its existence does not leak.
use crate::auth::{Principal, Role, Scope};
use crate::error::ApiError;
use danbao_domain::RegionCode;
use uuid::Uuid;

/// Where a resource sits in the programme, as far as visibility is concerned.
#[derive(Debug, Clone, Default)]
pub struct Placement<'a> {
    pub centre_id: Option<Uuid>,
    pub bank_id: Option<Uuid>,
    /// The region the resource belongs to (a centre's region, a loan's centre's region).
    pub region_code: Option<&'a str>,
}

impl Principal {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    pub fn can_see(&self, at: &Placement<'_>) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Centre(c) => at.centre_id == Some(*c),
            Scope::Bank(b) => at.bank_id == Some(*b),
            Scope::Region(r) => at
                .region_code
                .and_then(|code| RegionCode::parse(code).ok())
                .is_some_and(|code| r.contains(&code)),
        }
    }

    /// 404 unless the resource is within the caller's scope.
    pub fn ensure_visible(&self, at: &Placement<'_>) -> Result<(), ApiError> {
        if self.can_see(at) {
            Ok(())
        } else {
            Err(ApiError::NotFound)
        }
    }

    /// The region subtree a supervisor is limited to (`None` for everyone else).
    pub fn region_limit(&self) -> Option<&RegionCode> {
        match &self.scope {
            Scope::Region(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PrincipalKind;

    fn principal(role: Role, scope: Scope) -> Principal {
        Principal {
            kind: PrincipalKind::User,
            id: Uuid::now_v7(),
            name: "t".into(),
            role,
            scope,
        }
    }

    #[test]
    fn supervisor_sees_its_region_and_below_only() {
        let nanchang = principal(
            Role::Supervisor,
            Scope::Region(RegionCode::parse("360100").unwrap()),
        );
        let at = |code| Placement {
            region_code: Some(code),
            ..Default::default()
        };
        assert!(nanchang.can_see(&at("360100")));
        assert!(nanchang.can_see(&at("360102")));
        assert!(!nanchang.can_see(&at("360200")));
        assert!(!nanchang.can_see(&at("360000")));
        let province = principal(
            Role::Supervisor,
            Scope::Region(RegionCode::parse("360000").unwrap()),
        );
        assert!(province.can_see(&at("360202")));
        assert!(!province.can_see(&at("420100")));
    }

    #[test]
    fn bank_sees_only_its_bank_and_clerk_only_its_centre() {
        let (b1, b2, c1) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let bank = principal(Role::Bank, Scope::Bank(b1));
        assert!(bank.can_see(&Placement {
            bank_id: Some(b1),
            ..Default::default()
        }));
        assert!(!bank.can_see(&Placement {
            bank_id: Some(b2),
            ..Default::default()
        }));
        let clerk = principal(Role::Clerk, Scope::Centre(c1));
        assert!(clerk.can_see(&Placement {
            centre_id: Some(c1),
            bank_id: Some(b2),
            ..Default::default()
        }));
        assert!(!clerk.can_see(&Placement {
            bank_id: Some(b1),
            ..Default::default()
        }));
        assert!(matches!(
            clerk.ensure_visible(&Placement::default()),
            Err(ApiError::NotFound)
        ));
    }

    #[test]
    fn roles_are_checked() {
        let clerk = principal(Role::Clerk, Scope::Centre(Uuid::now_v7()));
        assert!(clerk.require(&[Role::Clerk, Role::Admin]).is_ok());
        assert!(matches!(
            clerk.require(&[Role::Admin]),
            Err(ApiError::Forbidden)
        ));
    }
}
