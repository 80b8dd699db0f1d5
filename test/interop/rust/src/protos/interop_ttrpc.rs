// The ttrpc glue of ttrpces.interop.v1.Interop, written by hand as ttrpc-codegen 0.8
// (ttrpc-compiler, async_all) generates it: Debian packages no ttrpc-codegen. Same
// names, the same runtime macros and the same handler structs, so both sides behave as
// a generated ttrpc-rust service does.
#![allow(dead_code, clippy::all)]

use async_trait::async_trait;
use protobuf::{CodedInputStream, CodedOutputStream, Message};
use std::collections::HashMap;
use std::sync::Arc;

const SERVICE: &str = "ttrpces.interop.v1.Interop";

#[derive(Clone)]
pub struct InteropClient {
    client: ::ttrpc::r#async::Client,
}

impl InteropClient {
    pub fn new(client: ::ttrpc::r#async::Client) -> Self {
        InteropClient { client }
    }

    pub async fn echo(
        &self,
        ctx: ttrpc::context::Context,
        req: &super::interop::EchoRequest,
    ) -> ::ttrpc::Result<super::interop::EchoResponse> {
        let mut cres = super::interop::EchoResponse::new();
        ::ttrpc::async_client_request!(self, ctx, req, SERVICE, "Echo", cres);
    }

    pub async fn echo_empty(
        &self,
        ctx: ttrpc::context::Context,
        req: &super::interop::Empty,
    ) -> ::ttrpc::Result<super::interop::Empty> {
        let mut cres = super::interop::Empty::new();
        ::ttrpc::async_client_request!(self, ctx, req, SERVICE, "EchoEmpty", cres);
    }

    pub async fn server_stream(
        &self,
        ctx: ttrpc::context::Context,
        req: &super::interop::EchoRequest,
    ) -> ::ttrpc::Result<::ttrpc::r#async::ClientStreamReceiver<super::interop::EchoResponse>> {
        ::ttrpc::async_client_stream_receive!(self, ctx, req, SERVICE, "ServerStream");
    }

    pub async fn client_stream(
        &self,
        ctx: ttrpc::context::Context,
    ) -> ::ttrpc::Result<
        ::ttrpc::r#async::ClientStreamSender<super::interop::EchoRequest, super::interop::EchoResponse>,
    > {
        ::ttrpc::async_client_stream_send!(self, ctx, SERVICE, "ClientStream");
    }

    pub async fn bidi(
        &self,
        ctx: ttrpc::context::Context,
    ) -> ::ttrpc::Result<::ttrpc::r#async::ClientStream<super::interop::EchoRequest, super::interop::EchoResponse>>
    {
        ::ttrpc::async_client_stream!(self, ctx, SERVICE, "Bidi");
    }
}

struct EchoMethod {
    service: Arc<dyn Interop + Send + Sync>,
}

#[async_trait]
impl ::ttrpc::r#async::MethodHandler for EchoMethod {
    async fn handler(
        &self,
        ctx: ::ttrpc::r#async::TtrpcContext,
        req: ::ttrpc::Request,
    ) -> ::ttrpc::Result<::ttrpc::Response> {
        ::ttrpc::async_request_handler!(self, ctx, req, interop, EchoRequest, echo);
    }
}

struct EchoEmptyMethod {
    service: Arc<dyn Interop + Send + Sync>,
}

#[async_trait]
impl ::ttrpc::r#async::MethodHandler for EchoEmptyMethod {
    async fn handler(
        &self,
        ctx: ::ttrpc::r#async::TtrpcContext,
        req: ::ttrpc::Request,
    ) -> ::ttrpc::Result<::ttrpc::Response> {
        ::ttrpc::async_request_handler!(self, ctx, req, interop, Empty, echo_empty);
    }
}

struct ServerStreamMethod {
    service: Arc<dyn Interop + Send + Sync>,
}

#[async_trait]
impl ::ttrpc::r#async::StreamHandler for ServerStreamMethod {
    async fn handler(
        &self,
        ctx: ::ttrpc::r#async::TtrpcContext,
        mut inner: ::ttrpc::r#async::StreamInner,
    ) -> ::ttrpc::Result<Option<::ttrpc::Response>> {
        ::ttrpc::async_server_streamimg_handler!(self, ctx, inner, interop, EchoRequest, server_stream);
    }
}

