-- campaignd store, SQLite backend: the orders never uploaded, by campaign and reason. PostgreSQL defines the same view.
-- `kind` is `suppressed` for a number on the suppression list when it was planned or claimed (its reason is the
-- entry's reason, else its source: `cli`, `file:<name>`, `opt_out:<campaign>:<call>`), else `rejected` (the
-- platform's errList reason, or a contact the daemon refused).
CREATE VIEW report_rejected AS
SELECT campaign_id,
       CASE WHEN substr(reject_reason, 1, 12) = 'suppressed: ' THEN 'suppressed' ELSE 'rejected' END AS kind,
       CASE WHEN substr(reject_reason, 1, 12) = 'suppressed: ' THEN substr(reject_reason, 13)
            ELSE COALESCE(reject_reason, '') END                                                  AS reason,
       COUNT(*)                                                                                     AS orders
FROM orders
WHERE upload_state = 'rejected'
GROUP BY 1, 2, 3;
