//! The HTML dashboard, page by page and refusal by refusal, over a real
//! nats-server and redb.

mod helpers;

use helpers::{ADMIN_PW, MEMBER_PW, spawn};
use proto::Level;
use serde_json::Value;

#[tokio::test]
async fn without_a_session_every_page_redirects_to_the_login() {
    let app = spawn().await;
    let mut b = app.browser().await;
    for path in [
        "/log/groups/",
        "/log/groups/0123456789abcdef/",
        "/log/list/",
        "/log/entry/1/",
        "/log/new/",
        "/log/keys/",
        "/log/alerts/",
        "/log/users/",
        "/log/audit/",
        "/log/health/",
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, 303, "{path}");
        assert!(p.location.unwrap().starts_with("/login?next="), "{path}");
    }
    // The groups are the landing page.
    assert_eq!(
        b.get("/log/").await.location.as_deref(),
        Some("/log/groups/")
    );
    let p = b.post("/log/entry/1/resolve", &[("csrf", "x")]).await;
    assert_eq!(p.status, 303);
}

#[tokio::test]
async fn login_sets_a_signed_httponly_cookie_and_wrong_passwords_are_limited() {
    let app = spawn().await;
    let mut b = app.browser().await;
    let wrong = b.login("admin", "not it").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong name or password"));
    // Without the login form's CSRF cookie the POST is refused.
    let mut stranger = app.browser().await;
    let p = stranger
        .post(
            "/login",
            &[
                ("csrf", "made-up"),
                ("name", "admin"),
                ("password", ADMIN_PW),
            ],
        )
        .await;
    assert_eq!(p.status, 403);

    let csrf = b.get("/login").await.csrf();
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/login", app.base))
        .header("cookie", format!("minilog_login_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={csrf}&name=admin&password={ADMIN_PW}&next=%2Flog%2Fkeys%2F"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/log/keys/");
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("minilog_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    // A forged cookie is no session.
    let mut forger = app.browser().await;
    forger.cookies.insert(
        "minilog_session".into(),
        "eyJ1c2VyX2lkIjoiYWRtaW4ifQ.AAAA".into(),
    );
    assert_eq!(forger.get("/log/list/").await.status, 303);

    // Five failures for one name, then even the right password waits.
    let mut attacker = app.browser().await;
    for _ in 0..4 {
        assert_eq!(attacker.login("mia", "guess").await.status, 401);
    }
    assert_eq!(attacker.login("mia", "guess").await.status, 401);
    let blocked = attacker.login("mia", MEMBER_PW).await;
    assert_eq!(blocked.status, 429);
    // Other names are not locked out by it.
    assert_eq!(attacker.login("admin", ADMIN_PW).await.status, 303);
}

#[tokio::test]
async fn the_list_filters_by_level_key_state_and_text_and_pages_with_a_cursor() {
    let app = spawn().await;
    for i in 0..25 {
        app.log(Some("k1"), Level::Info, &format!("routine {i}"))
            .await;
    }
    let fire = app
        .log(Some("k2"), Level::Critical, "database on fire")
        .await;
    let slow = app.log(Some("k2"), Level::Warn, "slow query").await;
    let mut b = app.login("mia", MEMBER_PW).await;

    let first = b.get("/log/list/").await;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("27 unresolved"), "the unresolved count");
    assert_eq!(first.body.matches("class=\"entry").count(), 20);
    assert!(
        first.body.find(&format!("#{slow}<")).unwrap()
            < first.body.find(&format!("#{fire}<")).unwrap(),
        "newest first"
    );
    let older = first
        .body
        .split("href=\"")
        .find(|s| s.contains("before="))
        .unwrap();
    let older = &older[..older.find('"').unwrap()].replace("&amp;", "&");
    let second = b.get(older).await;
    assert_eq!(second.body.matches("class=\"entry").count(), 7);

    let p = b.get("/log/list/?level=critical&level=warn").await;
    assert_eq!(p.body.matches("class=\"entry").count(), 2);
    // The original's parameter names keep working.
    let p = b.get("/log/list/?show=critical,warn&from=k2").await;
    assert_eq!(p.body.matches("class=\"entry").count(), 2);
    let p = b.get("/log/list/?key=k1").await;
    assert_eq!(p.body.matches("class=\"entry").count(), 20);
    assert!(p.body.contains("25 unresolved"));
    let p = b.get("/log/list/?q=FIRE").await;
    assert_eq!(p.body.matches("class=\"entry").count(), 1);
    assert!(p.body.contains("1 match the search"));
    // Counts per level for the filter.
    let p = b.get("/log/list/?key=k2").await;
    assert!(p.body.contains("2 unresolved"));
    // The volume chart counts the same, by level, for the keys and levels
    // chosen (an hour's bar may hold them all or, across the hour, not).
    assert!(
        first
            .body
            .contains("aria-label=\"27 entries in the last 24 hours")
    );
    for level in ["info", "warn", "critical"] {
        assert!(first.body.contains(&format!("class=\"lv-{level}\"")));
    }
    assert!(
        p.body
            .contains("aria-label=\"2 entries in the last 24 hours")
    );
    let p = b.get("/log/list/?key=k1&level=critical").await;
    assert!(
        p.body
            .contains("aria-label=\"0 entries in the last 24 hours")
    );
}

#[tokio::test]
async fn resolving_and_undoing_from_the_list_returns_to_the_same_filtered_page() {
    let app = spawn().await;
    let id = app.log(Some("k1"), Level::Error, "needs a look").await;
    let mut b = app.login("mia", MEMBER_PW).await;
    let here = "/log/list/?level=error";
    let p = b
        .submit(here, &format!("/log/entry/{id}/resolve"), &[("next", here)])
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some(here));
    // Read-your-writes: the redirect came after the projector applied it.
    let open = b.get(here).await;
    assert!(!open.body.contains(&format!("id=\"entry-{id}\"")));
    let done = b.get("/log/list/?level=error&resolved=true").await;
    assert!(done.body.contains("resolved by <bdi>mia</bdi>"));
    let p = b
        .submit(
            here,
            &format!("/log/entry/{id}/unresolve"),
            &[("next", here)],
        )
        .await;
    assert_eq!(p.status, 303);
    let entry = b.get(&format!("/log/entry/{id}/")).await;
    assert_eq!(entry.status, 200);
    let history = &entry.body[entry.body.find("History").unwrap()..];
    let order: Vec<usize> = ["logged", "resolved", "unresolved"]
        .iter()
        .map(|e| history.find(&format!("<td>{e}</td>")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "history in order");
    assert!(history.contains("key k1 from 203.0.113.7"));
}

#[tokio::test]
async fn a_post_without_the_right_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn().await;
    let id = app.log(Some("k1"), Level::Error, "keep me open").await;
    let mut b = app.login("mia", MEMBER_PW).await;
    let missing = b.post(&format!("/log/entry/{id}/resolve"), &[]).await;
    assert_eq!(missing.status, 403);
    let wrong = b
        .post(&format!("/log/entry/{id}/resolve"), &[("csrf", "wrong")])
        .await;
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.contains("CSRF"));
    assert!(
        app.projection
            .entry(id)
            .unwrap()
            .unwrap()
            .resolved
            .is_none()
    );
}

