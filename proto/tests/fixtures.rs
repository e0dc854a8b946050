//! Event evolution: `tests/fixtures/*.msgpack` hold one event of every
//! type, as MessagePack bytes written by an earlier build of minilog (the
//! file name says which shape: `.v1` is the shape of the first release).
//! They are committed and never rewritten: every later build must still
//! decode them (and `the_committed_event_fixtures_still_apply` in
//! `projector/tests/rebuild.rs` applies them).
//!
//! To add fixtures for a new shape, add it to [`fixtures`] under a new
//! file name and run `cargo test -p proto --test fixtures -- --ignored`:
//! it writes only files that do not exist yet.

use proto::Level;
use proto::event::*;
use proto::filter::Filter;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// 2026-11-24T10:00:00Z and a few minutes after.
const T0: i64 = 1_795_514_400_000;

fn logged() -> Logged {
    Logged {
        key_id: Some("k7f3a9".into()),
        level: Level::Warn,
        message: "disk almost full".into(),
        source: Some("db-1".into()),
        time: Some(T0 - 500),
        ip: Some("203.0.113.7".into()),
        meta: BTreeMap::from([("mount".into(), "/var".into())]),
        fingerprint: Some("disk-full-db-1".into()),
        added_by: None,
        untrusted: false,
        exception: None,
    }
}

/// The events, in an order that applies cleanly (the projector test
/// applies them at sequences 1, 2, …).
fn fixtures() -> Vec<(&'static str, Envelope)> {
    let env = |minute: i64, by: Actor, event: Event| Envelope {
        at: T0 + minute * 60_000,
        by,
        event,
    };
    let alice = || Actor::User("alice".into());
    vec![
        (
            "01-user_created.v1",
            env(
                0,
                Actor::System,
                Event::UserCreated(UserCreated {
                    user_id: "alice".into(),
                    name: "alice".into(),
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
                        .into(),
                    role: Role::Admin,
                    signed_in_with: None,
                    subject: None,
                }),
            ),
        ),
        (
            "02-key_created.v1",
            env(
                1,
                Actor::Cli,
                Event::KeyCreated(KeyCreated {
                    key_id: "k7f3a9".into(),
                    description: "billing service".into(),
                    verifier: [0x5d; 32],
                    browser_key: [0x73; 32],
                    ending: "2345".into(),
                    origins: vec!["https://example.com".into()],
                    rate_limit: Some(600),
                    dsn_verifier: None,
                }),
            ),
        ),
        (
            "03-logged.v1",
            env(2, Actor::Key("k7f3a9".into()), Event::Logged(logged())),
        ),
        (
            "04-logged_by_hand.v1",
            env(
                3,
                alice(),
                Event::Logged(Logged {
                    key_id: None,
                    level: Level::Error,
                    message: "printer on fire".into(),
                    source: None,
                    time: None,
                    ip: Some("198.51.100.1".into()),
                    meta: BTreeMap::new(),
                    fingerprint: None,
                    added_by: Some("alice".into()),
                    untrusted: false,
                    exception: None,
                }),
            ),
        ),
        (
            "05-resolved_entry.v1",
            env(4, alice(), Event::Resolved(Triage::Entry(3))),
        ),
        (
            "06-unresolved_entry.v1",
            env(5, alice(), Event::Unresolved(Triage::Entry(3))),
        ),
        (
            "07-resolved_matching.v1",
            env(
                6,
                alice(),
                Event::Resolved(Triage::Matching(Rule {
                    filter: Filter {
                        levels: vec![Level::Error],
                        keys: vec!["hand".into()],
                        q: Some("fire".into()),
                        group: None,
                    },
                    upto: 4,
                    matcher: 1,
                })),
            ),
        ),
        (
            "08-key_changed.v1",
            env(
                7,
                alice(),
                Event::KeyChanged(KeyChanged {
                    key_id: "k7f3a9".into(),
                    description: Some("billing".into()),
                    origins: Some(vec![]),
                    rate_limit: Some(Some(1200)),
                }),
            ),
        ),
        (
            "09-key_revoked.v1",
            env(
                8,
                Actor::Cli,
                Event::KeyRevoked(KeyRef {
                    key_id: "k7f3a9".into(),
                }),
            ),
        ),
        (
            "10-key_restored.v1",
            env(
                9,
                Actor::Cli,
                Event::KeyRestored(KeyRef {
                    key_id: "k7f3a9".into(),
                }),
            ),
        ),
        (
            "11-password_changed.v1",
            env(
                10,
                alice(),
                Event::PasswordChanged(PasswordChanged {
                    user_id: "alice".into(),
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA".into(),
                }),
            ),
        ),
        (
            "12-role_changed.v1",
            env(
                11,
                Actor::System,
                Event::RoleChanged(RoleChanged {
                    user_id: "alice".into(),
                    role: Role::Member,
                }),
            ),
        ),
        (
            "13-user_disabled.v1",
            env(
                12,
                Actor::System,
                Event::UserDisabled(UserRef {
                    user_id: "alice".into(),
                }),
            ),
        ),
        (
            "14-user_enabled.v1",
            env(
                13,
                Actor::System,
                Event::UserEnabled(UserRef {
                    user_id: "alice".into(),
                }),
            ),
        ),
        (
            "15-carried.v1",
            env(
                14,
                Actor::System,
                Event::Carried(Carried {
                    id: 3,
                    received: T0 + 2 * 60_000,
                    logged: logged(),
                    ..carried_defaults()
                }),
            ),
        ),
        (
            "16-pruned.v1",
            env(15, Actor::System, Event::Pruned(Pruned { upto_seq: 15 })),
        ),
        (
            "17-dsn_issued.v2",
            env(
                16,
                Actor::Cli,
                Event::DsnIssued(DsnIssued {
                    key_id: "k7f3a9".into(),
                    verifier: [0x0d; 32],
                }),
            ),
        ),
        (
            "18-logged_with_exception.v2",
            env(
                17,
                Actor::Key("k7f3a9".into()),
                Event::Logged(Logged {
                    level: Level::Error,
                    message: "KeyError: 'sku'".into(),
                    exception: Some(vec![
                        Exception {
                            ty: "KeyError".into(),
                            value: "'sku'".into(),
                            module: None,
                            frames: vec![Frame {
                                filename: Some("shop/cart.py".into()),
                                function: Some("total".into()),
                                module: Some("shop.cart".into()),
                                lineno: Some(42),
                                colno: None,
                                in_app: Some(true),
                                context_line: Some("    return prices[item.sku]".into()),
                                pre_context: vec!["def total(cart):".into()],
                                post_context: vec![],
                            }],
                        },
                        Exception {
                            ty: "ZeroDivisionError".into(),
                            value: "division by zero".into(),
                            module: None,
                            frames: vec![],
                        },
                    ]),
                    ..logged()
                }),
            ),
        ),
        (
            "19-alert_added.v3",
            env(
                30,
                alice(),
                Event::AlertAdded(proto::alert::AlertAdded {
                    alert_id: "al0001".into(),
                    rule: proto::alert::AlertRule {
                        on: vec![
                            proto::alert::Trigger::New,
                            proto::alert::Trigger::Regression,
                        ],
                        min_level: Some(Level::Error),
                        keys: vec!["k7f3a9".into()],
                        q: None,
                        meta: BTreeMap::from([("environment".into(), "production".into())]),
                        min_interval_s: 3600,
                        cap_per_hour: 20,
                        target: proto::alert::Target::Webhook {
                            format: proto::alert::WebhookFormat::Slack,
                            sealed_url: "sealed1:bm90LWEtcmVhbC1zZWFsZWQtdXJs".into(),
                            shown: "https://hooks.slack.com/…".into(),
                        },
                    },
                }),
            ),
        ),
        (
            "20-alert_removed.v3",
            env(
                31,
                alice(),
                Event::AlertRemoved(proto::alert::AlertRef {
                    alert_id: "al0001".into(),
                }),
            ),
        ),
    ]
}

