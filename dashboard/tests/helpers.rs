//! A dashboard over a real nats-server and a real redb file, served on a
//! real socket, and a tiny cookie-keeping browser for the tests.

#![allow(dead_code)]

use dashboard::Dashboard;
use projector::{Projection, Projector};
use proto::Level;
use proto::bus::Bus;
use proto::commands;
use proto::event::{Actor, Envelope, Event, Logged, Role};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use testkit::NatsServer;

pub const ADMIN_PW: &str = "admin-password";
pub const MEMBER_PW: &str = "member-password";

pub struct App {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub bus: Bus,
    pub base: String,
    pub projection: Projection,
    pub handle: projector::runner::ProjectorHandle,
}

pub async fn spawn() -> App {
    let nats = NatsServer::start();
    let bus = testkit::bus(&nats.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let projection = Projection::open(&dir.path().join("p.redb"), 4 << 20).unwrap();
    let projector = Projector::start(bus.clone(), projection.clone())
        .await
        .unwrap();
    let handle = projector.handle();
    tokio::spawn(projector.run(std::future::pending()));
    let admin = commands::create_user(&bus, "admin", ADMIN_PW, Role::Admin, Actor::System)
        .await
        .unwrap();
    let member = commands::create_user(&bus, "mia", MEMBER_PW, Role::Member, Actor::System)
        .await
        .unwrap();
    assert!(handle.wait_for(admin.max(member)).await);
    let d = Dashboard::new(
        bus.clone(),
        projection.clone(),
        handle.clone(),
        std::sync::Arc::new(|| true),
    )
    .with_gateway_stats(std::sync::Arc::new(|| vec![("accepted".into(), 7)]))
    // As if behind a proxy on this machine: tests speak for other
    // addresses with X-Forwarded-For.
    .with_trusted_proxies(vec![std::net::Ipv4Addr::LOCALHOST.into()]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            d.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    App {
        nats,
        dir,
        bus,
        base,
        projection,
        handle,
    }
}

impl App {
    /// Publishes a `Logged` event as the gateway would; answers its id once applied.
    pub async fn log(&self, key: Option<&str>, level: Level, message: &str) -> u64 {
        let env = Envelope::now(
            Actor::Key(key.unwrap_or("none").into()),
            Event::Logged(Logged {
                key_id: key.map(str::to_owned),
                level,
                message: message.into(),
                source: None,
                time: None,
                ip: Some("203.0.113.7".into()),
                meta: BTreeMap::new(),
                fingerprint: None,
                added_by: None,
                untrusted: false,
            }),
        );
        let id = format!("test:{}", rand_id());
        let seq = self
            .bus
            .publish(self.bus.subjects().entry(key), &env, &id)
            .await
            .unwrap()
            .seq;
        assert!(self.handle.wait_for(seq).await);
        seq
    }

    pub async fn browser(&self) -> Browser {
        Browser {
            base: self.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    pub async fn login(&self, name: &str, password: &str) -> Browser {
        let mut b = self.browser().await;
        let r = b.login(name, password).await;
        assert_eq!(r.status, 303, "login of {name}: {}", r.body);
        b
    }
}

fn rand_id() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    t + u128::from(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The first CSRF token in the page's forms.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

pub struct Browser {
    pub base: String,
    http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn page(&mut self, resp: reqwest::Response) -> Page {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.page(resp).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form
            .iter()
            .map(|(k, v)| {
                let v: String = url_encode(v);
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join("&");
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.page(resp).await
    }

    /// POSTs with the CSRF token of the page at `form_page`.
    pub async fn submit(&mut self, form_page: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(form_page).await.csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    pub async fn login(&mut self, name: &str, password: &str) -> Page {
        let csrf = self.get("/login").await.csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("password", password),
                ("next", "/log/list/"),
            ],
        )
        .await
    }
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
