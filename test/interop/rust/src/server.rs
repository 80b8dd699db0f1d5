//! The Interop service as interop.proto describes it, on ttrpc-rust's async server.
use std::os::unix::io::IntoRawFd;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ttrpc::r#async::{ServerStream, ServerStreamReceiver, ServerStreamSender, TtrpcContext};

use crate::protos::interop::{EchoRequest, EchoResponse, Empty};
use crate::protos::interop_ttrpc::{create_interop, Interop};

struct Service;

/// Request metadata as sorted "key=value" strings.
fn metadata(ctx: &TtrpcContext) -> Vec<String> {
    let mut out: Vec<String> = ctx.metadata.iter().flat_map(|(k, vs)| vs.iter().map(move |v| format!("{k}={v}"))).collect();
    out.sort();
    out
}

/// ttrpc-rust keeps no deadline, only the Request's timeout: read at the handler's start
/// it is the time the client granted.
fn deadline_ms(ctx: &TtrpcContext) -> i64 {
    ctx.timeout_nano / 1_000_000
}

/// The status a request asks for, with one StringValue detail when asked.
fn failure(req: &EchoRequest) -> ttrpc::Result<()> {
    if req.fail_code == 0 {
        return Ok(());
    }
    let mut status = ttrpc::get_status(ttrpc::Code::OK, req.fail_message.clone());
    status.code = protobuf::EnumOrUnknown::from_i32(req.fail_code);
    if req.fail_with_details {
        let mut any = ttrpc::proto::Any::new();
        any.type_url = "type.googleapis.com/google.protobuf.StringValue".to_string();
        // google.protobuf.StringValue { string value = 1; }, encoded by hand.
        let text = req.fail_message.as_bytes();
        any.value = vec![0x0a];
        let mut n = text.len();
        while n >= 0x80 {
            any.value.push((n as u8) | 0x80);
            n >>= 7;
        }
        any.value.push(n as u8);
        any.value.extend_from_slice(text);
        status.details.push(any);
    }
    Err(ttrpc::Error::RpcStatus(status))
}

fn reply_payload(req: &EchoRequest) -> Vec<u8> {
    if req.reply_size == 0 {
        req.payload.clone()
    } else {
        vec![b'a'; req.reply_size as usize]
    }
}

async fn delay(ms: u32) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms.into())).await;
    }
}

#[async_trait]
impl Interop for Service {
    /// The server itself ends the call with DEADLINE_EXCEEDED when a delay outlasts the
    /// Request's timeout (ttrpc-rust wraps unary handlers in a timer).
    async fn echo(&self, ctx: &TtrpcContext, req: EchoRequest) -> ttrpc::Result<EchoResponse> {
        let mut resp = EchoResponse::new();
        resp.metadata = metadata(ctx);
        resp.deadline_ms = deadline_ms(ctx);
        delay(req.delay_ms).await;
        failure(&req)?;
        resp.text = req.text.clone();
        resp.payload = reply_payload(&req);
        Ok(resp)
    }

    async fn echo_empty(&self, _ctx: &TtrpcContext, _: Empty) -> ttrpc::Result<Empty> {
        Ok(Empty::new())
    }

    async fn server_stream(&self, ctx: &TtrpcContext, req: EchoRequest, s: ServerStreamSender<EchoResponse>) -> ttrpc::Result<()> {
        for seq in 0..req.count {
            if seq > 0 {
                delay(req.delay_ms).await;
            }
            let mut msg = EchoResponse::new();
            msg.payload = reply_payload(&req);
            msg.text = req.text.clone();
            msg.metadata = metadata(ctx);
            msg.deadline_ms = deadline_ms(ctx);
            msg.seq = seq;
            s.send(&msg).await?;
        }
        failure(&req)
    }

    async fn client_stream(&self, ctx: &TtrpcContext, mut s: ServerStreamReceiver<EchoRequest>) -> ttrpc::Result<EchoResponse> {
        let mut resp = EchoResponse::new();
        resp.metadata = metadata(ctx);
        resp.deadline_ms = deadline_ms(ctx);
        while let Some(req) = s.recv().await? {
            failure(&req)?;
            resp.seq += 1;
            resp.total_bytes += req.payload.len() as u64;
        }
        Ok(resp)
    }

    async fn bidi(&self, _ctx: &TtrpcContext, mut s: ServerStream<EchoResponse, EchoRequest>) -> ttrpc::Result<()> {
        let mut seq = 0;
        while let Some(req) = s.recv().await? {
            failure(&req)?;
            let mut msg = EchoResponse::new();
            msg.payload = reply_payload(&req);
            msg.text = req.text.clone();
            msg.seq = seq;
            s.send(&msg).await?;
            seq += 1;
        }
        Ok(())
    }
}

/// Serves until stdin closes (the test process holds it open), so a crashed test
/// leaves no server behind.
pub async fn serve(socket: &str) {
    let _ = std::fs::remove_file(socket);
    // ttrpc-rust 0.8.2's bind sets SO_REUSEPORT, which Linux >= 6.12 refuses on unix
    // sockets (ttrpc-rust#309, fixed in 0.8.6): bind here and hand it the listening fd.
    let listener = std::os::unix::net::UnixListener::bind(socket).expect("bind");
    let mut server = ttrpc::r#async::Server::new()
        .set_domain_unix()
        .add_listener(listener.into_raw_fd())
        .expect("add_listener")
        .register_service(create_interop(Arc::new(Service)));
    server.start().await.expect("start");
    println!("READY");
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    let _ = stdin_closed.await;
    let _ = server.shutdown().await;
}
