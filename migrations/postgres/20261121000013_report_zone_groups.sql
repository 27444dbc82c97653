-- campaignd store, PostgreSQL backend: the report by zone group. SQLite defines the same view.
-- One row per task that dials one zone group (each task of a timezone = "contact" campaign, and a named-zone campaign
-- whose contacts all share one group), with its orders and calls as report_rounds counts them; zone_group is the
-- group as JSON: {"zones": [IANA names], "rules": [rule names]}. A named-zone task with contacts in several groups has
-- no row: its orders are not kept by group.
CREATE VIEW report_zone_groups AS
SELECT r.campaign_id,
       r.generation,
       r.user_task_id,
       g.zone_group,
       r.orders_total,
       r.orders_finished,
       r.calls,
       r.calls_answered,
       r.first_call_at,
       r.last_call_at
FROM report_rounds r
JOIN task_zone_groups g ON g.user_task_id = r.user_task_id
WHERE (SELECT COUNT(*) FROM task_zone_groups x WHERE x.user_task_id = r.user_task_id) = 1;
COMMENT ON VIEW report_zone_groups IS 'Each task that dials one zone group, with the group (JSON: zones and rules) and its orders and calls.';