struct ClientStreamMethod {
    service: Arc<dyn Interop + Send + Sync>,
}

#[async_trait]
impl ::ttrpc::r#async::StreamHandler for ClientStreamMethod {
    async fn handler(
        &self,
        ctx: ::ttrpc::r#async::TtrpcContext,
        inner: ::ttrpc::r#async::StreamInner,
    ) -> ::ttrpc::Result<Option<::ttrpc::Response>> {
        ::ttrpc::async_client_streamimg_handler!(self, ctx, inner, client_stream);
    }
}

struct BidiMethod {
    service: Arc<dyn Interop + Send + Sync>,
}

#[async_trait]
impl ::ttrpc::r#async::StreamHandler for BidiMethod {
    async fn handler(
        &self,
        ctx: ::ttrpc::r#async::TtrpcContext,
        inner: ::ttrpc::r#async::StreamInner,
    ) -> ::ttrpc::Result<Option<::ttrpc::Response>> {
        ::ttrpc::async_duplex_streamimg_handler!(self, ctx, inner, bidi);
    }
}

fn not_supported<T>(method: &str) -> ::ttrpc::Result<T> {
    Err(::ttrpc::Error::RpcStatus(::ttrpc::get_status(
        ::ttrpc::Code::NOT_FOUND,
        format!("/{SERVICE}/{method} is not supported"),
    )))
}

#[async_trait]
pub trait Interop: Sync {
    async fn echo(
        &self,
        _ctx: &::ttrpc::r#async::TtrpcContext,
        _: super::interop::EchoRequest,
    ) -> ::ttrpc::Result<super::interop::EchoResponse> {
        not_supported("Echo")
    }
    async fn echo_empty(
        &self,
        _ctx: &::ttrpc::r#async::TtrpcContext,
        _: super::interop::Empty,
    ) -> ::ttrpc::Result<super::interop::Empty> {
        not_supported("EchoEmpty")
    }
    async fn server_stream(
        &self,
        _ctx: &::ttrpc::r#async::TtrpcContext,
        _: super::interop::EchoRequest,
        _: ::ttrpc::r#async::ServerStreamSender<super::interop::EchoResponse>,
    ) -> ::ttrpc::Result<()> {
        not_supported("ServerStream")
    }
    async fn client_stream(
        &self,
        _ctx: &::ttrpc::r#async::TtrpcContext,
        _: ::ttrpc::r#async::ServerStreamReceiver<super::interop::EchoRequest>,
    ) -> ::ttrpc::Result<super::interop::EchoResponse> {
        not_supported("ClientStream")
    }
    async fn bidi(
        &self,
        _ctx: &::ttrpc::r#async::TtrpcContext,
        _: ::ttrpc::r#async::ServerStream<super::interop::EchoResponse, super::interop::EchoRequest>,
    ) -> ::ttrpc::Result<()> {
        not_supported("Bidi")
    }
}

pub fn create_interop(service: Arc<dyn Interop + Send + Sync>) -> HashMap<String, ::ttrpc::r#async::Service> {
    let mut ret = HashMap::new();
    let mut methods = HashMap::new();
    let mut streams = HashMap::new();

    methods.insert(
        "Echo".to_string(),
        Box::new(EchoMethod { service: service.clone() }) as Box<dyn ::ttrpc::r#async::MethodHandler + Send + Sync>,
    );
    methods.insert(
        "EchoEmpty".to_string(),
        Box::new(EchoEmptyMethod { service: service.clone() }) as Box<dyn ::ttrpc::r#async::MethodHandler + Send + Sync>,
    );
    streams.insert(
        "ServerStream".to_string(),
        Arc::new(ServerStreamMethod { service: service.clone() }) as Arc<dyn ::ttrpc::r#async::StreamHandler + Send + Sync>,
    );
    streams.insert(
        "ClientStream".to_string(),
        Arc::new(ClientStreamMethod { service: service.clone() }) as Arc<dyn ::ttrpc::r#async::StreamHandler + Send + Sync>,
    );
    streams.insert(
        "Bidi".to_string(),
        Arc::new(BidiMethod { service: service.clone() }) as Arc<dyn ::ttrpc::r#async::StreamHandler + Send + Sync>,
    );

    ret.insert(SERVICE.to_string(), ::ttrpc::r#async::Service { methods, streams });
    ret
}
