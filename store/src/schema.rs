//! The store's schema, as numbered migrations: migration `n` takes a store from version `n`
//! to `n + 1` (`PRAGMA user_version`). Released migrations are never edited, only appended.

/// Every migration, in order.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: runs, their hosts and tasks, the event log, facts and audit.
    r#"
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        user        TEXT,
        machine     TEXT,
        wisp        TEXT,
        command     TEXT NOT NULL,
        program     TEXT,
        plan        TEXT,
        plan_hash   TEXT,
        targets     TEXT,
        hosts       INTEGER NOT NULL DEFAULT 0,
        options     TEXT,
        exit_code   INTEGER,
        elapsed_ms  INTEGER
    );
    CREATE TABLE host_results (
        run_id      INTEGER NOT NULL REFERENCES runs(id),
        host        TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        detail      TEXT,
        elapsed_ms  INTEGER,
        sandbox     TEXT,
        at          TEXT NOT NULL,
        PRIMARY KEY (run_id, host)
    );
    CREATE TABLE task_results (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL REFERENCES runs(id),
        host        TEXT NOT NULL,
        task        TEXT,
        op          TEXT,
        line        INTEGER,
        status      TEXT NOT NULL,
        changed     INTEGER NOT NULL,
        check_mode  INTEGER NOT NULL DEFAULT 0,
        detail      TEXT,
        exit_code   INTEGER,
        duration_ms INTEGER,
        enforcement TEXT,
        at          TEXT NOT NULL
    );
    CREATE INDEX task_results_by_run ON task_results (run_id, host);
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id      INTEGER NOT NULL,
        at          TEXT NOT NULL,
        kind        TEXT NOT NULL,
        body        TEXT NOT NULL
    );
    CREATE INDEX events_by_run ON events (run_id, seq);
    CREATE TABLE facts (
        host_key    TEXT PRIMARY KEY,
        host        TEXT NOT NULL,
        read_at     TEXT NOT NULL,
        read_unix   INTEGER NOT NULL,
        facts       TEXT NOT NULL
    );
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL,
        at          TEXT NOT NULL,
        act         TEXT NOT NULL,
        detail      TEXT
    );
    -- The event log is append-only.
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    "#,
    // 2: retries: which run a run retries, and which tasks a resumed host carried over.
    r#"
    ALTER TABLE runs ADD COLUMN retry_of INTEGER REFERENCES runs(id);
    ALTER TABLE task_results ADD COLUMN done_in INTEGER;
    ALTER TABLE task_results ADD COLUMN done_changed INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: who made the store: `wisp retry` takes plans and inventories only from a store its
    // own user made.
    r#"
    CREATE TABLE meta (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    );
    "#,
    // 4: a plan run is known by its file's absolute path: two plans both typed `plan.toml`
    // are two plans. Earlier runs get theirs from the run line of their event log.
    r#"
    ALTER TABLE runs ADD COLUMN plan_file TEXT;
    UPDATE runs SET plan_file = (
        SELECT json_extract(e.body, '$.plan_file') FROM events e
        WHERE e.run_id = runs.id AND e.kind = 'run' ORDER BY e.seq LIMIT 1
    ) WHERE plan IS NOT NULL;
    "#,
    // 5: calls made under a policy (`wisp mcp`, `wisp run --policy`), allowed or refused.
    r#"
    CREATE TABLE calls (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT NOT NULL,
        via         TEXT NOT NULL,
        client      TEXT NOT NULL,
        tool        TEXT NOT NULL,
        args        TEXT NOT NULL,
        rule        TEXT,
        decision    TEXT NOT NULL,
        outcome     TEXT NOT NULL
    );
    "#,
    // 6: plan checks waiting for, or given, an operator's approval (`wisp mcp`'s `check` and
    // `apply`, `wisp approve`).
    r#"
    CREATE TABLE approvals (
        id           TEXT PRIMARY KEY,
        at           INTEGER NOT NULL,
        asked_by     TEXT NOT NULL,
        rule         TEXT NOT NULL,
        plan_file    TEXT NOT NULL,
        plan_hash    TEXT NOT NULL,
        vars         TEXT NOT NULL,
        vars_hash    TEXT NOT NULL,
        targets      TEXT NOT NULL,
        hosts        TEXT NOT NULL,
        states       TEXT NOT NULL,
        report       TEXT NOT NULL,
        approved_by  TEXT,
        approved_at  INTEGER,
        expires_at   INTEGER,
        used_at      INTEGER
    );
    "#,
];
