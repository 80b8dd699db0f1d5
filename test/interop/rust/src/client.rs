//! Client scenarios against an Interop server; each returns one JSON result. RPC
//! errors are part of the result, never a non-zero exit.
use std::time::Duration;

use ttrpc::context::{self, Context};
use ttrpc::r#async::Client;

use crate::json::Json;
use crate::protos::interop::{EchoRequest, EchoResponse, Empty};
use crate::protos::interop_ttrpc::InteropClient;
use crate::Args;

/// An error as a result: ttrpc statuses with their code, message and detail types;
/// ttrpc-rust's own errors (timeouts, closed connections) by kind.
fn error(e: &ttrpc::Error) -> Json {
    let j = Json::new().bool("ok", false);
    match e {
        ttrpc::Error::RpcStatus(s) => {
            let types: Vec<String> = s.details.iter().map(|d| d.type_url.clone()).collect();
            j.str("kind", "status").num("code", s.code.value()).str("message", &s.message).strs("details", &types)
        }
        ttrpc::Error::LocalClosed => j.str("kind", "local-closed"),
        ttrpc::Error::RemoteClosed => j.str("kind", "remote-closed"),
        ttrpc::Error::Eof => j.str("kind", "eof"),
        other => j.str("kind", "other").str("message", &format!("{other:?}")),
    }
}

fn echo_result(r: &EchoResponse) -> Json {
    Json::new()
        .bool("ok", true)
        .str("text", &r.text)
        .num("payload_len", r.payload.len() as i128)
        .strs("metadata", &r.metadata)
        .num("deadline_ms", r.deadline_ms)
        .num("seq", r.seq)
        .num("total_bytes", r.total_bytes as i128)
}

fn outcome(r: ttrpc::Result<EchoResponse>) -> Json {
    match r {
        Ok(r) => echo_result(&r),
        Err(e) => error(&e),
    }
}

fn text(t: &str) -> EchoRequest {
    let mut req = EchoRequest::new();
    req.text = t.to_string();
    req
}

fn timeout(d: Duration) -> Context {
    context::with_timeout(d.as_nanos() as i64)
}

pub async fn run(args: &Args) -> Json {
    let socket = args.get("socket");
    let c = match Client::connect(&format!("unix://{socket}")) {
        Ok(c) => InteropClient::new(c),
        Err(e) => return error(&e).str("stage", "connect"),
    };
    let n = |key, default| args.number(key, default);
    match args.get("scenario") {
        "unary" => unary(&c).await,
        "unary-empty" => match c.echo_empty(context::with_timeout(0), &Empty::new()).await {
            Ok(_) => Json::new().bool("ok", true),
            Err(e) => error(&e),
        },
        "status" => status(&c, n("code", 9) as i32).await,
        "deadline" => deadline(&c).await,
        "reply-size" => reply_size(&c, n("size", 0) as u32).await,
        "request-size" => request_size(&c, n("size", 0) as usize).await,
        "server-stream" => server_stream(&c, n("count", 5) as u32).await,
        "client-stream" => client_stream(&c).await,
        "bidi" => bidi(&c, n("count", 5) as u32).await,
        "concurrent" => concurrent(&c, n("count", 64) as usize).await,
        "server-gone" => server_gone(&c).await,
        other => Json::new().bool("ok", false).str("kind", "usage").str("message", &format!("unknown scenario {other}")),
    }
}

async fn unary(c: &InteropClient) -> Json {
    let mut ctx = timeout(Duration::from_secs(5));
    ctx.add("x-interop".to_string(), "rust".to_string());
    ctx.add("x-multi".to_string(), "a".to_string());
    ctx.add("x-multi".to_string(), "b".to_string());
    outcome(c.echo(ctx, &text("from-rust")).await)
}

async fn status(c: &InteropClient, code: i32) -> Json {
    let mut req = text("");
    req.fail_code = code;
    req.fail_message = format!("rust asked for {code}");
    req.fail_with_details = true;
    outcome(c.echo(context::with_timeout(0), &req).await)
}

/// The server delays past the Request's timeout. ttrpc-rust's client runs its own
/// timer too; the result says which end gave up first.
async fn deadline(c: &InteropClient) -> Json {
    let mut req = text("late");
    req.delay_ms = 10_000;
    outcome(c.echo(timeout(Duration::from_millis(300)), &req).await)
}

