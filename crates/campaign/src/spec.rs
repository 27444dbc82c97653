//! The parsed, validated campaign file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::calendar::{Location, Schedule};
use crate::repeat::Repeat;
use crate::retry::RetryPolicy;

/// `[opt_out]`: the intents (by name or ID) that, reported for a call by a poll or a callback, suppress the number in
/// every campaign (and stop its unfinished orders everywhere).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOut {
    pub intents: Vec<String>,
}

/// At most `max` calls to one number within any `within_secs` seconds, counted over every campaign (calls made, plus
/// orders uploaded and not finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapRule {
    pub within_secs: u64,
    pub max: u32,
}

impl CapRule {
    /// Parses a cap's window: a whole number and a unit, `m` (minutes), `h` (hours) or `d` (days), e.g. `"24h"`.
    pub fn parse_within(text: &str) -> Result<u64, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a window like \"24h\" or \"30d\""))?;
        let secs = match unit {
            "m" => n.checked_mul(60),
            "h" => n.checked_mul(3600),
            "d" => n.checked_mul(86_400),
            _ => {
                return Err(format!(
                    "`{text}`: the unit must be m, h or d, as in \"24h\""
                ));
            }
        };
        match secs {
            Some(s) if s > 0 && s <= 366 * 86_400 => Ok(s),
            _ => Err(format!("`{text}` must be more than 0 and at most a year")),
        }
    }
}

/// A campaign file after parsing and validation. Serializable so the store can keep the last good version as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSpec {
    /// Campaign id: the `id` key, or the file stem.
    pub id: String,
    /// `sceneID` of the dialogue template.
    pub scene_id: String,
    /// `taskName`; defaults to the id.
    pub task_name: String,
    /// `strategyName`; empty means the platform default.
    pub strategy: String,
    /// `maxCall`: concurrent calls, at least 1.
    pub robots: u32,
    /// `maxRingTime`, seconds.
    pub max_ring_seconds: u32,
    /// `routeID`; empty means the platform default.
    pub route_id: String,
    /// `true` holds the campaign paused.
    pub paused: bool,
    /// Bumped to run the same campaign again for the same contacts; part of every derived ID.
    pub generation: u32,
    /// When dialling is allowed.
    pub schedule: Schedule,
    /// `funcFlag`.
    pub features: Features,
    /// `smsFuncFlag`; non-empty sets `smsEnable`.
    pub sms: Vec<SmsRule>,
    /// `manualCallSetting` (AICC templates only).
    pub manual_call: Option<ManualCall>,
    /// The contact list.
    pub contacts: ContactsSpec,
    /// `[opt_out]`: what in a call means "do not call me".
    #[serde(default)]
    pub opt_out: OptOut,
    /// `[caps] attempts`: limits on calls to one number, stricter than the daemon's own (both apply).
    #[serde(default)]
    pub caps: Vec<CapRule>,
    /// `[schedule] repeat`: each occurrence of the cron expression starts a new round (a generation).
    #[serde(default)]
    pub repeat: Option<Repeat>,
    /// `[retry]`: which outcomes are dialled again, when, and how many attempts in all.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// `[schedule] rules`: the legal calling hours that narrow the calendar (default: each contact's own).
    #[serde(default)]
    pub rules: RuleChoice,
    /// The contacts by zone group, read from the whole contacts file when the campaign is loaded for running
    /// ([`crate::Audience::read`]); `None` when they were not read (then no legal rule narrows a named-zone
    /// campaign, and a `timezone = "contact"` campaign dials nobody). See [`CampaignSpec::calendar`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<crate::audience::Audience>,
    /// `[lifecycle] delete_undialled_on_remove`: removing the file deletes undialled orders only when this is true.
    pub delete_undialled_on_remove: bool,
    /// The campaign file this came from.
    pub source: PathBuf,
    /// SHA-256 (lower-case hex) of the file's bytes.
    pub content_hash: String,
    /// Where the id was written (line 1, column 1 when it comes from the file name).
    #[serde(default)]
    pub id_at: Location,
}

/// `[schedule] rules`: which legal calling hours narrow the campaign's calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleChoice {
    /// `rules = ["auto"]` (the default): each contact gets the rules of its number's country and, in the US, of its
    /// state.
    #[default]
    Auto,
    /// The rules named instead of the automatic choice, in the order written, each once; empty (`rules = []`) turns
    /// the legal calling hours off.
    Named(Vec<String>),
}

impl RuleChoice {
    /// Whether the legal calling hours are turned off (`rules = []`).
    pub fn is_off(&self) -> bool {
        matches!(self, RuleChoice::Named(names) if names.is_empty())
    }
}

/// `funcFlag` switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// `taskKeep`: the task does not end by itself when it runs out of orders.
    pub task_keep: bool,
    /// `roundRedial`: unanswered calls are redialled once within a round.
    pub round_redial: bool,
    /// `wholeTTS`: required by the platform when the template has variables.
    pub whole_tts: bool,
    /// `phoneEncrypt`: numbers are shown encrypted in the vendor console.
    pub phone_encrypt: bool,
}

/// One `[[sms]]` rule (`smsFuncFlag` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsRule {
    /// `smsID`: the SMS template.
    pub sms_id: String,
    /// `intentID`: intents that trigger the SMS.
    pub intent_ids: Vec<String>,
    /// `intentName`: the same, by name.
    pub intent_names: Vec<String>,
}

/// `[manual_call]` (`manualCallSetting`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManualCall {
    /// `agentGroup`.
    pub agent_group: String,
    /// `dispatchType`.
    pub dispatch: Dispatch,
    /// `ratioCallRate` (ratio) or `predictCallRate` (predictive); 0 for none.
    pub rate: f64,
}

/// How calls are handed to human agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dispatch {
    /// `dispatchType = 0`.
    None,
    /// `dispatchType = 1`, with `ratioCallRate`.
    Ratio,
    /// `dispatchType = 3` ("pre-test dialing 2.0"), with `predictCallRate`.
    Predictive,
}

impl Dispatch {
    /// The platform's `dispatchType` value.
    pub fn dispatch_type(self) -> i32 {
        match self {
            Dispatch::None => 0,
            Dispatch::Ratio => 1,
            Dispatch::Predictive => 3,
        }
    }
}

/// `[contacts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactsSpec {
    /// The CSV file, resolved relative to the campaign file.
    pub file: PathBuf,
    /// ISO 3166 region (e.g. `US`) for numbers written without a country code; `None` requires `+` numbers.
    pub default_country: Option<String>,
    /// Template variables, in declared order: each is a CSV column and every row must fill it.
    pub variables: Vec<String>,
    /// Numbers per `createAndCall` / `addBatchCall` request, 1..=1000.
    pub batch_size: u32,
}

impl CampaignSpec {
    /// Whether `smsEnable` is set.
    pub fn sms_enabled(&self) -> bool {
        !self.sms.is_empty()
    }
}
