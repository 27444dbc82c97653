//! A backend's `impl Store`, written once for every backend.

/// Implements [`Store`](crate::Store) for a backend type by forwarding each method to the function of the same name
/// and arguments in the backend's module for it, with the backend itself first: `campaigns::tasks(self,
/// campaign_id)`. The modules are the layout every backend keeps, side by side: `campaigns` (campaigns and tasks),
/// `orders`, `facts`, `suppressions` (suppression lists and opt-outs), `ledger` (ledger, callbacks, leases),
/// `report`, and `util::ping`. A function missing from its module, or with other arguments, is a compile error in
/// the backend.
///
/// The methods whose whole body is written once, here, go to that function instead, over the backend's statements:
/// [`upload::set_upload_state`](crate::backend::upload::set_upload_state) and
/// [`upload::settle_and_claim`](crate::backend::upload::settle_and_claim) (the backend implements
/// [`UploadStore`](crate::backend::upload::UploadStore)), and [`suppress::suppress`](crate::backend::suppress::suppress),
/// [`suppress::unsuppress`](crate::backend::suppress::unsuppress) and
/// [`suppress::replace_suppression_source`](crate::backend::suppress::replace_suppression_source)
/// ([`SuppressionStore`](crate::backend::suppress::SuppressionStore)).
///
/// ```ignore
/// store::impl_store!(SqliteStore, write_concurrency = 1);
/// ```
#[macro_export]
macro_rules! impl_store {
    ($backend:ty, write_concurrency = $writers:expr) => {
        $crate::impl_store!(@forward $backend, $writers; backend {
            util::ping() -> ();
            campaigns::upsert_campaigns(cs: &[$crate::CampaignRecord]) -> ();
            campaigns::campaigns() -> Vec<$crate::CampaignRecord>;
            campaigns::tasks(campaign_id: &str) -> Vec<$crate::TaskRecord>;
            campaigns::tasks_of(campaign_ids: &[String]) -> Vec<$crate::TaskRecord>;
            campaigns::zone_groups(user_task_id: &str) -> Vec<String>;
            campaigns::zone_groups_of(user_task_ids: &[String]) -> Vec<(String, String)>;
            campaigns::record_contacts_planned(
                planned: &[(String, String, u64)],
                at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>
            ) -> ();
            campaigns::contacts_planned_of(user_task_ids: &[String]) -> Vec<(String, String, u64)>;
            campaigns::record_zone_groups_of_orders(orders: &[(String, String)]) -> ();
            campaigns::task_create_intent(
                key: &$crate::TaskKey,
                settings: &$crate::backend::serde_json::Value,
                at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>
            ) -> ();
            campaigns::task_status_observed(
                user_task_id: &str,
                status: i64,
                task_id: Option<&str>,
                at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>
            ) -> bool;
            campaigns::task_settings_sent(
                user_task_id: &str,
                settings: &$crate::backend::serde_json::Value,
                at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>
            ) -> ();
            campaigns::task_toggle_intent(user_task_id: &str, at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>) -> ();
            campaigns::task_settings_forgotten(user_task_id: &str, at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>) -> ();
            campaigns::task_not_created(user_task_id: &str, at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>) -> ();
            orders::insert_planned_orders(orders: &[$crate::NewOrder], now: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>) -> u64;
            orders::insert_planned_orders_in_groups(
                orders: &[$crate::NewOrder],
                zone_groups: &[(String, String)],
                now: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>
            ) -> u64;
            orders::orders_in_state(
                user_task_id: &str,
                state: $crate::UploadState,
                limit: u32
            ) -> Vec<$crate::OrderRecord>;
            orders::order(order_id: &str) -> Option<$crate::OrderRecord>;
            orders::held_numbers(
                user_task_id: &str,
                caps: &[$crate::Cap],
                at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>
            ) -> $crate::Held;
            orders::orders_to_poll(user_task_id: &str, limit: u32) -> Vec<String>;
            orders::mark_polled(order_ids: &[String], at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>) -> ();
            orders::retries_due(user_task_id: &str, q: &$crate::RetryQuery, limit: u32) -> $crate::RetriesDue;
            orders::orders_to_stop(user_task_id: &str, now: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>, limit: u32) -> Vec<String>;
            orders::mark_stop(order_ids: &[String], state: $crate::StopState, at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>) -> u64;
            facts::apply_order_facts(facts: &[$crate::OrderFacts], source: $crate::FactSource) -> ();
            facts::record_poll(
                facts: &[$crate::OrderFacts],
                polled: &[String],
                at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>
            ) -> ();
            facts::calls_of_order(order_id: &str) -> Vec<$crate::CallFacts>;
            orders::order_counts(campaign_id: &str) -> $crate::OrderCounts;
            orders::order_progress(user_task_id: &str) -> $crate::OrderProgress;
            orders::order_progress_of(user_task_ids: &[String]) -> Vec<$crate::OrderProgress>;
            suppressions::suppressions(filter: &$crate::SuppressionFilter) -> Vec<$crate::Suppression>;
            suppressions::suppression_file_sources() -> Vec<String>;
            suppressions::suppression_version() -> i64;
            suppressions::opt_out_calls(campaign_id: &str, intents: &[String], limit: u32) -> Vec<$crate::OptOutCall>;
            ledger::record_actions(actions: &[$crate::ActionRecord]) -> ();
            ledger::recent_actions(limit: u32) -> Vec<$crate::ActionRecord>;
            ledger::recent_callbacks(limit: u32) -> Vec<$crate::CallbackRecord>;
            ledger::ingest_callbacks(batch: &[$crate::CallbackIngest]) -> Vec<$crate::Ingested>;
            ledger::prune_ledger(older_than: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>, max_rows: u32) -> u64;
            ledger::try_acquire_leases(
                campaign_ids: &[String],
                owner: &str,
                now: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>,
                ttl: std::time::Duration
            ) -> Vec<bool>;
            ledger::release_lease(campaign_id: &str, owner: &str) -> ();
            ledger::leases(campaign_ids: &[String]) -> Vec<$crate::LeaseRecord>;
            report::report(filter: &$crate::ReportFilter) -> $crate::Report;
            report::rebuild_rollups() -> ();
        } shared {
            upload::set_upload_state(
                order_ids: &[String],
                state: $crate::UploadState,
                at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>
            ) -> u64;
            upload::settle_and_claim(
                sent: &[String],
                rejected: &[(String, String)],
                user_task_id: &str,
                claim: u32,
                at: $crate::backend::chrono::DateTime<$crate::backend::chrono::Utc>,
                caps: &[$crate::Cap]
            ) -> Vec<$crate::OrderRecord>;
            suppress::suppress(entries: &[$crate::Suppression]) -> u64;
            suppress::unsuppress(phones: &[String], source: Option<&str>) -> u64;
            suppress::replace_suppression_source(source: &str, entries: &[$crate::Suppression]) -> $crate::SourceSync;
        });
    };
    (@forward $backend:ty, $writers:expr; backend {
        $($module:ident :: $method:ident ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty;)*
    } shared {
        $($shared:ident :: $smethod:ident ($($sarg:ident : $sty:ty),* $(,)?) -> $sret:ty;)*
    }) => {
        #[$crate::backend::async_trait]
        impl $crate::Store for $backend {
            fn write_concurrency(&self) -> usize {
                $writers
            }
            $(
                async fn $method(&self, $($arg: $ty),*) -> ::std::result::Result<$ret, $crate::StoreError> {
                    $module::$method(self, $($arg),*).await
                }
            )*
            $(
                async fn $smethod(&self, $($sarg: $sty),*) -> ::std::result::Result<$sret, $crate::StoreError> {
                    $crate::backend::$shared::$smethod(self, $($sarg),*).await
                }
            )*
        }
    };
}
