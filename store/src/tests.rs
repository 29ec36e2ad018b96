//! The store opened, migrated, refused when unsafe, and written by several processes.

use super::*;

#[test]
fn many_processes_opening_a_new_store_at_once_all_get_it() {
    // Connections from threads lock the file as processes' do. Bounded: 20 rounds of 8.
    let dir = std::env::temp_dir().join(format!("wisp-store-race-{}", std::process::id()));
    for round in 0..20 {
        let path = dir.join(format!("{round}/wisp.db"));
        let gate = std::sync::Arc::new(std::sync::Barrier::new(8));
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let (path, gate) = (path.clone(), std::sync::Arc::clone(&gate));
                std::thread::spawn(move || {
                    gate.wait();
                    Store::open(&path).map(drop).map_err(|e| e.to_string())
                })
            })
            .collect();
        for o in openers {
            o.join().unwrap().unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_store_is_wal_and_at_the_newest_version() {
    let dir = std::env::temp_dir().join(format!("wisp-store-{}", std::process::id()));
    let path = dir.join("sub/wisp.db");
    let store = Store::open(&path).unwrap();
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let v: usize = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, schema::MIGRATIONS.len());
    drop(store);
    // Opening again changes nothing.
    Store::open(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_event_log_is_append_only() {
    let dir = std::env::temp_dir().join(format!("wisp-store-log-{}", std::process::id()));
    let store = Store::open(&dir.join("wisp.db")).unwrap();
    store
        .conn
        .execute(
            "INSERT INTO events (run_id, at, kind, body) VALUES (1, 'now', 'run', '{}')",
            [],
        )
        .unwrap();
    let e = store.conn.execute("DELETE FROM events", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn facts_are_cached_per_host_key_within_their_age() {
    let dir = std::env::temp_dir().join(format!("wisp-store-facts-{}", std::process::id()));
    let mut store = Store::open(&dir.join("wisp.db")).unwrap();
    let facts_run = record::RunStart {
        command: "facts".into(),
        ..Default::default()
    };
    let run = store.begin_run(&facts_run, "2026-01-01T00:00:00Z").unwrap();
    let line = record::Line::new(record::Record::Facts {
        host: "web1".into(),
        host_key: "ssh ssh-ed25519 SHA256:old".into(),
        facts: serde_json::from_str(r#"{"os_id":"debian"}"#).unwrap(),
    });
    store.record(run, &line, &line.to_json()).unwrap();
    let hour = Duration::from_secs(3600);
    let cached = store
        .cached_facts("ssh ssh-ed25519 SHA256:old", hour)
        .unwrap();
    assert_eq!(cached.as_deref(), Some(r#"{"os_id":"debian"}"#));
    // The same name with a new key (a reinstalled host) has no facts yet.
    assert_eq!(
        store
            .cached_facts("ssh ssh-ed25519 SHA256:new", hour)
            .unwrap(),
        None
    );
    // Too old: read again.
    assert_eq!(
        store
            .cached_facts("ssh ssh-ed25519 SHA256:old", Duration::ZERO)
            .unwrap(),
        None
    );
    let _ = std::fs::remove_dir_all(&dir);
}
