//! Deterministic identifiers: the same inputs give the same IDs in every version of campaignd.

use uuid::Uuid;

/// The namespace of every campaignd ID: UUIDv5 of the URL `urn:campaignd:ids` under the RFC 4122 URL namespace,
/// written out so that it can never drift.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0xeada_c3fb_441c_56b8_b5f6_7e83_4b7c_9bf2);

/// The platform `orderID` of one contact: UUIDv5 under [`ID_NAMESPACE`] of
/// `"campaignd/order/v1\n{campaign_id}\n{generation}\n{normalized_phone}"`, hyphenated lower case.
pub fn order_id(campaign_id: &str, generation: u32, normalized_phone: &str) -> String {
    let name = format!("campaignd/order/v1\n{campaign_id}\n{generation}\n{normalized_phone}");
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// The `orderID` of a contact's attempt number `attempt` (1 for the first). The first attempt's ID is
/// [`order_id`], unchanged, so campaigns that ran before retries existed are never uploaded again; a later attempt's is
/// UUIDv5 under [`ID_NAMESPACE`] of `"campaignd/order/v1\n{campaign_id}\n{generation}\n{normalized_phone}\n{attempt}"`.
pub fn attempt_order_id(
    campaign_id: &str,
    generation: u32,
    normalized_phone: &str,
    attempt: u32,
) -> String {
    if attempt <= 1 {
        return order_id(campaign_id, generation, normalized_phone);
    }
    let name =
        format!("campaignd/order/v1\n{campaign_id}\n{generation}\n{normalized_phone}\n{attempt}");
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// The platform `userTaskID` of the campaign's task number `task_index` (0 for the first task of a generation):
/// UUIDv5 under [`ID_NAMESPACE`] of `"campaignd/task/v1\n{campaign_id}\n{generation}\n{task_index}"`.
pub fn user_task_id(campaign_id: &str, generation: u32, task_index: u32) -> String {
    let name = format!("campaignd/task/v1\n{campaign_id}\n{generation}\n{task_index}");
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// The platform `userTaskID` of a zone group's task in a campaign with `timezone = "contact"`: UUIDv5 under
/// [`ID_NAMESPACE`] of `"campaignd/task/v1\n{campaign_id}\n{generation}\ngroup\n{label}"`, where the label names
/// the group's zones and rules ([`crate::ZoneGroup::label`]). Order IDs never depend on the group.
pub fn zone_group_task_id(campaign_id: &str, generation: u32, group: &crate::ZoneGroup) -> String {
    let name = format!(
        "campaignd/task/v1\n{campaign_id}\n{generation}\ngroup\n{}",
        group.label()
    );
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_the_documented_derivation() {
        assert_eq!(
            ID_NAMESPACE,
            Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:campaignd:ids")
        );
    }

    #[test]
    fn order_id_matches_fixed_vectors() {
        assert_eq!(
            order_id("spring-renewals", 1, "14155550123"),
            "5895bebe-f2cf-5382-b359-f9f0d6c4bdd6"
        );
        assert_eq!(
            order_id("spring-renewals", 2, "14155550123"),
            "7aeefa69-0166-5cbe-86ad-1686025e5f3b"
        );
    }

    #[test]
    fn user_task_id_matches_fixed_vectors() {
        assert_eq!(
            user_task_id("spring-renewals", 1, 0),
            "90fdc0cb-46f1-56a6-bd8b-d18f6e332150"
        );
        assert_eq!(
            user_task_id("spring-renewals", 1, 1),
            "d4d2e762-f5b0-556f-8439-5823d9da42b2"
        );
    }

    #[test]
    fn the_first_attempt_keeps_the_order_id_and_later_ones_differ() {
        let first = order_id("spring-renewals", 1, "14155550123");
        assert_eq!(
            attempt_order_id("spring-renewals", 1, "14155550123", 1),
            first
        );
        let ids: std::collections::HashSet<String> = (1..=10)
            .map(|n| attempt_order_id("spring-renewals", 1, "14155550123", n))
            .collect();
        assert_eq!(ids.len(), 10, "each attempt has its own ID");
        assert_eq!(
            attempt_order_id("spring-renewals", 1, "14155550123", 2),
            attempt_order_id("spring-renewals", 1, "14155550123", 2),
            "deterministic"
        );
        assert_ne!(
            attempt_order_id("spring-renewals", 1, "14155550123", 2),
            attempt_order_id("spring-renewals", 2, "14155550123", 2)
        );
    }

    #[test]
    fn ids_differ_by_every_input() {
        let base = order_id("a", 1, "4420");
        assert_ne!(base, order_id("b", 1, "4420"));
        assert_ne!(base, order_id("a", 2, "4420"));
        assert_ne!(base, order_id("a", 1, "4421"));
        assert_ne!(user_task_id("a", 1, 0), base);
    }

    #[test]
    fn zone_group_task_ids_depend_on_the_group_and_never_on_an_index() {
        use crate::{Zone, ZoneGroup};
        let ny = ZoneGroup::new(
            vec![Zone::Iana(chrono_tz::Tz::America__New_York)],
            vec!["us".to_string()],
        );
        let fl = ZoneGroup::new(
            vec![Zone::Iana(chrono_tz::Tz::America__New_York)],
            vec!["us-fl".to_string(), "us".to_string()],
        );
        let a = zone_group_task_id("c", 1, &ny);
        assert_eq!(a, zone_group_task_id("c", 1, &ny.clone()));
        assert_ne!(a, zone_group_task_id("c", 1, &fl));
        assert_ne!(a, zone_group_task_id("c", 2, &ny));
        assert_ne!(a, user_task_id("c", 1, 0));
        assert_eq!(
            zone_group_task_id("spring-renewals", 1, &ny),
            Uuid::new_v5(
                &ID_NAMESPACE,
                b"campaignd/task/v1\nspring-renewals\n1\ngroup\nAmerica/New_York [us]"
            )
            .hyphenated()
            .to_string()
        );
    }
}