/// The fields `Carried` gained after v1, at their defaults.
fn carried_defaults() -> Carried {
    Carried {
        id: 0,
        received: 0,
        logged: logged(),
        history: Vec::new(),
    }
}

#[test]
#[ignore = "writes fixture files that do not exist yet; run on purpose"]
fn write_missing_fixtures() {
    std::fs::create_dir_all(dir()).unwrap();
    for (name, env) in fixtures() {
        let path = dir().join(format!("{name}.msgpack"));
        if !path.exists() {
            std::fs::write(&path, env.encode()).unwrap();
            println!("wrote {}", path.display());
        }
    }
}

#[test]
fn every_committed_fixture_still_decodes_to_what_it_was_written_from() {
    let mut names: Vec<_> = std::fs::read_dir(dir())
        .expect("proto/tests/fixtures exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".msgpack"))
        .collect();
    names.sort();
    let expected: BTreeMap<_, _> = fixtures().into_iter().collect();
    assert!(names.len() >= 16, "fixtures missing: {names:?}");
    for name in names {
        let bytes = std::fs::read(dir().join(&name)).unwrap();
        let env = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let stem = name.trim_end_matches(".msgpack");
        if let Some(want) = expected.get(stem) {
            assert_eq!(&env, want, "{name} decodes to something else");
        }
    }
}

/// A v1 `Logged` has no `exception`: it decodes with none.
#[test]
fn a_v1_logged_event_decodes_without_an_exception() {
    let bytes = std::fs::read(dir().join("03-logged.v1.msgpack")).unwrap();
    let Event::Logged(l) = Envelope::decode(&bytes).unwrap().event else {
        panic!("expected Logged")
    };
    assert_eq!(l.message, "disk almost full");
    assert_eq!(l.exception, None);
    // And a v1 key has no DSN key.
    let bytes = std::fs::read(dir().join("02-key_created.v1.msgpack")).unwrap();
    let Event::KeyCreated(k) = Envelope::decode(&bytes).unwrap().event else {
        panic!("expected KeyCreated")
    };
    assert_eq!(k.dsn_verifier, None);
}

/// A v1 `Carried` has no `history`: it decodes with an empty one.
#[test]
fn a_v1_carried_event_decodes_with_an_empty_history() {
    let bytes = std::fs::read(dir().join("15-carried.v1.msgpack")).unwrap();
    let Event::Carried(c) = Envelope::decode(&bytes).unwrap().event else {
        panic!("expected Carried")
    };
    assert_eq!(c.id, 3);
    assert!(c.history.is_empty());
}
