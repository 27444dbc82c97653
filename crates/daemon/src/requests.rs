//! Building the platform requests from the daemon's settings and stored orders.

use callbot_api::PRODUCT_ID;
use callbot_api::wire::{
    CallInfoList, CallItem, FuncFlag, ManualCallSetting, Param, SmsFuncFlag, StartupType,
    TaskCreateSetting,
};
use store::OrderRecord;

use crate::settings::TaskSettings;

/// Where the platform should send callbacks; empty strings when the daemon has no public URL (polling covers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackUrls {
    pub task: String,
    pub order: String,
    pub call: String,
}

impl CallbackUrls {
    /// `<public_url>/callbacks/{task,order,call}`.
    pub fn from_public_url(public_url: Option<&str>) -> CallbackUrls {
        match public_url {
            None => CallbackUrls::default(),
            Some(base) => {
                let base = base.trim_end_matches('/');
                CallbackUrls {
                    task: format!("{base}/callbacks/task"),
                    order: format!("{base}/callbacks/order"),
                    call: format!("{base}/callbacks/call"),
                }
            }
        }
    }
}

/// `taskCreateSetting`: always a manual start (the daemon starts the task itself, at the right moment).
pub fn task_create_setting(s: &TaskSettings, urls: &CallbackUrls) -> TaskCreateSetting {
    TaskCreateSetting {
        strategy_name: s.strategy_name.clone(),
        startup_type: StartupType::Manual,
        startup_at: 0,
        zone_second: i64::from(s.window.zone_second),
        max_ring_time: i64::from(s.max_ring_time),
        route_id: s.route_id.clone(),
        dial_at_week_day: s.window.dial_at_week_day(),
        dial_at_up_hour: s.window.dial_at_up_hour(),
        dial_at_down_hour: s.window.dial_at_down_hour(),
        max_call: i64::from(s.max_call),
        task_name: s.task_name.clone(),
        task_callback_url: urls.task.clone(),
        manual_call_setting: s.manual_call.as_ref().map(|m| ManualCallSetting {
            agent_group: m.agent_group.clone(),
            dispatch_type: m.dispatch_type,
            ratio_call_rate: m.ratio_call_rate,
            predict_call_rate: m.predict_call_rate,
        }),
    }
}

/// `funcFlag`.
pub fn func_flag(s: &TaskSettings) -> FuncFlag {
    FuncFlag {
        task_keep: s.task_keep,
        round_redial: s.round_redial,
        whole_tts: s.whole_tts,
        sms_enable: !s.sms.is_empty(),
        sms_func_flag: s
            .sms
            .iter()
            .map(|r| SmsFuncFlag {
                sms_id: r.sms_id.clone(),
                intent_id: r.intent_ids.clone(),
                intent_name: r.intent_names.clone(),
            })
            .collect(),
        phone_encrypt: s.phone_encrypt,
    }
}

/// `callInfoList` for a batch of stored orders.
pub fn call_info_list(orders: &[OrderRecord], urls: &CallbackUrls) -> CallInfoList {
    CallInfoList {
        order_callback_url: urls.order.clone(),
        call_callback_url: urls.call.clone(),
        call_list: orders.iter().map(call_item).collect(),
    }
}

fn call_item(o: &OrderRecord) -> CallItem {
    let params = match &o.variables {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(name, value)| Param {
                name: name.clone(),
                value: match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            })
            .collect(),
        _ => Vec::new(),
    };
    CallItem {
        order_id: o.order_id.clone(),
        user_phone: o.phone.clone(),
        other: o.other.clone().unwrap_or_default(),
        user_name: o.name.clone().unwrap_or_default(),
        customer_name: o.customer.clone().unwrap_or_default(),
        params,
    }
}

/// Used by the wire types' `product_id` fields.
pub fn product_id() -> String {
    PRODUCT_ID.to_owned()
}
