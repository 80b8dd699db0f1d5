package peerkit

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/containerd/ttrpc"

	interopv1 "ttrpces/interop/v1"
)

// MaxMessage is ttrpc's limit on a frame's payload.
const MaxMessage = 4 << 20

// UnaryScenarios are the client scenarios every Go peer supports.
func UnaryScenarios() map[string]Scenario {
	return map[string]Scenario{
		"unary":             unary,
		"unary-empty":       unaryEmpty,
		"deadline":          deadline,
		"deadline-seen":     deadlineSeen,
		"status-CODE":       statusCode,
		"status-details":    statusDetails,
		"unknown-service":   unknown(Service+"Missing", "Echo"),
		"unknown-method":    unknown(Service, "Missing"),
		"oversize-request":  oversizeRequest,
		"exact-4mib":        frameOfSize(MaxMessage),
		"frame-4mib-plus-1": frameOfSize(MaxMessage + 1),
		"oversize-response": oversizeResponse,
		"concurrent":        concurrent,
		"bench-unary":       BenchUnary,
		"bench-latency":     benchLatency,
		"unary-no-metadata": unaryNoMetadata,
		"deadline-server":   deadlineServer,
	}
}

// Echo calls Interop.Echo.
func (e *Env) Echo(ctx context.Context, req *interopv1.EchoRequest) (*interopv1.EchoResponse, error) {
	var resp interopv1.EchoResponse
	if err := e.Client.Call(ctx, Service, "Echo", req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// EchoResult is the Result of a successful Echo.
func EchoResult(resp *interopv1.EchoResponse) Result {
	md := resp.Metadata
	if md == nil {
		md = []string{}
	}
	return Result{
		"ok":          true,
		"text":        resp.Text,
		"payload":     resp.Payload, // base64 in JSON
		"payload_len": len(resp.Payload),
		"metadata":    md,
		"deadline_ms": resp.DeadlineMs,
		"seq":         resp.Seq,
		"total_bytes": resp.TotalBytes,
	}
}

// Outcome turns an Echo outcome into a Result.
func Outcome(resp *interopv1.EchoResponse, err error) Result {
	if err != nil {
		return ErrorResult(err)
	}
	return EchoResult(resp)
}

// afterwards reports whether the connection still serves a call, after a scenario
// that may have upset it.
func (e *Env) afterwards(r Result) Result {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := e.Echo(ctx, &interopv1.EchoRequest{Text: "after"})
	r["after_ok"] = err == nil && resp.Text == "after"
	if err != nil {
		r["after_error"] = ErrorResult(err)
	}
	return r
}

func unary(ctx context.Context, e *Env) (Result, error) {
	md := ttrpc.MD{}
	md.Set("x-interop", "go")
	md.Append("x-multi", "one", "two")
	ctx = ttrpc.WithMetadata(ctx, md)
	return Outcome(e.Echo(ctx, &interopv1.EchoRequest{Text: "hello from go", Payload: []byte{0, 1, 2, 0xfe, 0xff}})), nil
}

func unaryNoMetadata(ctx context.Context, e *Env) (Result, error) {
	return Outcome(e.Echo(ctx, &interopv1.EchoRequest{Text: "plain"})), nil
}

func unaryEmpty(ctx context.Context, e *Env) (Result, error) {
	if err := e.Client.Call(ctx, Service, "EchoEmpty", &interopv1.Empty{}, &interopv1.Empty{}); err != nil {
		return ErrorResult(err), nil
	}
	return Result{"ok": true}, nil
}

// deadline: the Go client gives up on its own after 200 ms (a context error); the
// server's late answer is dropped, and the connection must stay usable.
func deadline(ctx context.Context, e *Env) (Result, error) {
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	r := Outcome(e.Echo(tctx, &interopv1.EchoRequest{Text: "late", DelayMs: 10_000}))
	r["elapsed_ms"] = Since(start)
	return e.afterwards(r), nil
}

func deadlineSeen(ctx context.Context, e *Env) (Result, error) {
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return Outcome(e.Echo(tctx, &interopv1.EchoRequest{Text: "deadline"})), nil
}

// deadlineServer: the server's side of deadlines. The request carries a 300 ms
// timeout_nano while the client itself waits up to 10 s, so what comes back is the
// server's own answer when its handler's context expires.
func deadlineServer(ctx context.Context, e *Env) (Result, error) {
	conn, err := net.Dial("unix", e.Socket)
	if err != nil {
		return nil, err
	}
	shortTimeout := func(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, _ *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
		req.TimeoutNano = (300 * time.Millisecond).Nanoseconds()
		return invoke(ctx, req, resp)
	}
	client := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(shortTimeout))
	defer client.Close()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	var resp interopv1.EchoResponse
	err = client.Call(tctx, Service, "Echo", &interopv1.EchoRequest{Text: "late", DelayMs: 10_000}, &resp)
	r := Outcome(&resp, err)
	r["elapsed_ms"] = Since(start)
	return r, nil
}

func statusCode(ctx context.Context, e *Env) (Result, error) {
	msg := fmt.Sprintf("failed with code %d", e.Code)
	return Outcome(e.Echo(ctx, &interopv1.EchoRequest{FailCode: int32(e.Code), FailMessage: msg})), nil
}

func statusDetails(ctx context.Context, e *Env) (Result, error) {
	req := &interopv1.EchoRequest{FailCode: 9, FailMessage: "precondition with details", FailWithDetails: true}
	return Outcome(e.Echo(ctx, req)), nil
}

func unknown(service, method string) Scenario {
	return func(ctx context.Context, e *Env) (Result, error) {
		var resp interopv1.EchoResponse
		err := e.Client.Call(ctx, service, method, &interopv1.EchoRequest{Text: "x"}, &resp)
		return Outcome(&resp, err), nil
	}
}

func oversizeRequest(ctx context.Context, e *Env) (Result, error) {
	req := &interopv1.EchoRequest{Payload: make([]byte, MaxMessage+1)}
	return e.afterwards(Outcome(bounded(ctx, func(ctx context.Context) (*interopv1.EchoResponse, error) {
		return e.Echo(ctx, req)
	}))), nil
}

func oversizeResponse(ctx context.Context, e *Env) (Result, error) {
	req := &interopv1.EchoRequest{ReplySize: MaxMessage + 1}
	return e.afterwards(Outcome(bounded(ctx, func(ctx context.Context) (*interopv1.EchoResponse, error) {
		return e.Echo(ctx, req)
	}))), nil
}

// bounded is for calls whose failure mode might be silence, so the scenario reports
// it instead of hanging. Such calls do send a timeout_nano.
func bounded(ctx context.Context, call func(context.Context) (*interopv1.EchoResponse, error)) (*interopv1.EchoResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return call(ctx)
}

// frameOfSize sends an Echo whose ttrpc frame payload (the marshalled ttrpc.Request
// envelope around the EchoRequest) is exactly size bytes: the 4 MiB limit applies to
// the envelope, so that is the size that sits on the boundary. The call carries no
// deadline and no metadata, which would add fields to the envelope.
func frameOfSize(size int) Scenario {
	return func(ctx context.Context, e *Env) (Result, error) {
		n, ok := payloadForFrame(size)
		if !ok {
			return nil, fmt.Errorf("no payload length gives a %d-byte frame", size)
		}
		req := &interopv1.EchoRequest{Payload: make([]byte, n)}
		resp, err := e.Echo(ctx, req)
		r := Outcome(resp, err)
		delete(r, "payload")
		r["frame_bytes"] = size
		r["echo_request_bytes"] = bytesField(n)
		r["request_payload_len"] = n
		return r, nil
	}
}

// bytesField is the size of a length-delimited field with a 1-byte tag.
func bytesField(n int) int {
	size := 1 + n
	for v := uint64(n); ; v >>= 7 {
		size++
		if v < 0x80 {
			return size
		}
	}
}

func envelopeSize(payload int) int {
	return bytesField(len(Service)) + bytesField(len("Echo")) + bytesField(bytesField(payload))
}

func payloadForFrame(size int) (int, bool) {
	n := size
	for i := 0; i < 8 && envelopeSize(n) > size; i++ {
		n -= envelopeSize(n) - size
	}
	for envelopeSize(n) < size {
		n++
	}
	return n, envelopeSize(n) == size
}

func concurrent(ctx context.Context, e *Env) (Result, error) {
	const calls = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	succeeded, matched := 0, 0
	var firstErr Result
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			text := fmt.Sprintf("call-%d", i)
			resp, err := bounded(ctx, func(ctx context.Context) (*interopv1.EchoResponse, error) {
				return e.Echo(ctx, &interopv1.EchoRequest{Text: text, Payload: []byte(text)})
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = ErrorResult(err)
				}
				return
			}
			succeeded++
			if resp.Text == text && string(resp.Payload) == text {
				matched++
			}
		}(i)
	}
	wg.Wait()
	r := Result{"ok": succeeded == calls && matched == calls, "calls": calls, "succeeded": succeeded, "matched": matched}
	if firstErr != nil {
		r["first_error"] = firstErr
	}
	return r, nil
}
