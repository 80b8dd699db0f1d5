package main

import (
	"context"
	"errors"
	"io"

	"github.com/containerd/ttrpc"

	"ttrpces/interop/peerkit"
	interopv1 "ttrpces/interop/v1"
)

// interop implements the whole Interop service as interop.proto describes it.
type interop struct{}

func serve(socket string) error {
	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	interopv1.RegisterInteropService(srv, interop{})
	return peerkit.Serve(srv, socket)
}

func (interop) Echo(ctx context.Context, req *interopv1.EchoRequest) (*interopv1.EchoResponse, error) {
	return peerkit.Echo(ctx, req)
}

func (interop) EchoEmpty(context.Context, *interopv1.Empty) (*interopv1.Empty, error) {
	return &interopv1.Empty{}, nil
}

// ServerStream sends count messages, delay_ms apart, then fails if asked to: a
// stream can end with an error after data.
func (interop) ServerStream(ctx context.Context, req *interopv1.EchoRequest, s interopv1.Interop_ServerStreamServer) error {
	md, deadline := peerkit.Metadata(ctx), peerkit.DeadlineMs(ctx)
	payload := peerkit.ReplyPayload(req)
	for i := uint32(0); i < req.Count; i++ {
		if i > 0 {
			if err := peerkit.Delay(ctx, req.DelayMs); err != nil {
				return err
			}
		}
		msg := &interopv1.EchoResponse{Payload: payload, Text: req.Text, Metadata: md, DeadlineMs: deadline, Seq: i}
		if err := s.Send(msg); err != nil {
			return err
		}
	}
	return peerkit.Failure(req)
}

// ClientStream counts messages and payload bytes until the client closes; a
// message with fail_code fails the call at once.
func (interop) ClientStream(ctx context.Context, s interopv1.Interop_ClientStreamServer) (*interopv1.EchoResponse, error) {
	resp := &interopv1.EchoResponse{Metadata: peerkit.Metadata(ctx), DeadlineMs: peerkit.DeadlineMs(ctx)}
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return resp, nil
		}
		if err != nil {
			return nil, err
		}
		if err := peerkit.Failure(req); err != nil {
			return nil, err
		}
		resp.Seq++
		resp.TotalBytes += uint64(len(req.Payload))
	}
}

// Bidi echoes each message with its position until the client closes. Like
// ClientStream it fails at once on a message with fail_code (not required by the
// proto, but it lets a test end a bidi stream with an error after data).
func (interop) Bidi(ctx context.Context, s interopv1.Interop_BidiServer) error {
	for seq := uint32(0); ; seq++ {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := peerkit.Failure(req); err != nil {
			return err
		}
		if err := s.Send(&interopv1.EchoResponse{Payload: peerkit.ReplyPayload(req), Text: req.Text, Seq: seq}); err != nil {
			return err
		}
	}
}
