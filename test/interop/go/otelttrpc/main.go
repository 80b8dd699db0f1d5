// Command otelttrpc-peer is a Go ttrpc 1.2.7 peer that traces with the real
// github.com/containerd/otelttrpc 0.1.0 interceptors (Debian sid) and the OpenTelemetry
// Go SDK, W3C trace context and baggage propagated:
//
//	server: serves Interop.Echo behind otelttrpc.UnaryServerInterceptor; writes each
//	        finished span as a line "SPAN {json}" on stderr.
//	client --scenario traced: under a root span "go-root", calls Echo three times
//	        (ok, NOT_FOUND, INTERNAL) through otelttrpc.UnaryClientInterceptor and prints
//	        the outcomes and every span it recorded as one JSON line.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"

	"github.com/containerd/otelttrpc"
	"github.com/containerd/ttrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"ttrpces/interop/peerkit"
	interopv1 "ttrpces/interop/v1"
)

func main() {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	peerkit.Main(serve, map[string]peerkit.Scenario{"traced": traced})
}

// spanJSON is what the tests compare with ttrpc-es's spans.
type spanJSON struct {
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	TraceID      string            `json:"trace_id"`
	SpanID       string            `json:"span_id"`
	ParentSpanID string            `json:"parent_span_id"`
	ParentRemote bool              `json:"parent_remote"`
	Status       string            `json:"status"`
	Description  string            `json:"status_description"`
	Attributes   map[string]string `json:"attributes"`
	Scope        string            `json:"scope"`
}

func toJSON(s sdktrace.ReadOnlySpan) spanJSON {
	attrs := map[string]string{}
	for _, kv := range s.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	parent := ""
	if s.Parent().IsValid() {
		parent = s.Parent().SpanID().String()
	}
	return spanJSON{
		Name: s.Name(), Kind: s.SpanKind().String(),
		TraceID: s.SpanContext().TraceID().String(), SpanID: s.SpanContext().SpanID().String(),
		ParentSpanID: parent, ParentRemote: s.Parent().IsRemote(),
		Status: s.Status().Code.String(), Description: s.Status().Description,
		Attributes: attrs, Scope: s.InstrumentationScope().Name,
	}
}

// recorder keeps finished spans; with print set it also writes each on stderr.
type recorder struct {
	mu    sync.Mutex
	spans []spanJSON
	print bool
}

func (r *recorder) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range spans {
		j := toJSON(s)
		r.spans = append(r.spans, j)
		if r.print {
			line, _ := json.Marshal(j)
			fmt.Fprintf(os.Stderr, "SPAN %s\n", line)
		}
	}
	return nil
}

func (r *recorder) Shutdown(context.Context) error { return nil }

func install(r *recorder) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(r)))
}

type echoService struct{}

func (echoService) Echo(ctx context.Context, req *interopv1.EchoRequest) (*interopv1.EchoResponse, error) {
	return peerkit.Echo(ctx, req)
}

func (echoService) EchoEmpty(context.Context, *interopv1.Empty) (*interopv1.Empty, error) {
	return &interopv1.Empty{}, nil
}

func serve(socket string) error {
	install(&recorder{print: true})
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(otelttrpc.UnaryServerInterceptor()))
	if err != nil {
		return err
	}
	srv.RegisterService(peerkit.Service, &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req interopv1.EchoRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return echoService{}.Echo(ctx, &req)
		},
	}})
	return peerkit.Serve(srv, socket)
}

func traced(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
	rec := &recorder{}
	install(rec)
	conn, err := net.Dial("unix", e.Socket)
	if err != nil {
		return nil, err
	}
	client := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(otelttrpc.UnaryClientInterceptor()))
	defer client.Close()
	ctx, root := otel.Tracer("interop-test").Start(ctx, "go-root")
	calls := []peerkit.Result{}
	for _, req := range []*interopv1.EchoRequest{
		{Text: "traced"},
		{FailCode: 5, FailMessage: "not here"},
		{FailCode: 13, FailMessage: "broken"},
	} {
		var resp interopv1.EchoResponse
		err := client.Call(ctx, peerkit.Service, "Echo", req, &resp)
		calls = append(calls, peerkit.Outcome(&resp, err))
	}
	root.End()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	spans := rec.spans
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Kind < spans[j].Kind })
	return peerkit.Result{
		"ok": true, "calls": calls, "spans": spans,
		"root_trace_id": root.SpanContext().TraceID().String(),
		"root_span_id":  root.SpanContext().SpanID().String(),
	}, nil
}

