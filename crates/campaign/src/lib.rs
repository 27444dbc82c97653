#![doc = include_str!("../README.md")]

mod audience;
mod calendar;
mod contacts;
mod contacts_file;
mod diagnostics;
mod ids;
mod limits;
mod parse;
mod records;
mod repeat;
mod retry;
mod rules;
mod spec;
mod suppression;
mod zones;

pub use audience::{
    Audience, AudienceSource, ContactCalendar, GroupCount, MAX_UNZONED_LINES, MAX_ZONE_GROUPS,
    ZoneGroup, group_of, rules_of,
};
pub use calendar::{
    DialWindow, HourRange, Location, Schedule, Stretch, WindowRule, Zone, format_offset,
    stretch_at, stretches,
};
pub use contacts::{
    Contact, ContactIssue, ContactIssueKind, ContactReader, ContactSummary, ContactsError,
    normalize_phone,
};
pub use contacts_file::{ContactsFileError, FileStamp, open_contacts_file};
pub use diagnostics::{Diagnostic, Diagnostics, MAX_QUOTED_CHARS, Severity, escape_input};
pub use ids::{ID_NAMESPACE, attempt_order_id, order_id, user_task_id, zone_group_task_id};
pub use limits::{
    ContactLimits, MAX_CAMPAIGN_FILE_BYTES, MAX_CONTACTS_FILE_BYTES, MAX_FIELDS, MAX_RECORD_BYTES,
};
pub use parse::{
    MAX_BATCH_SIZE, load_campaign, load_campaign_with_limits, load_campaign_with_warnings,
    parse_campaign, validate_set, warnings_at,
};
pub use repeat::{
    MAX_REPEAT_GENERATION, MAX_ROUNDS, NextRound, ROUNDS_PER_GENERATION, Repeat, Round, parse_cron,
};
pub use retry::{MAX_ATTEMPTS_LIMIT, RetryClass, RetryPolicy, RetryRule};
pub use rules::{
    Rule, RuleCalls, RuleHours, auto_rules, holidays_data_version, rule, rules, rules_version,
};
pub use spec::{
    CampaignSpec, CapRule, ContactsSpec, Dispatch, Features, ManualCall, OptOut, RuleChoice,
    SmsRule,
};
pub use suppression::{
    SuppressionEntry, SuppressionFile, SuppressionFileError, SuppressionIssue, expiry_of,
    parse_suppressions, read_suppression_file,
};

pub use zones::{libphonenumber_data_version, us_state_of, zones_of};

/// Re-exported so that callers name the same time types without their own dependency.
pub use chrono;
pub use chrono_tz;
