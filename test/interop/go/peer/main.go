// Command ttrpc-peer is the Go side of the ttrpc-es interop suite, built on Go
// ttrpc 1.2.4: "server" serves the Interop service on a unix socket, "client" runs
// one named scenario against an Interop server and prints one JSON line.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/containerd/ttrpc"

	"ttrpces/interop/peerkit"
	interopv1 "ttrpces/interop/v1"
)

func main() {
	scenarios := peerkit.UnaryScenarios()
	for name, s := range map[string]peerkit.Scenario{
		"server-stream":         serverStream(&interopv1.EchoRequest{Text: "stream", Count: 5}),
		"server-stream-fail":    serverStream(&interopv1.EchoRequest{Text: "stream", Count: 3, FailCode: 9, FailMessage: "after data"}),
		"stream-empty":          serverStream(&interopv1.EchoRequest{}),
		"client-stream":         clientStream(false),
		"client-stream-fail":    clientStream(true),
		"bidi":                  bidi,
		"disconnect-mid-stream": disconnectMidStream,
		"bench-server-stream":   benchServerStream,
		"bench-client-stream":   benchClientStream,
		"bench-bidi":            benchBidi,
		"unary-traceparent":     unaryTraceparent,
	} {
		scenarios[name] = s
	}
	peerkit.Main(serve, scenarios)
}

// streamsPerWorker bounds how many messages one stream carries in the stream
// benchmarks, so a run ends with little work left in flight.
const streamsPerWorker = 256

func client(e *peerkit.Env) interopv1.InteropClient { return interopv1.NewInteropClient(e.Client) }

// collect reads a server stream to its end and reports the seqs and texts seen,
// plus the terminal error if the stream did not end cleanly.
func collect(recv func() (*interopv1.EchoResponse, error), max int) peerkit.Result {
	seqs, texts := []uint32{}, []string{}
	for len(seqs) < max {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			return peerkit.Result{"ok": true, "seqs": seqs, "texts": texts, "eof": true}
		}
		if err != nil {
			return peerkit.ErrorResult(err).Merge(peerkit.Result{"seqs": seqs, "texts": texts})
		}
		seqs = append(seqs, msg.Seq)
		texts = append(texts, msg.Text)
	}
	return peerkit.Result{"ok": false, "seqs": seqs, "texts": texts, "error": "more messages than expected"}
}

// serverStream: the Go client sends no timeout on streams (ttrpc#159); the
// local timeout only keeps a silent server from hanging the scenario.
func serverStream(req *interopv1.EchoRequest) peerkit.Scenario {
	return func(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := client(e).ServerStream(ctx, req)
		if err != nil {
			return peerkit.ErrorResult(err), nil
		}
		return collect(s.Recv, int(req.Count)+1), nil
	}
}

// clientStream sends payloads of 1, 10 and 100 bytes, the last failing if asked.
func clientStream(fail bool) peerkit.Scenario {
	return func(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := client(e).ClientStream(ctx)
		if err != nil {
			return peerkit.ErrorResult(err), nil
		}
		for i, n := range []int{1, 10, 100} {
			req := &interopv1.EchoRequest{Payload: make([]byte, n)}
			if fail && i == 2 {
				req.FailCode, req.FailMessage = 9, "failed in stream"
			}
			if err := s.Send(req); err != nil {
				return peerkit.ErrorResult(err).Merge(peerkit.Result{"sent": i}), nil
			}
		}
		return peerkit.Outcome(s.CloseAndRecv()), nil
	}
}

func bidi(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := client(e).Bidi(ctx)
	if err != nil {
		return peerkit.ErrorResult(err), nil
	}
	seqs, texts := []uint32{}, []string{}
	progress := func() peerkit.Result { return peerkit.Result{"seqs": seqs, "texts": texts} }
	for i := 0; i < 5; i++ {
		if err := s.Send(&interopv1.EchoRequest{Text: fmt.Sprintf("bidi-%d", i)}); err != nil {
			return peerkit.ErrorResult(err).Merge(progress()), nil
		}
		msg, err := s.Recv()
		if err != nil {
			return peerkit.ErrorResult(err).Merge(progress()), nil
		}
		seqs, texts = append(seqs, msg.Seq), append(texts, msg.Text)
	}
	if err := s.CloseSend(); err != nil {
		return peerkit.ErrorResult(err).Merge(progress()), nil
	}
	_, err = s.Recv()
	r := progress()
	r["ok"], r["eof"] = errors.Is(err, io.EOF), errors.Is(err, io.EOF)
	if err != nil && !errors.Is(err, io.EOF) {
		r = peerkit.ErrorResult(err).Merge(r)
	}
	return r, nil
}

// disconnectMidStream drops the connection while the server is still streaming,
// then checks over a new connection that the server still serves.
func disconnectMidStream(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
	s, err := client(e).ServerStream(ctx, &interopv1.EchoRequest{Text: "long", Count: 100_000, DelayMs: 20})
	if err != nil {
		return peerkit.ErrorResult(err), nil
	}
	received := 0
	for ; received < 2; received++ {
		if _, err := s.Recv(); err != nil {
			return peerkit.ErrorResult(err).Merge(peerkit.Result{"received": received}), nil
		}
	}
	e.Client.Close()
	_, recvErr := s.Recv()
	r := peerkit.Result{"ok": true, "received": received, "after_close": peerkit.ErrorResult(recvErr)}
	fresh, err := peerkit.Dial(e.Socket)
	if err != nil {
		return r.Merge(peerkit.Result{"after_ok": false, "after_error": err.Error()}), nil
	}
	e.Client = fresh
	resp, err := e.Echo(ctx, &interopv1.EchoRequest{Text: "after"})
	r["after_ok"] = err == nil && resp.Text == "after"
	return r, nil
}

// The W3C trace context an otelttrpc client would send: its interceptor puts
// the propagator's lower-case keys into the Request metadata next to the
// caller's own. Values from the W3C Trace Context specification's examples.
const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "congo=t61rcWkgMzE"
	baggage     = "tenant=k8s.io"
)

// unaryTraceparent calls Echo with W3C trace context in its metadata, as
// containerd's otelttrpc client interceptor does, and reports what it sent.
func unaryTraceparent(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
	md := ttrpc.MD{}
	md.Set("x-interop", "go")
	md.Set("traceparent", traceparent)
	md.Set("tracestate", tracestate)
	md.Set("baggage", baggage)
	r := peerkit.Outcome(e.Echo(ttrpc.WithMetadata(ctx, md), &interopv1.EchoRequest{Text: "traced"}))
	return r.Merge(peerkit.Result{"traceparent": traceparent, "tracestate": tracestate, "baggage": baggage}), nil
}
