package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"ttrpces/interop/peerkit"
	interopv1 "ttrpces/interop/v1"
)

// benchServerStream: each op receives one --size message; each worker reads
// streams of streamsPerWorker messages one after the other.
func benchServerStream(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
	req := &interopv1.EchoRequest{Count: streamsPerWorker, ReplySize: uint32(e.Size)}
	return peerkit.Bench(ctx, e, func() peerkit.Op {
		var s interopv1.Interop_ServerStreamClient
		return func(ctx context.Context) (int, error) {
			for {
				if s == nil {
					var err error
					if s, err = client(e).ServerStream(ctx, req); err != nil {
						return 0, err
					}
				}
				msg, err := s.Recv()
				if errors.Is(err, io.EOF) {
					s = nil
					continue
				}
				if err != nil {
					return 0, err
				}
				return len(msg.Payload), nil
			}
		}
	})
}

// benchClientStream: each op sends one --size message; every streamsPerWorker
// messages the stream is closed and its count checked.
func benchClientStream(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
	req := &interopv1.EchoRequest{Payload: make([]byte, e.Size)}
	return peerkit.Bench(ctx, e, func() peerkit.Op {
		var s interopv1.Interop_ClientStreamClient
		sent := 0
		return func(ctx context.Context) (int, error) {
			if s == nil {
				var err error
				if s, err = client(e).ClientStream(ctx); err != nil {
					return 0, err
				}
			}
			if err := s.Send(req); err != nil {
				return 0, err
			}
			if sent++; sent == streamsPerWorker {
				resp, err := s.CloseAndRecv()
				if err != nil {
					return 0, err
				}
				if resp.Seq != streamsPerWorker {
					return 0, fmt.Errorf("server counted %d messages, sent %d", resp.Seq, sent)
				}
				s, sent = nil, 0
			}
			return e.Size, nil
		}
	})
}

// benchBidi: each op is one round trip (send, then receive the echo) on a bidi
// stream the worker keeps open for the whole run.
func benchBidi(ctx context.Context, e *peerkit.Env) (peerkit.Result, error) {
	req := &interopv1.EchoRequest{Payload: make([]byte, e.Size)}
	return peerkit.Bench(ctx, e, func() peerkit.Op {
		var s interopv1.Interop_BidiClient
		return func(ctx context.Context) (int, error) {
			if s == nil {
				var err error
				if s, err = client(e).Bidi(ctx); err != nil {
					return 0, err
				}
			}
			if err := s.Send(req); err != nil {
				return 0, err
			}
			msg, err := s.Recv()
			if err != nil {
				return 0, err
			}
			return len(msg.Payload), nil
		}
	})
}
