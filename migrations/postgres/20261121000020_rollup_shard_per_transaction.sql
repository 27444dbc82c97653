-- campaignd store, PostgreSQL backend: each writing transaction holds a rollup shard of its own.
--
-- The rollup triggers (migrations 14 to 16) wrote to the shard pg_backend_pid() % 32, so two connections whose
-- process IDs agree modulo 32 shared one. Two transactions on such a pair, writing facts of different orders of one
-- task, upsert the same rollup rows, and an upsert over several keys takes their row locks in the order of its
-- aggregate's output, which is not the same for two different sets of keys: each can hold a row the other waits for,
-- and PostgreSQL aborts one of them (a deadlock; the callback batch is answered 503 and delivered again, a poll
-- chunk is retried). No fact is lost, but a test and a busy day see errors.
--
-- rollup_shard() gives a transaction the first shard, from its backend's own, that no other transaction holds
-- (a transaction-level advisory lock, key space 'cmpd' = 1668116580), and remembers it for the rest of the
-- transaction (a transaction-local setting), so no two transactions in flight ever write the same rollup row. With
-- more than 32 writing transactions at once, the 33rd waits for its backend's own shard: it queues behind that
-- writer instead of sharing its rows.
CREATE FUNCTION rollup_shard() RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held text := current_setting('campaignd.rollup_shard', true);
    first integer := pg_backend_pid() % 32;
    s integer;
BEGIN
    IF held IS NOT NULL AND held <> '' THEN
        RETURN held::integer;
    END IF;
    FOR i IN 0..31 LOOP
        s := (first + i) % 32;
        IF pg_try_advisory_xact_lock(1668116580, s) THEN
            PERFORM set_config('campaignd.rollup_shard', s::text, true);
            RETURN s;
        END IF;
    END LOOP;
    PERFORM pg_advisory_xact_lock(1668116580, first);
    PERFORM set_config('campaignd.rollup_shard', first::text, true);
    RETURN first;
END $$;
COMMENT ON FUNCTION rollup_shard() IS 'The rollup shard of the current transaction: one no other transaction in flight holds (advisory lock 1668116580, shard).';

-- Every function that took its shard from the backend's process ID takes it from rollup_shard() instead: each is
-- redefined from its own current definition with that one expression replaced, so nothing else in it changes.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = current_schema() AND strpos(p.prosrc, 'pg_backend_pid() % 32') > 0
          AND p.proname <> 'rollup_shard'
    LOOP
        EXECUTE replace(pg_get_functiondef(f.oid), 'pg_backend_pid() % 32', 'rollup_shard()');
    END LOOP;
END $$;
