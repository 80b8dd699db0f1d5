package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sync"

	"github.com/containerd/ttrpc"
	"github.com/containerd/ttrpc/integration/streaming"
	"google.golang.org/protobuf/types/known/emptypb"

	"ttrpces/interop/peerkit"
)

// service behaves as the test service of containerd/ttrpc's integration/streaming_test.go.
type service struct{}

func serve(socket string) error {
	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	streaming.RegisterTTRPCStreamingService(srv, service{})
	return peerkit.Serve(srv, socket)
}

// nullMsg is what EchoNull and EchoNullStream insist every message carries.
const nullMsg = "non-empty empty"

func (service) Echo(_ context.Context, e *streaming.EchoPayload) (*streaming.EchoPayload, error) {
	return &streaming.EchoPayload{Seq: e.Seq + 1, Msg: e.Msg}, nil
}

func (service) EchoStream(_ context.Context, s streaming.TTRPCStreaming_EchoStreamServer) error {
	for {
		e, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&streaming.EchoPayload{Seq: e.Seq + 1, Msg: e.Msg}); err != nil {
			return err
		}
	}
}

func (service) SumStream(_ context.Context, s streaming.TTRPCStreaming_SumStreamServer) (*streaming.Sum, error) {
	sum := &streaming.Sum{}
	for {
		p, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return sum, nil
		}
		if err != nil {
			return nil, err
		}
		sum.Sum += p.Add
		sum.Num++
	}
}

func (service) DivideStream(_ context.Context, sum *streaming.Sum, s streaming.TTRPCStreaming_DivideStreamServer) error {
	for _, p := range divide(sum) {
		if err := s.Send(p); err != nil {
			return err
		}
	}
	return nil
}

// divide splits sum into sum.Num parts adding up to sum.Sum, the first and last zero,
// the others pseudo-random (seeded as upstream's test is).
func divide(sum *streaming.Sum) []*streaming.Part {
	if sum.Num < 3 {
		return []*streaming.Part{{Add: sum.Sum}}
	}
	r := rand.New(rand.NewSource(14))
	parts := make([]*streaming.Part, sum.Num)
	parts[0], parts[sum.Num-1] = &streaming.Part{}, &streaming.Part{}
	var total int32
	for i := int32(1); i < sum.Num-2; i++ {
		add := r.Int31()%1000 - 500
		parts[i] = &streaming.Part{Add: add}
		total += add
	}
	parts[sum.Num-2] = &streaming.Part{Add: sum.Sum - total}
	return parts
}

// checkNull fails unless e is message seq of an EchoNull stream.
func checkNull(e *streaming.EchoPayload, seq uint32) error {
	if e.Seq != seq {
		return fmt.Errorf("unexpected sequence %d, expected %d", e.Seq, seq)
	}
	if e.Msg != nullMsg {
		return fmt.Errorf("unexpected message %q, expected %q", e.Msg, nullMsg)
	}
	return nil
}

func (service) EchoNull(_ context.Context, s streaming.TTRPCStreaming_EchoNullServer) (*emptypb.Empty, error) {
	for seq := uint32(0); ; seq++ {
		e, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return &emptypb.Empty{}, nil
		}
		if err != nil {
			return nil, err
		}
		if err := checkNull(e, seq); err != nil {
			return nil, err
		}
	}
}

// EchoNullStream answers each message with ten empty messages, sent from ten goroutines
// at once, as upstream's does: concurrent sends on one stream.
func (service) EchoNullStream(_ context.Context, s streaming.TTRPCStreaming_EchoNullStreamServer) error {
	var wg sync.WaitGroup
	var once sync.Once
	var sendErr error
	defer wg.Wait()
	for seq := uint32(0); ; seq++ {
		e, err := s.Recv()
		if errors.Is(err, io.EOF) {
			wg.Wait()
			return sendErr
		}
		if err != nil {
			return err
		}
		if err := checkNull(e, seq); err != nil {
			return err
		}
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Send(&emptypb.Empty{}); err != nil {
					once.Do(func() { sendErr = err })
				}
			}()
		}
	}
}

func (service) EmptyPayloadStream(_ context.Context, _ *emptypb.Empty, s streaming.TTRPCStreaming_EmptyPayloadStreamServer) error {
	if err := s.Send(&streaming.EchoPayload{Seq: 1}); err != nil {
		return err
	}
	return s.Send(&streaming.EchoPayload{Seq: 2})
}
