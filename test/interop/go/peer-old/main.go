// Command ttrpc-peer-old is the interop peer built on Debian 12's own ttrpc 1.1.1,
// which predates streaming: it serves Echo and EchoEmpty through the legacy
// Server.Register and runs the unary client scenarios.
package main

import (
	"context"

	"github.com/containerd/ttrpc"

	"ttrpces/interop/peerkit"
	interopv1 "ttrpces/interop/v1"
)

func main() {
	peerkit.Main(serve, peerkit.UnaryScenarios())
}

func serve(socket string) error {
	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	srv.Register(peerkit.Service, map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req interopv1.EchoRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return peerkit.Echo(ctx, &req)
		},
		"EchoEmpty": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req interopv1.Empty
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &interopv1.Empty{}, nil
		},
	})
	return peerkit.Serve(srv, socket)
}