async fn reply_size(c: &InteropClient, size: u32) -> Json {
    let mut req = text("");
    req.reply_size = size;
    outcome(c.echo(context::with_timeout(0), &req).await)
}

async fn request_size(c: &InteropClient, size: usize) -> Json {
    let mut req = EchoRequest::new();
    req.payload = vec![b'r'; size];
    req.reply_size = 1;
    let r = c.echo(context::with_timeout(0), &req).await;
    // Not the echo: the reply would be as large as the request.
    match r {
        Ok(r) => Json::new().bool("ok", true).num("payload_len", r.payload.len() as i128),
        Err(e) => error(&e),
    }
}

async fn server_stream(c: &InteropClient, count: u32) -> Json {
    let mut req = text("stream");
    req.count = count;
    let mut s = match c.server_stream(timeout(Duration::from_secs(10)), &req).await {
        Ok(s) => s,
        Err(e) => return error(&e).str("stage", "open"),
    };
    let mut seqs = Vec::new();
    loop {
        match s.recv().await {
            Ok(Some(m)) => seqs.push(m.seq),
            Ok(None) => return Json::new().bool("ok", true).bool("eof", true).nums("seqs", &seqs),
            Err(e) => return error(&e).nums("seqs", &seqs),
        }
    }
}

async fn client_stream(c: &InteropClient) -> Json {
    let mut s = match c.client_stream(timeout(Duration::from_secs(10))).await {
        Ok(s) => s,
        Err(e) => return error(&e).str("stage", "open"),
    };
    for n in [1usize, 10, 100] {
        let mut req = EchoRequest::new();
        req.payload = vec![0; n];
        if let Err(e) = s.send(&req).await {
            return error(&e).str("stage", "send");
        }
    }
    outcome(s.close_and_recv().await)
}

async fn bidi(c: &InteropClient, count: u32) -> Json {
    let mut s = match c.bidi(timeout(Duration::from_secs(10))).await {
        Ok(s) => s,
        Err(e) => return error(&e).str("stage", "open"),
    };
    let (mut seqs, mut texts) = (Vec::new(), Vec::new());
    for i in 0..count {
        if let Err(e) = s.send(&text(&format!("bidi-{i}"))).await {
            return error(&e).str("stage", "send").nums("seqs", &seqs);
        }
        match s.recv().await {
            Ok(m) => {
                seqs.push(m.seq);
                texts.push(m.text.clone());
            }
            Err(e) => return error(&e).str("stage", "recv").nums("seqs", &seqs),
        }
    }
    if let Err(e) = s.close_send().await {
        return error(&e).str("stage", "close");
    }
    let end = match s.recv().await {
        Err(ttrpc::Error::Eof) => Json::new().bool("ok", true).bool("eof", true),
        Err(e) => error(&e).str("stage", "end"),
        Ok(m) => Json::new().bool("ok", false).str("kind", "extra").num("extra_seq", m.seq),
    };
    end.nums("seqs", &seqs).strs("texts", &texts)
}

/// count Echo calls in flight at once on one connection, each its own task. Reports
/// how many succeeded and every distinct failure with its count.
async fn concurrent(c: &InteropClient, count: usize) -> Json {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut req = text(&format!("c{i}"));
                req.delay_ms = 20;
                match c.echo(timeout(Duration::from_secs(10)), &req).await {
                    Ok(r) if r.text == format!("c{i}") => None,
                    Ok(r) => Some(format!("wrong text {}", r.text)),
                    Err(e) => Some(error(&e).to_string()),
                }
            })
        })
        .collect();
    let mut ok = 0;
    let mut failures: Vec<String> = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            None => ok += 1,
            Some(f) => failures.push(f),
        }
    }
    failures.sort();
    failures.dedup();
    Json::new().bool("ok", ok == count).num("succeeded", ok as i128).strs("failures", &failures)
}

/// A call waits on a server that goes away (the test stops it on seeing the call).
async fn server_gone(c: &InteropClient) -> Json {
    let mut req = text("server-gone");
    req.delay_ms = 60_000;
    outcome(c.echo(timeout(Duration::from_secs(30)), &req).await)
}