#[tokio::test]
async fn resolving_an_unknown_entry_is_a_404_with_a_message() {
    let app = spawn().await;
    let mut b = app.login("mia", MEMBER_PW).await;
    let p = b
        .submit("/log/list/", "/log/entry/99999/resolve", &[])
        .await;
    assert_eq!(p.status, 404);
    assert!(p.body.contains("There is no entry #99999"));
    assert_eq!(b.get("/log/entry/99999/").await.status, 404);
    assert_eq!(b.get("/log/entry/abc/").await.status, 404);
}

#[tokio::test]
async fn client_text_is_escaped_everywhere() {
    let app = spawn().await;
    let id = app
        .log(Some("k1"), Level::Error, "<script>alert(1)</script>")
        .await;
    let mut b = app.login("admin", ADMIN_PW).await;
    for path in ["/log/list/".to_owned(), format!("/log/entry/{id}/")] {
        let p = b.get(&path).await;
        assert!(!p.body.contains("<script>alert(1)</script>"), "{path}");
        assert!(
            p.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || p.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_member_is_refused_admin_pages_and_actions() {
    let app = spawn().await;
    let mut b = app.login("mia", MEMBER_PW).await;
    for path in ["/log/keys/", "/log/users/", "/log/health/"] {
        assert_eq!(b.get(path).await.status, 403, "{path}");
    }
    let p = b
        .submit("/log/list/", "/log/keys/", &[("description", "sneaky key")])
        .await;
    assert_eq!(p.status, 403);
    let p = b
        .submit(
            "/log/list/",
            "/log/users/",
            &[
                ("name", "eve"),
                ("password", "password1"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(app.projection.keys().unwrap().is_empty());
    assert_eq!(app.projection.users().unwrap().len(), 2);
    // Members may look at the audit log and add entries.
    assert_eq!(b.get("/log/audit/").await.status, 200);
    assert_eq!(b.get("/log/new/").await.status, 200);
}

#[tokio::test]
async fn adding_by_hand_records_the_user_and_refuses_bad_input() {
    let app = spawn().await;
    let mut b = app.login("mia", MEMBER_PW).await;
    let p = b
        .submit(
            "/log/new/",
            "/log/new/",
            &[
                ("message", "printer on fire\nsecond line"),
                ("level", "warning"),
                ("source", "office"),
            ],
        )
        .await;
    assert_eq!(p.status, 303);
    let path = p.location.unwrap();
    let id: u64 = path
        .trim_start_matches("/log/entry/")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let e = app.projection.entry(id).unwrap().unwrap();
    assert_eq!(e.added_by.as_deref(), Some("mia"));
    assert_eq!(e.key_id, None);
    assert_eq!(e.level, Level::Warn);
    let page = b.get(&path).await;
    assert!(page.body.contains("added by hand"));
    let bad = b
        .submit(
            "/log/new/",
            "/log/new/",
            &[("message", "x"), ("level", "info")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("at least 3 characters"));
    let bad = b
        .submit(
            "/log/new/",
            "/log/new/",
            &[("message", "fine message"), ("level", "loud")],
        )
        .await;
    assert_eq!(bad.status, 400);
    let hand = b.get("/log/list/?key=hand").await;
    assert_eq!(hand.body.matches("class=\"entry").count(), 1);
}

#[tokio::test]
async fn keys_are_created_once_shown_revoked_and_restored() {
    let app = spawn().await;
    let mut b = app.login("admin", ADMIN_PW).await;
    let p = b
        .submit(
            "/log/keys/",
            "/log/keys/",
            &[
                ("description", "billing service"),
                ("origins", "https://shop.example"),
            ],
        )
        .await;
    assert_eq!(p.status, 200);
    let at = p.body.find("id=\"secret\">").unwrap() + 12;
    let secret = &p.body[at..at + 32];
    assert!(
        p.body.contains(&format!("key={secret}")),
        "the curl line uses the secret"
    );
    let key = app.projection.keys().unwrap().pop().unwrap().key;
    assert!(secret.ends_with(&key.ending));
    assert_eq!(key.origins, vec!["https://shop.example".to_owned()]);
    // The DSN (for Sentry SDKs), shown once too, and the public DSN.
    let host = app.base.trim_start_matches("http://");
    let at = p.body.find("id=\"dsn\">").unwrap() + 9;
    let dsn = &p.body[at..at + 7 + 32 + 1 + host.len() + 2];
    let dsn_key = &dsn[7..39];
    assert!(dsn_key.bytes().all(|b| b.is_ascii_hexdigit()), "{dsn}");
    assert_eq!(dsn, format!("http://{dsn_key}@{host}/1"));
    let public_dsn = format!("http://{}@{host}/1", key.key_id);
    assert!(p.body.contains(&format!("id=\"public-dsn\">{public_dsn}<")));
    assert!(p.body.contains("data-copy=\"dsn\""));
    let list = b.get("/log/keys/").await;
    assert!(
        list.body.contains("billing service") && !list.body.contains(secret),
        "the secret is not shown again"
    );
    assert!(!list.body.contains(dsn_key), "nor the DSN key");
    assert!(list.body.contains(&public_dsn), "the public DSN is listed");
    assert!(
        list.body
            .contains(&format!("data-copy=\"public-dsn-{}\"", key.key_id))
    );

    let p = b
        .submit(
            "/log/keys/",
            &format!("/log/keys/{}/revoke", key.key_id),
            &[],
        )
        .await;
    assert_eq!(p.status, 303);
    assert!(!app.projection.key(&key.key_id).unwrap().unwrap().key.active);
    let p = b
        .submit(
            "/log/keys/",
            &format!("/log/keys/{}/restore", key.key_id),
            &[],
        )
        .await;
    assert_eq!(p.status, 303);
    assert!(app.projection.key(&key.key_id).unwrap().unwrap().key.active);
    let p = b
        .submit("/log/keys/", "/log/keys/knothere/revoke", &[])
        .await;
    assert_eq!(p.status, 404);
    let p = b
        .submit("/log/keys/", "/log/keys/", &[("description", "x")])
        .await;
    assert_eq!(p.status, 400);
}

#[tokio::test]
async fn password_role_and_disable_changes_end_that_users_sessions() {
    let app = spawn().await;
    let mut admin = app.login("admin", ADMIN_PW).await;
    let p = admin
        .submit(
            "/log/users/",
            "/log/users/",
            &[
                ("name", "bob"),
                ("password", "bob-password"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(p.status, 303);
    let dup = admin
        .submit(
            "/log/users/",
            "/log/users/",
            &[
                ("name", "Bob"),
                ("password", "bob-password"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(dup.status, 400);
    assert!(dup.body.contains("already exists"));

    // Reset password: bob's open session ends; the new password works.
    let mut bob = app.login("bob", "bob-password").await;
    assert_eq!(bob.get("/log/list/").await.status, 200);
    let p = admin
        .submit(
            "/log/users/",
            "/log/users/bob/password",
            &[("password", "new-bob-password")],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(bob.get("/log/list/").await.status, 303);
    let mut bob = app.login("bob", "new-bob-password").await;

    // Role change ends it too, and the new role applies at the next login.
    let p = admin
        .submit("/log/users/", "/log/users/bob/role", &[("role", "admin")])
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(bob.get("/log/list/").await.status, 303);
    let mut bob = app.login("bob", "new-bob-password").await;
    assert_eq!(bob.get("/log/keys/").await.status, 200);

    // Disabling ends it, and a disabled user cannot log in.
    let p = admin
        .submit("/log/users/", "/log/users/bob/disable", &[])
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(bob.get("/log/list/").await.status, 303);
    assert_eq!(
        app.browser()
            .await
            .login("bob", "new-bob-password")
            .await
            .status,
        401
    );
    let p = admin
        .submit("/log/users/", "/log/users/admin/disable", &[])
        .await;
    assert_eq!(p.status, 400, "an admin cannot disable themselves");
    let p = admin
        .submit("/log/users/", "/log/users/bob/enable", &[])
        .await;
    assert_eq!(p.status, 303);
    app.login("bob", "new-bob-password").await;

    // Changing one's own password keeps this session and ends the others.
    let mut other = app.login("mia", MEMBER_PW).await;
    let mut mia = app.login("mia", MEMBER_PW).await;
    let wrong = mia
        .submit(
            "/log/password/",
            "/log/password/",
            &[("current", "nope"), ("password", "mia-new-password")],
        )
        .await;
    assert_eq!(wrong.status, 400);
    let p = mia
        .submit(
            "/log/password/",
            "/log/password/",
            &[("current", MEMBER_PW), ("password", "mia-new-password")],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(mia.get("/log/list/").await.status, 200);
    assert_eq!(other.get("/log/list/").await.status, 303);
}

#[tokio::test]
async fn resolve_all_asks_above_three_and_leaves_later_entries_open() {
    let app = spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.log(Some("k1"), Level::Error, &format!("same failure {i}"))
                .await,
        );
    }
    let other = app.log(Some("k1"), Level::Info, "unrelated").await;
    let mut b = app.login("mia", MEMBER_PW).await;
    let list = b.get("/log/list/?level=error").await;
    let upto: String = {
        let at = list.body.find("name=\"upto\" value=\"").unwrap() + 19;
        list.body[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect()
    };
    // Arrives after the page was shown: it must stay open.
    let late = app
        .log(Some("k1"), Level::Error, "same failure, later")
        .await;
    let form = [
        ("level", "error"),
        ("upto", upto.as_str()),
        ("next", "/log/list/?level=error"),
    ];
    let ask = b
        .submit("/log/list/", "/log/resolve-matching/", &form)
        .await;
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("Resolve 5 entries?"), "{}", ask.body);
    assert!(
        ids.iter().all(|id| app
            .projection
            .entry(*id)
            .unwrap()
            .unwrap()
            .resolved
            .is_none()),
        "asking changes nothing"
    );
    let mut confirmed = form.to_vec();
    confirmed.push(("confirm", "yes"));
    let p = b
        .submit("/log/list/", "/log/resolve-matching/", &confirmed)
        .await;
    assert_eq!(p.status, 303);
    assert!(ids.iter().all(|id| {
        app.projection
            .entry(*id)
            .unwrap()
            .unwrap()
            .resolved
            .is_some()
    }));
    assert!(
        app.projection
            .entry(late)
            .unwrap()
            .unwrap()
            .resolved
            .is_none()
    );
    assert!(
        app.projection
            .entry(other)
            .unwrap()
            .unwrap()
            .resolved
            .is_none()
    );
    let audit = b.get("/log/audit/").await;
    assert!(
        audit
            .body
            .contains(&format!("entries matching level error up to #{upto}")),
        "{}",
        audit.body
    );

    // Three or fewer resolve without a question.
    let few: Vec<u64> = [
        app.log(Some("k9"), Level::Warn, "a warning").await,
        app.log(Some("k9"), Level::Warn, "b warning").await,
    ]
    .to_vec();
    let upto = few[1].to_string();
    let p = b
        .submit(
            "/log/list/",
            "/log/resolve-matching/",
            &[("key", "k9"), ("upto", &upto)],
        )
        .await;
    assert_eq!(p.status, 303);
    assert!(few.iter().all(|id| {
        app.projection
            .entry(*id)
            .unwrap()
            .unwrap()
            .resolved
            .is_some()
    }));
}

#[tokio::test]
async fn the_audit_page_lists_user_actions_newest_first_and_filters_by_user() {
    let app = spawn().await;
    let id = app.log(Some("k1"), Level::Error, "audited").await;
    let mut admin = app.login("admin", ADMIN_PW).await;
    let mut mia = app.login("mia", MEMBER_PW).await;
    mia.submit("/log/list/", &format!("/log/entry/{id}/resolve"), &[])
        .await;
    admin
        .submit(
            "/log/keys/",
            "/log/keys/",
            &[("description", "audited key")],
        )
        .await;
    let all = admin.get("/log/audit/").await;
    let key_at = all.body.find("key created").unwrap();
    let resolve_at = all.body.find(&format!("#{id}")).unwrap();
    assert!(key_at < resolve_at, "newest first");
    let only_mia = admin.get("/log/audit/?by=mia").await;
    assert!(only_mia.body.contains(&format!("#{id}")));
    assert!(!only_mia.body.contains("key created"));
}

#[tokio::test]
async fn the_health_page_shows_the_projector_and_gateway_counters() {
    let app = spawn().await;
    app.log(Some("k1"), Level::Info, "one entry").await;
    let mut admin = app.login("admin", ADMIN_PW).await;
    let p = admin.get("/log/health/").await;
    assert_eq!(p.status, 200);
    let applied = *app.handle.applied.borrow();
    assert!(p.body.contains("running"));
    assert!(p.body.contains(&format!("<td>{applied}</td>")));
    assert!(p.body.contains("0 events"), "no lag");
    assert!(p.body.contains("connected"));
    assert!(p.body.contains("accepted"));
}

#[tokio::test]
async fn views_sharing_a_session_key_file_accept_each_others_logins() {
    use dashboard::Dashboard;
    use dashboard::session::SessionKey;
    let app = spawn().await;
    let key_file = app.dir.path().join("session.key");
    let mut bases = Vec::new();
    for _ in 0..2 {
        let d = Dashboard::new(
            app.bus.clone(),
            app.projection.clone(),
            app.handle.clone(),
            std::sync::Arc::new(|| true),
        )
        .with_session_key(SessionKey::from_file(&key_file).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        bases.push(format!("http://{}", listener.local_addr().unwrap()));
        tokio::spawn(async move {
            axum::serve(
                listener,
                d.router()
                    .into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap()
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o077,
            0
        );
    }
    let mut b = app.browser().await;
    b.base = bases[0].clone();
    assert_eq!(b.login("mia", MEMBER_PW).await.status, 303);
    b.base = bases[1].clone();
    assert_eq!(
        b.get("/log/list/").await.status,
        200,
        "the other view knows the session"
    );
    // A view with another key does not.
    b.base = app.base.clone();
    assert_eq!(b.get("/log/list/").await.status, 303);
}

#[tokio::test]
async fn a_keys_browser_origins_and_rate_limit_are_changed_on_the_key_page() {
    let app = spawn().await;
    let mut b = app.login("admin", ADMIN_PW).await;
    b.submit("/log/keys/", "/log/keys/", &[("description", "web shop")])
        .await;
    let key = app.projection.keys().unwrap().pop().unwrap().key;
    let path = format!("/log/keys/{}/settings", key.key_id);
    let p = b
        .submit(
            "/log/keys/",
            &path,
            &[
                ("origins", "https://shop.example, https://www.shop.example"),
                ("rate_limit", "120"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let k = app.projection.key(&key.key_id).unwrap().unwrap().key;
    assert_eq!(
        k.origins,
        vec![
            "https://shop.example".to_owned(),
            "https://www.shop.example".to_owned()
        ]
    );
    assert_eq!(k.rate_limit, Some(120));
    let page = b.get("/log/keys/").await;
    assert!(page.body.contains("value=\"120\""));
    // Empty means the default again; nonsense is refused and changes nothing.
    let p = b
        .submit(
            "/log/keys/",
            &path,
            &[("origins", ""), ("rate_limit", "lots")],
        )
        .await;
    assert_eq!(p.status, 400);
    assert_eq!(
        app.projection
            .key(&key.key_id)
            .unwrap()
            .unwrap()
            .key
            .rate_limit,
        Some(120)
    );
    let p = b
        .submit("/log/keys/", &path, &[("origins", ""), ("rate_limit", "")])
        .await;
    assert_eq!(p.status, 303);
    let k = app.projection.key(&key.key_id).unwrap().unwrap().key;
    assert_eq!((k.origins.len(), k.rate_limit), (0, None));
    let mut member = app.login("mia", MEMBER_PW).await;
    assert_eq!(
        member
            .submit("/log/list/", &path, &[("rate_limit", "1")])
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn the_json_resolve_matching_twin_resolves_up_to_its_id_and_answers_the_count() {
    let app = spawn().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            app.log(Some("k1"), Level::Error, &format!("cron failed {i}"))
                .await,
        );
    }
    let keep = app.log(Some("k2"), Level::Error, "other source").await;
    let late = app.log(Some("k1"), Level::Error, "cron failed later").await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/entries/resolve-matching", app.base);
    let body = serde_json::json!({"level": ["error"], "key": ["k1"], "q": "CRON", "upto": ids[3]});
    let r = http
        .post(&url)
        .basic_auth("mia", Some(MEMBER_PW))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["matched"], 4);
    assert!(answer["seq"].as_u64().unwrap() > late);
    // Answered after the rule was applied.
    assert!(ids.iter().all(|id| {
        app.projection
            .entry(*id)
            .unwrap()
            .unwrap()
            .resolved
            .is_some()
    }));
    assert!(
        app.projection
            .entry(keep)
            .unwrap()
            .unwrap()
            .resolved
            .is_none()
    );
    assert!(
        app.projection
            .entry(late)
            .unwrap()
            .unwrap()
            .resolved
            .is_none()
    );

    let bad = http
        .post(&url)
        .basic_auth("mia", Some(MEMBER_PW))
        .json(&serde_json::json!({"level": ["loud"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = http
        .post(&url)
        .basic_auth("mia", Some(MEMBER_PW))
        .json(&serde_json::json!({"levels": ["error"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        400,
        "a misspelt field is refused, not ignored"
    );
    let anon = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(anon.status(), 401);
}

#[tokio::test]
async fn the_entry_page_shows_the_exception_chain_newest_frame_first() {
    use proto::event::{Exception, Frame, Logged};
    let app = spawn().await;
    let frame = |file: &str, function: &str, line: u32, in_app: bool| Frame {
        filename: Some(file.into()),
        function: Some(function.into()),
        lineno: Some(line),
        in_app: Some(in_app),
        context_line: Some(format!("<line {line} of {file}>")),
        pre_context: vec!["before".into()],
        post_context: vec!["after".into()],
        ..Frame::default()
    };
    let id = app
        .log_logged(Logged {
            key_id: Some("k1".into()),
            exception: Some(vec![
                Exception {
                    ty: "KeyError".into(),
                    value: "'sku'".into(),
                    module: None,
                    frames: vec![
                        frame("lib/runner.py", "run", 7, false),
                        frame("shop/cart.py", "total", 42, true),
                    ],
                },
                Exception {
                    ty: "ZeroDivisionError".into(),
                    value: "division by zero".into(),
                    module: None,
                    frames: vec![frame("shop/price.py", "ratio", 3, true)],
                },
            ]),
            ..Logged::new(Level::Error, "KeyError: 'sku'")
        })
        .await;
    let mut b = app.login("admin", ADMIN_PW).await;
    let body = b.get(&format!("/log/entry/{id}/")).await.body;
    let at = |text: &str| {
        body.find(text)
            .unwrap_or_else(|| panic!("{text:?} not on the page"))
    };
    // The chain outermost first; in each, the newest call first.
    assert!(at("ZeroDivisionError") > at("shop/cart.py:42"));
    assert!(at("shop/cart.py:42") < at("lib/runner.py:7"));
    assert!(at("raised while handling") > at("lib/runner.py:7"));
    // The sender's own frames are marked, and context lines are shown
    // (escaped) around the frame's own line, numbered.
    assert_eq!(body.matches("class=\"frame in-app\"").count(), 2, "{body}");
    assert_eq!(body.matches("class=\"frame\"").count(), 1);
    assert!(body.contains("&#60;line 42 of shop/cart.py&#62;") || body.contains("&lt;line 42"));
    assert!(body.contains("<span class=\"no\">41</span>"), "{body}");

    // The JSON detail carries the chain; the list does not.
    let http = reqwest::Client::new();
    let detail: serde_json::Value = http
        .get(format!("{}/api/v1/entries/{id}", app.base))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["exception"][0]["type"], "KeyError");
    assert_eq!(detail["exception"][0]["frames"][1]["lineno"], 42);
    assert_eq!(detail["exception"][1]["type"], "ZeroDivisionError");
    let list: serde_json::Value = http
        .get(format!("{}/api/v1/entries?resolved=all", app.base))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["entries"][0].get("exception").is_none());
}

#[tokio::test]
async fn the_groups_page_folds_repeats_and_resolves_a_group_after_asking() {
    let app = spawn().await;
    for i in 1..=5 {
        app.log(Some("k1"), Level::Error, &format!("timeout after {i}00 ms"))
            .await;
    }
    app.log(Some("k1"), Level::Warn, "disk full on <b>var</b>")
        .await;
    let mut b = app.login("admin", ADMIN_PW).await;
    assert_eq!(b.get("/").await.location.as_deref(), Some("/log/groups/"));
    let p = b.get("/log/groups/").await;
    assert_eq!(p.status, 200);
    assert_eq!(p.body.matches("id=\"group-").count(), 2, "{}", p.body);
    assert!(
        p.body.contains("timeout after &#60;n&#62; ms")
            || p.body.contains("timeout after &lt;n&gt; ms")
    );
    assert!(!p.body.contains("<b>var</b>"), "client text is escaped");
    assert_eq!(p.body.matches("<svg class=\"spark\"").count(), 2);
    assert!(p.body.contains("5 in the last 24 hours"));
    let gid = app
        .projection
        .all_groups()
        .unwrap()
        .into_iter()
        .find(|(_, g)| g.count == 5)
        .unwrap()
        .0;
    let page = b.get(&format!("/log/groups/{gid}/")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg class=\"chart\""));
    assert_eq!(page.body.matches("class=\"entry").count(), 5);
    assert!(page.body.contains("timeout after 500 ms"));

    // Five open entries: it asks first, then resolves them all.
    let here = format!("/log/groups/{gid}/");
    let ask = b
        .submit(
            &here,
            &format!("/log/groups/{gid}/resolve"),
            &[("next", &here)],
        )
        .await;
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("Resolve 5 entries"), "{}", ask.body);
    assert_eq!(app.projection.group(&gid).unwrap().unwrap().open_count, 5);
    let done = b
        .submit(
            &here,
            &format!("/log/groups/{gid}/resolve"),
            &[("next", &here), ("confirm", "yes")],
        )
        .await;
    assert_eq!(done.status, 303);
    assert!(done.location.unwrap().contains("done="));
    let g = app.projection.group(&gid).unwrap().unwrap();
    assert_eq!(g.open_count, 0);
    assert_eq!(g.resolved.unwrap().by, "admin");
    let open = b.get("/log/groups/").await;
    assert_eq!(open.body.matches("id=\"group-").count(), 1);
    let resolved = b.get("/log/groups/?resolved=true").await;
    assert!(resolved.body.contains(&format!("id=\"group-{gid}\"")));
    // Reopened without asking; the entries page shows the group's entries.
    let reopened = b
        .submit(
            &here,
            &format!("/log/groups/{gid}/unresolve"),
            &[("next", &here)],
        )
        .await;
    assert_eq!(reopened.status, 303);
    assert_eq!(app.projection.group(&gid).unwrap().unwrap().open_count, 5);
    let listed = b.get(&format!("/log/list/?resolved=all&group={gid}")).await;
    assert_eq!(listed.body.matches("class=\"entry").count(), 5);
    // The group's page tells its story, newest first.
    let page = b.get(&here).await;
    let history = &page.body[page.body.find("<ol class=\"history\">").unwrap()..];
    let history = &history[..history.find("</ol>").unwrap()];
    let reopened = history.find("Reopened</strong> by <bdi>admin").unwrap();
    let resolved = history.find("Resolved</strong> by <bdi>admin").unwrap();
    let first = history.find("First seen").unwrap();
    assert!(reopened < resolved && resolved < first, "{history}");
}

#[tokio::test]
async fn admins_add_test_and_remove_alert_rules_on_the_alerts_page() {
    // A receiver for the test alert.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Value)>::new()));
    let record = seen.clone();
    let hook = axum::Router::new().route(
        "/hook/SECRET",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let record = record.clone();
                async move {
                    let id = headers["minilog-alert-id"].to_str().unwrap().to_owned();
                    record.lock().unwrap().push((id, body));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook/SECRET", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let app = spawn().await;
    let mut member = app.login("mia", MEMBER_PW).await;
    assert_eq!(member.get("/log/alerts/").await.status, 403);
    let mut b = app.login("admin", ADMIN_PW).await;
    let page = b.get("/log/alerts/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No alert rules yet"));
    // A bad form says what to fix and adds nothing.
    let bad = b
        .submit(
            "/log/alerts/",
            "/log/alerts/",
            &[("on", "new"), ("target", "webhook"), ("webhook", "ftp://x")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("http:// or https://"), "{}", bad.body);
    assert!(app.projection.alerts().unwrap().is_empty());
    let added = b
        .submit(
            "/log/alerts/",
            "/log/alerts/",
            &[
                ("on", "new"),
                ("on", "regression"),
                ("level", "error"),
                ("meta", "environment=production"),
                ("cap", "7"),
                ("target", "webhook"),
                ("webhook", &hook_url),
                ("format", "json"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let rules = app.projection.alerts().unwrap();
    assert_eq!(rules.len(), 1);
    let (id, rule) = &rules[0];
    assert_eq!(rule.created_by, "admin");
    assert_eq!(rule.rule.cap_per_hour, 7);
    let page = b.get("/log/alerts/").await;
    assert!(page.body.contains(&format!("id=\"alert-{id}\"")));
    assert!(page.body.contains("level error and up"));
    // The list shows the host, never the secret path.
    assert!(!page.body.contains("SECRET"), "{}", page.body);
    // Send a test: the receiver gets it.
    let tested = b
        .submit("/log/alerts/", &format!("/log/alerts/{id}/test"), &[])
        .await;
    assert_eq!(tested.status, 303);
    let location = tested.location.unwrap();
    assert!(location.contains("Sent"), "{location}");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].0.starts_with(&format!("{id}-test-")));
        assert_eq!(seen[0].1["reason"], "test");
    }
    // The audit names it; removing it ends it.
    let audit = b.get("/log/audit/").await;
    assert!(
        audit
            .body
            .contains(&format!("alert added</td><td><bdi>alert {id} (on new")),
        "{}",
        audit.body
    );
    let removed = b
        .submit("/log/alerts/", &format!("/log/alerts/{id}/remove"), &[])
        .await;
    assert_eq!(removed.status, 303);
    assert!(app.projection.alerts().unwrap().is_empty());
    let health = b.get("/log/health/").await;
    assert!(health.body.contains("No alert rules"));
}
