//! Connecting to NATS, the one way every command does it.

use crate::config::NatsArgs;
use crate::embedded::{Credentials, Embedded};
use crate::paths::DataDir;
use anyhow::Context;
use proto::bus::{Bus, NatsAuth, NatsConfig};
use proto::subjects::Subjects;

/// Connects as `name` (how the server lists the connection). The address:
/// `--nats-url`, else the embedded server this process runs, else the one
/// a `minilog serve` on the same `--data` wrote to `DATA/nats.url`. The
/// credentials: the flags, else the embedded server's, else the data
/// directory's generated ones (`nats-credentials.json`), else none.
pub async fn connect(
    nats: &NatsArgs,
    name: &str,
    embedded: Option<&Embedded>,
) -> anyhow::Result<Bus> {
    let url = match (&nats.nats_url, embedded) {
        (Some(u), _) => u.clone(),
        (None, Some(e)) => e.url.clone(),
        (None, None) => {
            let path = DataDir(&nats.data).nats_url();
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!(
                        "no --nats-url given and {} cannot be read; start `minilog serve --data {}` \
                         first, or pass --nats-url",
                        path.display(),
                        nats.data.display()
                    )
                })?
                .trim()
                .to_owned()
        }
    };
    let auth = match (flag_auth(nats)?, embedded) {
        (Some(a), _) => a,
        (None, Some(e)) => e.credentials.auth(),
        (None, None) => Credentials::read(&nats.data)?.map_or(NatsAuth::None, |c| c.auth()),
    };
    let config = NatsConfig {
        url,
        auth,
        name: name.into(),
    };
    Bus::connect(&config, Subjects::new(&nats.subject_prefix)).await
}

/// The credentials the flags give, if any; more than one kind is an error.
pub fn flag_auth(nats: &NatsArgs) -> anyhow::Result<Option<NatsAuth>> {
    Ok(
        match (
            &nats.nats_user,
            &nats.nats_password,
            &nats.nats_token,
            &nats.nats_creds,
        ) {
            (Some(user), Some(password), None, None) => Some(NatsAuth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            }),
            (None, None, Some(token), None) => Some(NatsAuth::Token(token.clone())),
            (None, None, None, Some(path)) => Some(NatsAuth::CredsFile(path.clone())),
            (None, None, None, None) => None,
            _ => anyhow::bail!(
                "give NATS credentials one way: --nats-user with --nats-password, or --nats-token, or --nats-creds"
            ),
        },
    )
}
