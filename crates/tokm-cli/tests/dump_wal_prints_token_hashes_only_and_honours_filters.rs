//! `tokm dump wal` prints one JSON line per record with the token hash (never the token),
//! metadata as value lengths, and honours `--from-lsn`, `--to-lsn` and `--session`.
mod common;

use tokm_domain::Clock;
use tokm_domain::SystemClock;
use tokm_domain::testkit::SessionFactory;

#[test]
fn dump_wal_prints_token_hashes_only_and_honours_filters() {
    let data = common::build(&[3, 2], &[]);
    let dir = data.path().to_str().unwrap();

    let all = common::tokm(&["dump", "wal", dir]);
    assert_eq!(all.status.code(), Some(0), "{}", common::stderr(&all));
    let lines = common::stdout_json_lines(&all);
    assert_eq!(lines.len(), 5);
    for (index, (line, session)) in lines.iter().zip(&data.sessions).enumerate() {
        assert_eq!(line["lsn"], index + 1);
        assert_eq!(line["op"], "create");
        assert_eq!(line["session_id"], session.id().to_string());
        let hash: String = session
            .fields()
            .token_hash
            .as_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(line["session"]["token_hash"], hash);
    }
    // The factory's raw tokens never appear.
    let factory = SessionFactory::new(7, SystemClock.now());
    let text = String::from_utf8(all.stdout.clone()).unwrap();
    for index in 0..5 {
        assert!(!text.contains(&factory.token(index)));
    }

    let range = common::tokm(&["dump", "wal", dir, "--from-lsn", "2", "--to-lsn", "4"]);
    let lsns: Vec<u64> = common::stdout_json_lines(&range)
        .iter()
        .map(|line| line["lsn"].as_u64().unwrap())
        .collect();
    assert_eq!(lsns, [2, 3, 4]);

    let id = data.sessions[3].id().to_string();
    let one = common::tokm(&["dump", "wal", dir, "--session", &id]);
    let lines = common::stdout_json_lines(&one);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["session_id"], id);

    let bad = common::tokm(&["dump", "wal", dir, "--session", "not-a-ulid"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(common::stderr(&bad).contains("TM-CLI-4001"));
}
