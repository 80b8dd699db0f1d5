// Package peerkit is what the new (ttrpc 1.2) and old (ttrpc 1.1) Go peers share:
// the unary Echo behaviour described in interop.proto, the server lifecycle and the
// JSON results of client scenarios. It compiles against either ttrpc version.
package peerkit

import (
	"context"
	"sort"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	interopv1 "ttrpces/interop/v1"
)

// Service is the full proto name of the interop service, as it travels on the wire.
const Service = "ttrpces.interop.v1.Interop"

// Echo implements Interop.Echo. The deadline is read before the delay so that it
// reports what the client granted, not what is left after waiting.
func Echo(ctx context.Context, req *interopv1.EchoRequest) (*interopv1.EchoResponse, error) {
	resp := &interopv1.EchoResponse{Metadata: Metadata(ctx), DeadlineMs: DeadlineMs(ctx)}
	if err := Delay(ctx, req.DelayMs); err != nil {
		return nil, err
	}
	if err := Failure(req); err != nil {
		return nil, err
	}
	resp.Text = req.Text
	resp.Payload = ReplyPayload(req)
	return resp, nil
}

// Metadata returns the request metadata as sorted "key=value" strings.
func Metadata(ctx context.Context) []string {
	md, _ := ttrpc.GetMetadata(ctx)
	var out []string
	for k, vs := range md {
		for _, v := range vs {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// DeadlineMs is the time left until the context's deadline, 0 without one.
func DeadlineMs(ctx context.Context) int64 {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d).Milliseconds()
	}
	return 0
}

// Delay waits ms milliseconds; when the context ends first it returns ctx.Err(),
// which Go ttrpc turns into DEADLINE_EXCEEDED or CANCELLED.
func Delay(ctx context.Context, ms uint32) error {
	if ms == 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Failure is the status error a request asks for, or nil.
func Failure(req *interopv1.EchoRequest) error {
	if req.FailCode == 0 {
		return nil
	}
	st := status.New(codes.Code(req.FailCode), req.FailMessage)
	if req.FailWithDetails {
		withDetails, err := st.WithDetails(stringValue(req.FailMessage))
		if err != nil {
			return status.Errorf(codes.Internal, "attaching details: %v", err)
		}
		st = withDetails
	}
	return st.Err()
}

// ReplyPayload is the echoed payload, or reply_size bytes of 'a' when asked.
func ReplyPayload(req *interopv1.EchoRequest) []byte {
	if req.ReplySize == 0 {
		return req.Payload
	}
	p := make([]byte, req.ReplySize)
	for i := range p {
		p[i] = 'a'
	}
	return p
}
