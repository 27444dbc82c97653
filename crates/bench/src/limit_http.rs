//! limit-http: the most this machine serves with the webhook's HTTP stack and the callbacks scenario's load
//! generator on the same cores, with no callback work at all. Exactly the `callbacks` load (the same `bench loadgen`
//! child, the same pre-signed requests, both phases) against a bare axum server in the harness process, served the
//! way `daemon::Webhook::run` serves (`axum::serve` on a 127.0.0.1:0 listener, in the same runtime). Its one route,
//! `POST /callbacks/{kind}`, reads the body and answers 200 with an ack shaped like the webhook's: no signature
//! check, no JSON parse, no store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use callbot_api::wire::CallbackAck;
use tokio_util::sync::CancellationToken;

use crate::callbacks;
use crate::report::Figures;

pub async fn run(n: u64, rate: u64, concurrency: usize) -> anyhow::Result<Figures> {
    let served = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the listener")?;
    let url = format!("http://{}/callbacks/call", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let app = Router::new()
        .route("/callbacks/{kind}", post(ack))
        .with_state(served.clone());
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });

    let load = callbacks::load(url, n, rate, concurrency);
    let f = callbacks::drive("limit-http", "none", &load, server, shutdown).await?;
    let seen = served.load(Ordering::Relaxed);
    if seen != 2 * n {
        bail!(
            "the server answered {seen} requests, not the {} the generator sent",
            2 * n
        );
    }
    Ok(f)
}

/// Reads the body and acknowledges it, as the webhook answers a stored callback.
async fn ack(State(served): State<Arc<AtomicU64>>, body: Bytes) -> axum::Json<CallbackAck> {
    served.fetch_add(1, Ordering::Relaxed);
    drop(body);
    axum::Json(CallbackAck {
        ret_code: 0,
        ret_msg: "ok".to_owned(),
        response_id: "limit-http".to_owned(),
    })
}
