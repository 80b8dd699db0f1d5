// Command streaming-peer serves and calls containerd/ttrpc's own cross-implementation
// test service, ttrpc.integration.streaming.Streaming (integration/streaming/test.proto,
// unchanged, and its generated Go code, both from Debian's ttrpc 1.2.7 source package):
// "server" serves it as upstream's integration test does; "client --scenario all" calls
// every method with that test's inputs and prints one JSON line, one result per method.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/containerd/ttrpc/integration/streaming"
	"google.golang.org/protobuf/types/known/emptypb"

	"ttrpces/interop/peerkit"
)

func main() {
	peerkit.Main(serve, map[string]peerkit.Scenario{"all": all})
}

type check func(ctx context.Context, c streaming.TTRPCStreamingClient) peerkit.Result

func all(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := streaming.NewTTRPCStreamingClient(e.Client)
	out := peerkit.Result{}
	for name, run := range map[string]check{
		"Echo":               echo,
		"EchoStream":         echoStream,
		"SumStream":          sumStream,
		"DivideStream":       divideStream,
		"EchoNull":           echoNull,
		"EchoNullStream":     echoNullStream,
		"EmptyPayloadStream": emptyPayloadStream,
	} {
		out[name] = run(ctx, c)
	}
	return out, nil
}

func fail(err error) peerkit.Result { return peerkit.ErrorResult(err) }

func echo(ctx context.Context, c streaming.TTRPCStreamingClient) peerkit.Result {
	r, err := c.Echo(ctx, &streaming.EchoPayload{Seq: 1, Msg: "Echo Me"})
	if err != nil {
		return fail(err)
	}
	return peerkit.Result{"ok": true, "seq": r.Seq, "msg": r.Msg}
}

// echoStream sends seq 0, 2, ..., 98, each answered before the next; reports the replies.
func echoStream(ctx context.Context, c streaming.TTRPCStreamingClient) peerkit.Result {
	s, err := c.EchoStream(ctx)
	if err != nil {
		return fail(err)
	}
	var seqs []uint32
	for i := uint32(0); i < 100; i += 2 {
		if err := s.Send(&streaming.EchoPayload{Seq: i, Msg: fmt.Sprintf("%d: Echo in a stream", i)}); err != nil {
			return fail(err)
		}
		r, err := s.Recv()
		if err != nil {
			return fail(err)
		}
		if r.Msg != fmt.Sprintf("%d: Echo in a stream", i) {
			return peerkit.Result{"ok": false, "error": "wrong msg " + r.Msg}
		}
		seqs = append(seqs, r.Seq)
	}
	if err := s.CloseSend(); err != nil {
		return fail(err)
	}
	_, err = s.Recv()
	return peerkit.Result{"ok": errors.Is(err, io.EOF), "seqs": seqs, "eof": errors.Is(err, io.EOF)}
}

// sumStream sends 0, -99..100, 0: 202 parts adding up to 100.
func sumStream(ctx context.Context, c streaming.TTRPCStreamingClient) peerkit.Result {
	s, err := c.SumStream(ctx)
	if err != nil {
		return fail(err)
	}
	parts := []int32{0}
	for i := int32(-99); i <= 100; i++ {
		parts = append(parts, i)
	}
	parts = append(parts, 0)
	for _, p := range parts {
		if err := s.Send(&streaming.Part{Add: p}); err != nil {
			return fail(err)
		}
	}
	sum, err := s.CloseAndRecv()
	if err != nil {
		return fail(err)
	}
	return peerkit.Result{"ok": true, "sum": sum.Sum, "num": sum.Num}
}

func divideStream(ctx context.Context, c streaming.TTRPCStreamingClient) peerkit.Result {
	s, err := c.DivideStream(ctx, &streaming.Sum{Sum: 392, Num: 30})
	if err != nil {
		return fail(err)
	}
	var sum, num int32
	for {
		p, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return peerkit.Result{"ok": true, "sum": sum, "num": num}
		}
		if err != nil {
			return fail(err)
		}
		sum, num = sum+p.Add, num+1
	}
}

func echoNull(ctx context.Context, c streaming.TTRPCStreamingClient) peerkit.Result {
	s, err := c.EchoNull(ctx)
	if err != nil {
		return fail(err)
	}
	for i := uint32(0); i < 100; i++ {
		if err := s.Send(&streaming.EchoPayload{Seq: i, Msg: nullMsg}); err != nil {
			return fail(err)
		}
	}
	if _, err := s.CloseAndRecv(); err != nil {
		return fail(err)
	}
	return peerkit.Result{"ok": true}
}

// echoNullStream sends 100 messages while another goroutine counts the empty replies.
func echoNullStream(ctx context.Context, c streaming.TTRPCStreamingClient) peerkit.Result {
	s, err := c.EchoNullStream(ctx)
	if err != nil {
		return fail(err)
	}
	type end struct {
		n   int
		err error
	}
	done := make(chan end, 1)
	go func() {
		n := 0
		for {
			if _, err := s.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				done <- end{n, err}
				return
			}
			n++
		}
	}()
	for i := uint32(0); i < 100; i++ {
		if err := s.Send(&streaming.EchoPayload{Seq: i, Msg: nullMsg}); err != nil {
			return fail(err)
		}
	}
	if err := s.CloseSend(); err != nil {
		return fail(err)
	}
	r := <-done
	if r.err != nil {
		return fail(r.err).Merge(peerkit.Result{"received": r.n})
	}
	return peerkit.Result{"ok": true, "received": r.n}
}

func emptyPayloadStream(ctx context.Context, c streaming.TTRPCStreamingClient) peerkit.Result {
	s, err := c.EmptyPayloadStream(ctx, &emptypb.Empty{})
	if err != nil {
		return fail(err)
	}
	var seqs []uint32
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return peerkit.Result{"ok": true, "seqs": seqs}
		}
		if err != nil {
			return fail(err).Merge(peerkit.Result{"seqs": seqs})
		}
		seqs = append(seqs, r.Seq)
	}
}
